"""The Hydra task end to end: real conf/, a few epochs per model, events, checkpoints, CLI."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from rnnlm.fast.lm import FastRNNLMScratch
from rnnlm.lm import RNNLMScratch
from rnnlm.text.data import TextData
from rnnlm.train import train

from .conftest import TINY_OVERRIDES, cli
from .helpers import core, error_line, scalars


@pytest.mark.parametrize("model", ["scratch", "concise", "scratch_book", "concise_book"])
def test_train_few_epochs_logs_and_checkpoints(model, compose_train, tiny_corpus, tmp_path):
    cfg = compose_train(f"model={model}", f"data.path={tiny_corpus}", *TINY_OVERRIDES)
    val_ppl = train(cfg, tmp_path)

    logged = scalars(tmp_path)
    assert {"train/loss", "train/ppl", "val/loss", "val/ppl"} <= logged.keys()
    assert len(logged["train/loss"]) == 3
    assert logged["train/loss"][-1] < logged["train/loss"][0]  # it learns
    assert logged["val/ppl"][-1] == pytest.approx(val_ppl, rel=1e-6)
    for loss, ppl in zip(logged["val/loss"], logged["val/ppl"], strict=True):
        assert ppl == pytest.approx(math.exp(loss), rel=1e-5)
    assert val_ppl < 28  # better than uniform over the vocabulary
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2  # the final epoch, whether or not it was the best
    assert len(list((tmp_path / "checkpoints").glob("best-*.ckpt"))) == 1


def test_val_ppl_is_token_weighted_over_the_whole_split(compose_train, tiny_corpus, tmp_path):
    # 300 validation windows in batches of 64: the last batch is smaller (44 windows), so a
    # mean of per-batch values would differ from the token-weighted one.
    cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, "trainer.max_epochs=2")
    val_ppl = train(cfg, tmp_path)
    model = FastRNNLMScratch.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    dm = TextData(batch_size=64, num_steps=8, num_train=600, num_val=300, path=str(tiny_corpus))
    dm.setup()
    total, count = 0.0, 0
    with torch.no_grad():
        for X, Y in dm.val_dataloader():
            logits = model(X).reshape(-1, model.vocab_size)
            total += F.cross_entropy(logits, Y.reshape(-1), reduction="sum").item()
            count += Y.numel()
    assert count == 300 * 8
    assert val_ppl == pytest.approx(math.exp(total / count), rel=1e-4)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return cli("train.py", *args, cwd=cwd)


@pytest.mark.slow
def test_cli_single_run_prints_ppl_and_prediction(tiny_corpus, tmp_path):
    out = run_cli(
        f"data.path={tiny_corpus}", *TINY_OVERRIDES, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "val/ppl " in out.stdout and "predict('it has', 20): 'it has" in out.stdout
    run = tmp_path / "run"
    assert (run / ".hydra" / "config.yaml").is_file()
    assert list(run.glob("events.out.tfevents.*")) and (run / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_cli_bad_value_is_one_line_without_traceback_nor_run_folder(tiny_corpus, tmp_path):
    out = run_cli(f"data.path={tiny_corpus}", "data.num_steps=0", "hydra.run.dir=run", cwd=tmp_path)
    assert error_line(out) == "data.num_steps=0 is not allowed: it must be an integer >= 1"
    assert not (tmp_path / "run").exists()


def test_lr_scheduler_from_the_command_line_steps_every_epoch(compose_train, tiny_corpus, tmp_path):
    # StepLR halves the rate after every epoch: train/lr shows it in TensorBoard.
    step = ["model/lr_scheduler=step", "model.lr_scheduler.step_size=1"]
    cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, *step)
    train(cfg, tmp_path)
    assert scalars(tmp_path)["train/lr"] == pytest.approx([1.0, 0.5, 0.25])
    # ReduceLROnPlateau watches val/ppl (patience 0, threshold 1: every epoch is a plateau).
    plateau = ["model/lr_scheduler=plateau", "model.lr_scheduler.factor=0.1"]
    plateau += ["model.lr_scheduler.patience=0", "+model.lr_scheduler.threshold=1"]
    cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, *plateau)
    train(cfg, tmp_path / "plateau")
    assert scalars(tmp_path / "plateau")["train/lr"] == pytest.approx([1.0, 0.1, 0.01])


def test_any_torch_optimizer_and_scheduler_by_config(compose_train, tiny_corpus, tmp_path):
    from rnnlm.checkpoints import load_lm

    chosen = [
        "model.optimizer._target_=torch.optim.RMSprop",
        "+model.optimizer.alpha=0.9",
        "model/lr_scheduler=cosine",
        "model.lr=0.01",
    ]
    cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, *chosen)
    train(cfg, tmp_path)
    optimizer = load_lm(tmp_path / "checkpoints" / "last.ckpt").configure_optimizers()
    assert type(optimizer["optimizer"]).__name__ == "RMSprop"
    assert optimizer["optimizer"].param_groups[0]["alpha"] == 0.9
    assert type(optimizer["lr_scheduler"]["scheduler"]).__name__ == "CosineAnnealingLR"
    assert optimizer["lr_scheduler"]["scheduler"].T_max == 3  # ${trainer.max_epochs}, resolved


def test_matmul_precision_is_set_in_the_run(compose_train, tiny_corpus, tmp_path):
    before = torch.get_float32_matmul_precision()
    try:
        cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, "matmul_precision=high")
        train(cfg, tmp_path / "high")
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_an_optimizer_is_given_one_way_a_partial_config():
    from rnnlm.errors import UserError
    from rnnlm.rnn import RNNScratch

    from .helpers import tokens

    model = RNNLMScratch(core(RNNScratch, num_hiddens=4), tokens(5))  # the book's: SGD, lr 1
    optimizer = model.configure_optimizers()
    assert type(optimizer).__name__ == "SGD" and optimizer.param_groups[0]["lr"] == 1
    with pytest.raises(UserError, match=r"model.optimizer='sgd' is not allowed: give a config"):
        RNNLMScratch(core(RNNScratch, num_hiddens=4), tokens(5), optimizer="sgd")
