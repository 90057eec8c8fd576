"""The sine series (d2l §9.1) with an RNN: data, k-step prediction, the linear baseline, the
experiment end to end, and its bad input."""

from __future__ import annotations

import json

import pytest
import torch

from rnnlm.errors import UserError
from rnnlm.ops.trainer import bare_trainer
from rnnlm.rnn import RNN, RNNScratch
from rnnlm.sine.model import SineRNN, k_step, linear_fit
from rnnlm.sine.series import SineSeries

from .conftest import TINY_OVERRIDES, cli
from .helpers import assert_one_line_error, core, events


def test_series_and_examples():
    dm = SineSeries(T=1000, tau=4, noise=0.2, num_train=600, seed=0)
    assert dm.x.shape == (1000,) and dm.features.shape == (996, 4) and dm.labels.shape == (996,)
    assert torch.equal(dm.features[0], dm.x[:4])  # the first window is the first tau values
    assert torch.equal(dm.features[10], dm.x[10:14]) and dm.labels[10] == dm.x[14]
    noise = dm.x - torch.sin(0.01 * torch.arange(1, 1001, dtype=torch.float32))
    assert noise.std() == pytest.approx(0.2, rel=0.1)
    X, y = next(iter(dm.train_dataloader()))
    assert X.shape == (16, 4) and y.shape == (16,) and X.dtype == torch.float32
    assert sum(len(b[1]) for b in dm.train_dataloader()) == 600
    assert sum(len(b[1]) for b in dm.val_dataloader()) == 396
    assert torch.equal(SineSeries(seed=0).x, dm.x)  # the seed fixes the noise


def test_k_step_feeds_the_model_its_own_predictions():
    x = torch.arange(20.0)

    def last(window):  # "the next value is the last one"
        return window[:, -1]

    targets = slice(10, 20)
    # Predicting x[j] k steps ahead from x[j-k-3 .. j-k]: each step repeats the last value
    # it has, so the prediction is the last true value, x[j - k].
    for k in (1, 2, 5):
        assert torch.equal(k_step(last, x, 4, k, targets), x[10 - k : 20 - k])
    # A model that adds one to the last value: k steps ahead reach x[j-k] + k = x[j].

    def plus_one(window):
        return window[:, -1] + 1

    assert torch.equal(k_step(plus_one, x, 4, 6, targets), x[targets])
    with pytest.raises(UserError, match="would start before the series"):
        k_step(last, x, 4, 8, targets)


def test_linear_baseline_is_the_least_squares_solution():
    dm = SineSeries(seed=1)
    features, labels = dm.features[:600].double(), dm.labels[:600].double()
    design = torch.cat([features, torch.ones(600, 1, dtype=torch.float64)], 1)
    exact = torch.linalg.solve(design.T @ design, design.T @ labels)  # the normal equations
    predict = linear_fit(dm.features[:600], dm.labels[:600])
    window = dm.features[600:610]
    expected = window.double() @ exact[:4] + exact[4]
    assert torch.allclose(predict(window).double(), expected, atol=1e-4)


@pytest.mark.parametrize("cell", [RNNScratch, RNN])
def test_both_cores_learn_the_series(cell):
    torch.manual_seed(0)
    dm = SineSeries(seed=0)
    model = SineRNN(core(cell, num_hiddens=8), lr=0.01)
    X, y = dm.features[600:], dm.labels[600:]
    before = torch.nn.functional.mse_loss(model(X), y).item()
    bare_trainer(max_epochs=2, accelerator="cpu", devices=1).fit(model, dm)
    after = torch.nn.functional.mse_loss(model(X), y).item()
    assert after < before / 2
    assert model(X[:3]).shape == (3,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tau": 0}, "data.tau=0 is not allowed: it must be an integer >= 1"),
        ({"num_train": 996}, "data.num_train=996 is not allowed"),
        ({"noise": -0.1}, "data.noise=-0.1 is not allowed: it must be a number >= 0"),
    ],
)
def test_impossible_series(kwargs, message):
    with pytest.raises(UserError, match=message):
        SineSeries(**kwargs)


@pytest.mark.slow
def test_experiment_sine_end_to_end_and_checkpoints_of_the_other_kind(
    tmp_path, trained_run, tiny_corpus
):
    run = tmp_path / "run"
    out = cli(
        "train.py",
        "experiment=sine",
        "trainer.max_epochs=3",
        "~callbacks.progress_bar",
        "~callbacks.model_summary",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert sorted(results["horizons"], key=int) == ["1", "4", "16", "64"]
    # The linear model does not depend on the training: its errors are the series' own
    # (docs/sine.md), and they grow with the horizon from near the noise floor (0.04).
    linear = [results["horizons"][k]["linear"] for k in ("1", "4", "16", "64")]
    assert linear == pytest.approx([0.0537, 0.0605, 0.0721, 0.2597], abs=5e-4)
    assert all(results["horizons"][k]["rnn"] > 0.04 for k in ("1", "4", "16", "64"))
    # The one-step error of the chosen checkpoint is its val/mse.
    assert results["horizons"]["1"]["rnn"] == pytest.approx(results["best_val_mse"], rel=1e-4)
    assert (run / "predictions.png").read_bytes()[:4] == b"\x89PNG"
    tags = events(run).Tags()
    assert "predictions" in tags["images"] and "horizon/linear_mse_64" in tags["scalars"]
    assert "k= 64  rnn" in out.stdout
    # A character model's checkpoint cannot carry a sine run on, nor the other way round, and
    # generate.py and eval.py say what a sine checkpoint is.
    _, char_ckpt = trained_run
    out = cli("train.py", "experiment=sine", f"ckpt_path={char_ckpt}", cwd=tmp_path)
    assert_one_line_error(
        out,
        "model.class rnnlm.fast.lm.FastRNNLMScratch in the checkpoint, rnnlm.sine.model.SineRNN",
    )
    sine_ckpt = run / "checkpoints" / "last.ckpt"
    for script in ("generate.py", "eval.py"):
        out = cli(script, f"ckpt_path={sine_ckpt}", cwd=tmp_path)
        assert_one_line_error(out, "holds a sine-series regression model (experiment=sine)")
    text = [f"data.path={tiny_corpus}", *TINY_OVERRIDES, f"ckpt_path={sine_ckpt}"]
    out = cli("train.py", *text, cwd=tmp_path)
    assert_one_line_error(out, "model.class rnnlm.sine.model.SineRNN in the checkpoint")
