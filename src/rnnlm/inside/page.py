"""`python eval.py ckpt_path=PATH split=test page=true`: the part as the model reads it, one
self-contained HTML file (no network: `page.html`'s CSS and JavaScript inline, the numbers packed
as base64 arrays) in the checkpoint's run folder."""

from __future__ import annotations

import base64
import importlib.resources
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from rnnlm.errors import UserError, require_count
from rnnlm.files import write_bytes
from rnnlm.inside.reading import feature_table, read
from rnnlm.lm import RNNLMScratch
from rnnlm.vocab import BYTE_INDEX, TextFormat

MAX_BITS = 8  # the colour scale's top: rarer characters are as red as this


def check_page_settings(cfg: DictConfig, paths: list[str]) -> None:
    """Refused before anything is scored or written."""
    if len(paths) > 1:
        raise UserError("page=true reads one checkpoint: give ckpt_path=PATH, not a list")
    if cfg.split == "windows":
        raise UserError("page=true reads a part as one stream: give split=val, test, train or all")
    require_count("page_length", cfg.page_length, minimum=2)
    if cfg.page_units is not None:
        require_count("page_units", cfg.page_units)
    path = page_path(cfg, paths[0])
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise UserError(
            f"page_file={str(path)!r} cannot be written: {path.parent} is not a writable "
            "folder; give page_file=PATH in one"
        )


def page_path(cfg: DictConfig, ckpt_path: str) -> Path:
    """`page_file`, or page-<checkpoint>[-<text>]-<split>.html in the checkpoint's run folder."""
    if cfg.get("page_file"):
        return Path(cfg.page_file)
    ckpt = Path(ckpt_path)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    text = f"-{Path(cfg.data.path).stem}" if cfg.data.get("path") else ""
    return run / f"page-{ckpt.stem}{text}-{cfg.split}.html"


def pieces(fmt: TextFormat, symbols: list[str]) -> tuple[list[str], np.ndarray]:
    """The shown text's pieces (a character; a word and its space) and the first token of each:
    a byte model's bytes are grouped into the characters they spell."""
    if fmt.token == "word":
        return [s + " " for s in symbols], np.arange(len(symbols))
    if fmt.token == "char":
        return list(symbols), np.arange(len(symbols))
    data = bytes(BYTE_INDEX[s] for s in symbols)
    starts = [i for i, b in enumerate(data) if i == 0 or not 0x80 <= b < 0xC0]
    ends = [*starts[1:], len(data)]
    text = [data[a:b].decode("utf-8", "replace") for a, b in zip(starts, ends, strict=True)]
    return text, np.array(starts)


def token_names(fmt: TextFormat, tokens: list[str]) -> list[str]:
    """The vocabulary as the guesses show it."""
    shown = {" ": "␣", "\n": "↵", "\t": "⇥"}
    if fmt.token == "byte":  # ASCII as its character, other bytes as their token (<0xc3>)
        tokens = [chr(BYTE_INDEX[t]) if BYTE_INDEX[t] < 0x7F else t for t in tokens]
    return [shown.get(t, t) for t in tokens]


def carried_units(units: list, score: np.ndarray, best: list[int], limit: int | None) -> list:
    """The units the page carries: each feature's best first, then by `score` (the highest r
    with any feature, or how much a unit varies), every layer and kind in turn."""
    groups = defaultdict(list)
    for u in np.argsort(-score, kind="stable").tolist():
        groups[units[u][:2]].append(u)
    order = list(best)
    for rank in range(max(len(g) for g in groups.values())):
        order += [g[rank] for g in groups.values() if rank < len(g)]
    return list(dict.fromkeys(order))[: limit or len(order)]


