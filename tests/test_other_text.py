"""Any text as the model reads it (eval.py split=all): the whole text as streams with the state
carried, as a checkpoint's own test part is read; every window from a zero state only with
split=windows."""

from __future__ import annotations

import pytest

from rnnlm.evaluate import evaluate
from rnnlm.text.data import TextData

from .conftest import compose_config
from .helpers import refused


@pytest.fixture
def checkpoint(trained_run):
    """The finished tiny run all tests share (conftest): its last checkpoint and its test part."""
    corpus, ckpt = trained_run
    dm = TextData(path=str(corpus), num_train=600, num_val=300, num_steps=8)
    dm.setup()
    start, stop = dm.parts()["test"]
    return ckpt, "".join(dm.corpus.symbols[c] for c in dm.corpus.chars[start:stop].tolist())


def scored(*overrides: str) -> float:
    return evaluate(compose_config(*overrides, name="eval"))


def test_split_all_of_the_test_part_alone_is_the_test_figure_and_windows_every_window(
    checkpoint, tmp_path, capsys
):
    ckpt, test_part = checkpoint
    alone = tmp_path / "test_part.txt"
    alone.write_text(test_part)
    own = scored(f"ckpt_path={ckpt}", "split=test")
    other = scored(f"ckpt_path={ckpt}", f"data.path={alone}", "split=all")
    assert other == pytest.approx(own, rel=1e-6)
    printed = capsys.readouterr().out
    assert printed.count(f"10 streams of {len(test_part) // 10} characters, state carried") == 2
    scored(f"ckpt_path={ckpt}", f"data.path={alone}", "split=windows")
    windows = len(test_part) - 8
    assert f"{windows} windows of 8 characters), {windows * 8} tokens scored" in (
        capsys.readouterr().out
    )


def test_split_all_on_a_text_too_short_for_its_streams_is_one_line(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    short = tmp_path / "short.txt"
    short.write_text("the time")
    message = refused("eval", f"ckpt_path={ckpt}", f"data.path={short}", "split=all")
    assert message == (
        f"the text has 8 characters of {short}: too few for data.eval_streams=10 streams of at "
        "least 2: give more text, or a lower data.eval_streams"
    )


def test_a_primed_ppm_reads_the_checkpoints_own_train_part_first(checkpoint, tiny_corpus, tmp_path):
    import math

    import torch

    from rnnlm.scoring.ppm import ppm_read

    ckpt, _ = checkpoint
    other = tmp_path / "other.txt"
    other.write_text(tiny_corpus.read_text()[:400])  # words of the checkpoint's train part
    mixed = ["ppm_mixture.order=3", "ppm_mixture.weight=0", f"data.path={other}", "split=all"]
    alone, primed = (
        scored(f"ckpt_path={ckpt}", *mixed, f"ppm_mixture.prime={prime}") for prime in (False, True)
    )
    own = TextData(path=str(tiny_corpus), num_train=600, num_val=300, num_steps=8)
    own.setup()
    read = TextData(path=str(other), vocab=own.vocab.idx_to_token, num_steps=8)
    read.setup()
    first = own.lut[own.corpus.chars[: own.parts()["train"][1]].long()].tolist()
    ids = read.lut[read.corpus.chars.long()].tolist()
    rows = ppm_read(first + ids, len(own.vocab), 3, full_from=len(first))
    table = rows.gather(1, torch.tensor(ids).unsqueeze(1)).squeeze(1)
    streams = read.streams("all", 8)
    expected = torch.cat([table[s + 1 : s + streams.length] for s in streams.starts.tolist()])
    assert primed == pytest.approx(math.exp(-expected.mean()), rel=1e-6)
    assert primed < 0.8 * alone  # the primed PPM read these words before


def test_the_checkpoints_own_text_is_read_again_only_for_another_text(checkpoint, tmp_path):
    from omegaconf import OmegaConf

    from rnnlm.checkpoints import load_lm, read_checkpoint
    from rnnlm.text.scored import own_text

    ckpt, test_part = checkpoint
    saved, model = read_checkpoint(ckpt), load_lm(ckpt)
    scored_dm = object()  # what eval.py scores; returned as it is when nothing was overridden
    same = OmegaConf.create({"path": None, "num_steps": None})
    assert own_text(model, saved, str(ckpt), scored_dm, same) is scored_dm
    other = tmp_path / "other.txt"
    other.write_text(test_part)
    own = own_text(model, saved, str(ckpt), scored_dm, OmegaConf.create({"path": str(other)}))
    assert own is not scored_dm and own.parts()["train"] == (0, 608)  # the tiny run's windows
