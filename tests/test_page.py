"""Looking inside a model: the page eval.py writes (its numbers are the model's), the tokens in
TensorBoard's PROJECTOR, and the page in a real browser."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlm.checkpoints import read_checkpoint
from rnnlm.cores import LSTM
from rnnlm.fast.core import FastRNNScratch
from rnnlm.fast.lm import FastRNNLM, FastRNNLMScratch
from rnnlm.inside.page import page_data
from rnnlm.inside.reading import features
from rnnlm.rnn import core

from .conftest import cli, compose_config
from .helpers import assert_one_line_error, refused

TEXT = 'the keeper\'s log: "seven books" (and lamps)\nof every ship; é\n'
VOCAB = sorted({*" abcdefghijklmnopqrstuvwxyz\n'\":;()", "<unk>"})


def unpacked(data: dict) -> dict:
    """The page's packed arrays as numbers, as its JavaScript reads them."""
    read = lambda key, dtype: np.frombuffer(base64.b64decode(data[key]), dtype)  # noqa: E731
    n = len(data["text"])
    units = {
        (u["layer"], u["kind"], u["index"]): np.frombuffer(base64.b64decode(u["values"]), "<i1")
        / 127
        * u["scale"]
        for u in data["units"]
    }
    return {
        "bits": read("bits", "<u2") / 1000,
        "top": read("top", "<u2").reshape(n, -1),
        "top_p": read("top_p", "<u2").reshape(n, -1) / 65535,
        "units": units,
    }


def page_of(path: Path) -> dict:
    html = path.read_text()
    return json.loads(re.search(r"const D = (.*?);\n", html).group(1))


@pytest.mark.parametrize("kind", ["scratch", "lstm"])
def test_the_pages_numbers_are_the_models(kind):
    torch.manual_seed(0)
    if kind == "scratch":
        model = FastRNNLMScratch(core(FastRNNScratch, num_hiddens=8, sigma=0.5), VOCAB)
    else:
        rnn = core(LSTM, num_hiddens=6, num_layers=2)
        model = FastRNNLM(rnn, VOCAB, embedding=4, text={"preprocess": "none"})
    model.eval()
    indices = torch.tensor(model.vocab[list(TEXT)])
    data = page_data(model, list(TEXT), indices, None)
    page = unpacked(data)
    with torch.no_grad():
        log_p = torch.log_softmax(model(indices.view(1, -1))[0], -1).double()  # one call
        outputs, _ = model.rnn(model.inputs(indices.view(-1, 1)))
    want = -log_p[:-1].gather(1, indices[1:, None]).squeeze(1).numpy() / math.log(2)
    assert page["bits"][0] == 65.535  # the first: read, not predicted
    np.testing.assert_allclose(page["bits"][1:], want, atol=6e-4)
    assert data["figure"] == pytest.approx(want.mean(), abs=1e-6)
    assert page["bits"][1:].mean() == pytest.approx(data["figure"], abs=1e-3)
    top = log_p[:-1].exp().topk(5, dim=-1)
    assert (page["top"][1:] == top.indices.numpy()).all()
    np.testing.assert_allclose(page["top_p"][1:], top.values.numpy(), atol=1e-5)
    top_layer = max(layer for layer, _, _ in page["units"])
    outputs = outputs[:, 0].numpy()  # (T, num_hiddens): the top layer's h
    for index in range(outputs.shape[1]):  # the unit view's values: the core's outputs
        values = page["units"][(top_layer, "h", index)]
        np.testing.assert_allclose(
            values, outputs[:, index], atol=np.abs(outputs[:, index]).max() / 254
        )
    assert {kind_ for _, kind_, _ in page["units"]} == ({"h"} if kind == "scratch" else {"h", "c"})
    assert data["unk"] == [TEXT.index("é")]  # outside the vocabulary: marked <unk>
    assert {f["feature"] for f in data["features"]} == set(features(list(TEXT)))
    assert data["constant"] == []
    if kind == "scratch":  # one layer: every unit is the core's output; r recomputed by numpy
        for found in data["features"]:
            r = [np.corrcoef(features(list(TEXT))[found["feature"]], u)[0, 1] for u in outputs.T]
            best = int(np.nanargmax(np.abs(r)))
            assert data["units"][found["unit"]]["index"] == best
            assert found["r"] == pytest.approx(r[best], abs=1e-5)