def packed(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode()


def unit_view(values: np.ndarray, layer: int, kind: str, index: int) -> dict:
    """One unit's activations over the text, as int8 steps of its largest magnitude."""
    scale = float(np.abs(values).max()) or 1.0
    steps = packed(np.round(values / scale * 127), "<i1")
    return {"layer": layer, "kind": kind, "index": index, "scale": scale, "values": steps}


def page_data(model: RNNLMScratch, symbols: list[str], indices, limit: int | None) -> dict:
    """What the page shows of `symbols` (their vocabulary `indices`) as `model` reads them."""
    fmt, vocab = model.text_format, model.vocab
    reading = read(model, indices)
    text, starts = pieces(fmt, symbols)
    last = np.append(starts[1:] - 1, len(symbols) - 1)  # the state after a whole piece
    bits = np.add.reduceat(reading.bits, starts)  # a character's bytes together
    states = reading.states[last]
    # A word model's pieces are words: the features are of characters.
    table, constant = feature_table(states, text) if fmt.token != "word" else ({}, [])
    best = {name: int(np.abs(r).argmax()) for name, r in table.items()}
    score = np.abs(np.array(list(table.values()))).max(0) if table else states.std(0)
    carried = carried_units(reading.units, score, list(best.values()), limit)
    units = [unit_view(states[:, u], *reading.units[u]) for u in carried]
    unk = [] if vocab.unk is None else np.flatnonzero(indices[starts].numpy() == vocab.unk)
    figure = float(np.nansum(bits) / sum(len(p) for p in text[1:]))
    millibits = np.where(np.isnan(bits), 65535, np.clip(np.round(bits * 1000), 0, 65534))
    return {
        "text": text,
        "unk": [int(i) for i in unk],
        "bits": packed(millibits, "<u2"),
        "top": packed(np.clip(reading.top[starts], 0, None), "<u2"),
        "top_p": packed(np.round(np.clip(reading.top_p[starts], 0, 1) * 65535), "<u2"),
        "vocab": token_names(fmt, vocab.idx_to_token),
        "units": units,
        "features": [
            {"feature": name, "unit": carried.index(u), "r": float(table[name][u])}
            for name, u in best.items()
        ],
        "constant": constant,
        "figure": figure,
        "max_bits": MAX_BITS,
    }


def write_page(cfg: DictConfig, model: RNNLMScratch, dm, ckpt_path: str) -> Path:
    """The page of `cfg.split` of `dm`'s text, cut at `cfg.page_length` tokens (said in one
    line); prints its path and the bits per character of what it shows."""
    n, text_file = len(dm.corpus.chars), dm.text_file()
    start, stop = (0, n) if cfg.split == "all" else dm.parts()[cfg.split]
    shown = min(stop, start + cfg.page_length)
    codes = dm.corpus.chars[start:shown]
    indices = dm.lut[codes.long()].long()
    token = model.text_format.token_name
    known = indices != model.vocab.unk if model.vocab.unk is not None else indices >= 0
    if len(codes) < 2 or not bool(known.any()):
        raise UserError(
            f"split={cfg.split} of {text_file} has {len(codes)} {token}s, "
            f"{int(known.sum())} of them in the checkpoint's vocabulary: the page needs at "
            "least 2, some known: give another split or data.path"
        )
    if shown < stop:
        print(
            f"page: the first {cfg.page_length} of the {stop - start} {token}s of "
            f"split={cfg.split} (page_length={cfg.page_length})"
        )
    symbols = [dm.corpus.symbols[c] for c in codes.tolist()]
    data = page_data(model, symbols, indices, cfg.page_units)
    data["title"] = f"{text_file.name}, split={cfg.split}, as {Path(ckpt_path).name} reads it"
    data["about"] = (
        f"{shown - start} of the {stop - start} {token}s of split={cfg.split} of "
        f"{text_file}, read as one stream from a zero state by {ckpt_path}"
    )
    template = importlib.resources.files("rnnlm.inside").joinpath("page.html").read_text()
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    path = page_path(cfg, ckpt_path)
    write_bytes(path, template.replace("/*DATA*/", payload).encode())
    print(
        f"page: {path} ({path.stat().st_size / 2**20:.1f} MB; {data['figure']:.4f} bits "
        f"per character over the {len(data['text']) - 1} predicted)"
    )
    return path