def test_the_texts_features():
    found = features(list('a "bc" (d)\nef '))
    assert found["inside quotes"].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    single = features(list("'it's ours,' he said"))["inside quotes"].tolist()
    assert single == [1] * 11 + [0] * 9  # an apostrophe inside a word opens and closes nothing
    assert found["inside brackets"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert found["position in word"].tolist() == [1, 0, 0, 1, 2, 0, 0, 0, 1, 0, 0, 1, 2, 0]
    assert found["position in line"].tolist()[9:] == [10, 0, 1, 2, 3]
    assert found["just read a space"].tolist() == [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert not features(list("no line breaks"))["position in line"].any()


@pytest.fixture
def run_copy(trained_run, tmp_path) -> tuple[Path, Path]:
    """The shared tiny run's last checkpoint in a run folder of this test's own."""
    corpus, last = trained_run
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    return corpus, Path(shutil.copy(last, tmp_path / "run" / "checkpoints" / "last.ckpt"))


@pytest.mark.slow
def test_a_page_of_a_part_cut_to_length(run_copy, tmp_path):
    corpus, ckpt = run_copy
    out = cli(
        "eval.py",
        f"ckpt_path={ckpt}",
        "split=val",
        "page=true",
        "page_length=60",
        f"data.path={corpus}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("page: ")]
    assert re.fullmatch(
        r"page: the first 60 of the \d+ characters of split=val \(page_length=60\)", lines[0]
    )
    path = ckpt.parents[1] / "page-last-tiny-val.html"
    assert lines[1].startswith(f"page: {path} (")
    data = page_of(path)
    assert len(data["text"]) == 60
    figure = float(re.search(r"; ([0-9.]+) bits per character", lines[1]).group(1))
    assert unpacked(data)["bits"][1:].mean() == pytest.approx(figure, abs=1e-3)
    assert "http" not in path.read_text().replace(data["about"], "")  # nothing fetched


def test_a_whole_part_read_as_one_stream_is_evals_own_figure(run_copy, capsys):
    from rnnlm.evaluate import evaluate

    corpus, ckpt = run_copy
    settings = [f"ckpt_path={ckpt}", "split=val", f"data.path={corpus}", "data.eval_streams=1"]
    evaluate(compose_config(*settings, "data.sampling=sequential", "page=true", name="eval"))
    printed = capsys.readouterr().out
    static = re.search(r"bpc ([0-9.]+)", printed).group(1)
    assert "page: the first" not in printed
    assert re.search(rf"; {static} bits per character over the \d+ predicted", printed), printed


def raw_checkpoint(path: Path) -> Path:
    """A checkpoint of a model of the raw text's characters a, b, c."""
    model = FastRNNLMScratch(
        core(FastRNNScratch, num_hiddens=4), ["<unk>", "a", "b", "c"], text={"preprocess": "none"}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "rnnlm_class": "rnnlm.fast.lm.FastRNNLMScratch",
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "datamodule_hyper_parameters": {"split": "contiguous", "eval_streams": 2},
        },
        path,
    )
    return path


@pytest.mark.slow
def test_a_page_that_cannot_be_made_is_refused_and_nothing_changes(run_copy, tmp_path):
    corpus, ckpt = run_copy
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "digits.txt").write_text("1234 5678 90\n" * 20)
    raw = raw_checkpoint(tmp_path / "raw" / "checkpoints" / "raw.ckpt")
    cases = [  # (overrides, what the one line says)
        ([f"ckpt_path={corpus}"], "is not a checkpoint written by rnnlm"),
        ([f"ckpt_path={ckpt}", f"page_file={tmp_path}/no/such/p.html"], "cannot be written"),
        ([f"ckpt_path={ckpt}", f"data.path={tmp_path}/empty.txt"], "is empty"),
        (
            [f"ckpt_path={raw}", f"data.path={tmp_path}/digits.txt", "allow_unk=true", "split=all"],
            "0 of them in the checkpoint's vocabulary",
        ),
        ([f"ckpt_path={ckpt}", "split=windows"], "reads a part as one stream"),
        ([f"ckpt_path=[{ckpt},{ckpt}]"], "reads one checkpoint"),
    ]
    before = sorted(p for p in tmp_path.rglob("*"))
    for overrides, message in cases:
        assert message in refused("eval", *overrides, "page=true"), overrides
    out = cli("eval.py", f"ckpt_path={corpus}", "page=true", cwd=tmp_path)
    assert_one_line_error(out, "is not a checkpoint written by rnnlm")
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_the_tokens_are_in_tensorboards_projector(trained_run):
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client

    _, last = trained_run
    logdir = str(last.parents[1])
    runs = EventMultiplexer()
    runs.AddRunsFromDirectory(logdir)
    runs.Reload()
    apps = ProjectorPlugin(base_plugin.TBContext(logdir=logdir, multiplexer=runs)).get_plugin_apps()
    get = lambda route, **q: Client(apps[route]).get(route, query_string={"run": ".", **q})  # noqa: E731
    (embedding,) = json.loads(get("/info").data)["embeddings"]
    name = embedding["tensorName"]
    assert name.startswith("characters:")
    labels = get("/metadata", name=name).data.decode().splitlines()
    checkpoint = read_checkpoint(last)
    tokens = checkpoint["hyper_parameters"]["vocab"]
    assert labels == ["␣ (space)" if t == " " else t for t in tokens]
    vectors = np.frombuffer(get("/tensor", name=name).data, np.float32).reshape(len(tokens), -1)
    np.testing.assert_allclose(vectors, checkpoint["state_dict"]["rnn.W_xh"].numpy(), atol=1e-6)


@pytest.mark.slow
@pytest.mark.extra("board")
def test_the_page_in_a_real_browser(run_copy, tmp_path):
    from playwright.sync_api import sync_playwright

    corpus, ckpt = run_copy
    path = tmp_path / "page.html"
    out = cli(
        "eval.py",
        f"ckpt_path={ckpt}",
        "split=val",
        "page=true",
        "page_length=300",
        f"data.path={corpus}",
        f"page_file={path}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    fetched = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page()
        page.route(
            "**/*",
            lambda r: (
                r.continue_()
                if r.request.url.startswith("file:")
                else (fetched.append(r.request.url), r.abort())
            ),
        )
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-coloured]")
        colours = lambda: page.eval_on_selector_all(  # noqa: E731
            "#text span", "s => s.map(e => getComputedStyle(e).backgroundColor)"
        )
        surprisal = colours()
        assert len(surprisal) == 300 and "rgba(0, 0, 0, 0)" not in surprisal
        page.hover("#text span:nth-child(40)")
        tip = page.inner_text("#tip").splitlines()
        guesses = [float(line.split()[-1]) for line in tip[1:6]]
        assert len(guesses) == 5 and sum(guesses) <= 1 + 1e-6 and tip[6].startswith("came ")
        page.select_option("#view", "unit")
        assert colours() != surprisal
        page.screenshot(path=str(tmp_path / "page.png"))
        browser.close()
    assert fetched == [] and (tmp_path / "page.png").stat().st_size > 0


def test_bytes_are_shown_as_the_characters_they_spell_and_words_as_words():
    from rnnlm.vocab import BYTE_TOKENS, TextFormat

    torch.manual_seed(0)
    rnn = core(FastRNNScratch, num_hiddens=4, sigma=0.5)
    as_bytes = FastRNNLMScratch(
        rnn, list(BYTE_TOKENS), text={"preprocess": "none", "token": "byte"}
    )
    text = "café, naïve"
    tokens = TextFormat("none", "byte").split(text)
    indices = torch.tensor(as_bytes.vocab[tokens])
    data = page_data(as_bytes, tokens, indices, None)
    assert data["text"] == list(text)  # é and ï: two bytes each, one piece
    with torch.no_grad():
        log_p = torch.log_softmax(as_bytes(indices.view(1, -1))[0], -1)
    byte_bits = -log_p[:-1].gather(1, indices[1:, None]).sum() / math.log(2)
    assert data["figure"] * (len(text) - 1) == pytest.approx(float(byte_bits), rel=1e-5)
    words = "the keeper kept the log".split()
    as_words = FastRNNLMScratch(rnn, ["<unk>", "keeper", "log", "the"], text={"token": "word"})
    data = page_data(as_words, words, torch.tensor(as_words.vocab[words]), None)
    assert data["text"] == [w + " " for w in words] and data["unk"] == [2]
    assert data["features"] == [] and len(data["units"]) == 4  # the features are of characters


@pytest.mark.parametrize("kind", ["scratch", "concise", "embedding"])
def test_the_projectors_vectors_are_what_each_token_feeds_the_core(kind):
    from rnnlm.rnn import RNN

    rnn = core(FastRNNScratch if kind == "scratch" else RNN, num_hiddens=5)
    cls = FastRNNLMScratch if kind == "scratch" else FastRNNLM
    model = cls(rnn, VOCAB, embedding=3 if kind == "embedding" else None).eval()
    tokens = torch.arange(len(VOCAB)).view(1, -1)  # one step, every token a row
    with torch.no_grad():
        vectors = model.input_vectors()
        if kind == "embedding":
            torch.testing.assert_close(model.inputs(tokens)[0], vectors)
            return
        H, _ = model.rnn(model.inputs(tokens))  # from a zero state: tanh(vector + biases)
        torch_rnn = getattr(model.rnn, "rnn", None)
        bias = model.rnn.b_h if kind == "scratch" else torch_rnn.bias_ih_l0 + torch_rnn.bias_hh_l0
        torch.testing.assert_close(H[0], torch.tanh(vectors + bias))
