"""The Hydra task: config -> data module -> model -> logger/callbacks -> Trainer -> fit.

Follows the book's training run (d2l.ai §9.5): 100 epochs, SGD, gradient clipping at 1.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import signal
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from rnnlm import threads
from rnnlm.board import TensorBoard, board_name
from rnnlm.callbacks import MatmulPrecision, ShareCores
from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.cli import in_multirun  # the Hydra mode query (no Lightning import)
from rnnlm.data import Vocab
from rnnlm.errors import UserError, flatten, unwrap_user_errors
from rnnlm.lm import RNNLMScratch, score
from rnnlm.runtime import (
    check_memory,
    check_run_settings,
    local_processes,
    quiet_known_noise,
    slurm_plugins,
    step_work,
    tune_allocator,
)
from rnnlm.sine import SineRNN, SineSeries, horizon_errors, plot_predictions, predictions
from rnnlm.sweep import override_keys


@unwrap_user_errors
def build(
    cfg: DictConfig, output_dir: Path
) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """Everything `fit` needs; run-time objects are passed as keyword arguments."""
    precision = MatmulPrecision(cfg.get("matmul_precision", "highest"))  # checked before data
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    dm.check_sizes()
    # The model builds its core and keeps its optimizer and scheduler as configs (partials).
    model = instantiate(cfg.model, _recursive_=False, **dm.model_inputs())
    check_memory(dm.batch_size, dm.num_steps, model)
    count = threads.choose(
        cfg.threads, step_work(model, dm.batch_size), local_processes(cfg.trainer)
    )
    # ~logger on the command line removes the group: no events, no TensorBoard
    logger = instantiate(cfg.logger, save_dir=str(output_dir)) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c is not None]
    if cfg.threads == "auto" and count > 1:
        callbacks.append(ShareCores(most=count))
    callbacks.append(precision)
    trainer = instantiate(
        cfg.trainer,
        default_root_dir=str(output_dir),  # checkpoints/ go here also without a logger
        logger=logger,
        callbacks=callbacks,
        plugins=slurm_plugins(),
    )
    return dm, model, trainer


def train(cfg: DictConfig, output_dir: str | Path) -> float:
    """Train as configured in `output_dir`; returns the final validation perplexity."""
    check_run_settings(cfg)
    tune_allocator()
    quiet_known_noise(sweep_job=in_multirun())
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if in_multirun() and cfg.trainer.get("strategy") == "ddp" and not SLURMEnvironment.detect():
        raise UserError(
            "trainer.strategy=ddp inside a multirun (-m) would re-run the whole sweep in every "
            "rank: use trainer=ddp_spawn for sweeps on one node, or hydra/launcher=slurm, "
            "which starts one SLURM task per device"
        )
    dm, model, trainer = build(cfg, Path(output_dir))
    ckpt_path = resume_path(cfg.get("ckpt_path"), Path(output_dir))
    if ckpt_path is not None:
        check_resumable(ckpt_path, model, getattr(dm, "vocab", None), cfg.trainer.get("max_epochs"))
    start = time.perf_counter()
    try:
        # Lightning raises SIGTERMException only once received_sigterm is set: one check below.
        with contextlib.suppress(SIGTERMException):
            trainer.fit(model, dm, ckpt_path=ckpt_path)
    except SystemExit:  # Ctrl-C: Lightning shuts down cleanly, then exits with status 1
        if trainer.interrupted:
            stopped(trainer, Path(output_dir), signal.SIGINT)
        raise
    if trainer.received_sigterm:  # also a SIGTERM during the last epoch's end
        stopped(trainer, Path(output_dir), signal.SIGTERM)
    metric = getattr(model, "monitor", "val/ppl")
    if metric not in trainer.callback_metrics:
        raise UserError(f"training ended before any validation epoch: no {metric} to report")
    results = {
        "epochs": trainer.current_epoch,
        "fit_seconds": round(time.perf_counter() - start, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if isinstance(model, SineRNN):
        results.update(series_figures(dm, trainer, model))
        finish(cfg, Path(output_dir), trainer, model, results)
        return results["val_mse"]
    results.update(
        val_ppl=float(trainer.callback_metrics["val/ppl"]),
        best_val_ppl=model.best_val_ppl,
        train_ppl=float(trainer.callback_metrics.get("train/ppl", float("nan"))),
    )
    if trainer.is_global_zero:
        results.update(test_figures(dm, trainer, model))
    finish(cfg, Path(output_dir), trainer, model, results)
    return results["val_ppl"]


def series_figures(dm: SineSeries, trainer: pl.Trainer, model: SineRNN) -> dict:
    """The sine series: the RNN (the checkpoint val/mse selected) and the linear model on the
    lags, each predicting 1 to 64 steps ahead over the validation part; the figure in
    TensorBoard's IMAGES tab and `predictions.png` in the run folder."""
    chosen = selected_checkpoint(trainer, model.monitor)
    scored = load_lm(chosen, map_location=model.device, kind=SineRNN) if chosen else model
    predicted = predictions(scored, dm, scored.hparams.horizons)  # made once, scored and drawn
    horizons = horizon_errors(predicted, dm)
    if trainer.is_global_zero:
        figure = plot_predictions(predicted, dm)
        figure.savefig(Path(trainer.default_root_dir) / "predictions.png", dpi=100)
        if isinstance(trainer.logger, TensorBoard):
            trainer.logger.experiment.add_figure("predictions", figure, trainer.global_step)
            scalars = {
                f"horizon/{name}_mse_{k}": value
                for k, errors in horizons.items()
                for name, value in errors.items()
            }
            trainer.logger.log_metrics(scalars, step=trainer.global_step)
    return {
        "val_mse": float(trainer.callback_metrics["val/mse"]),
        "best_val_mse": model.best_val_mse,
        "horizons": horizons,
        "checkpoint": chosen or "the weights at the end of training",
    }


def selected_checkpoint(trainer: pl.Trainer, metric: str = "val/ppl") -> str | None:
    """The checkpoint that `metric` selected (with weight averaging: the averaged weights)."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor == metric and callback.best_model_path:
            return callback.best_model_path
    return None


def test_figures(dm, trainer: pl.Trainer, model) -> dict:
    """Score the test part once, after training, with the weights val/ppl selected, streamed
    with the state carried; log test/loss, test/ppl and test/bpc. Never used for selection."""
    if not dm.has_test():
        print(f"no test figure: nothing is left of {dm.text_file()} after the validation part")
        return {}
    chosen = selected_checkpoint(trainer)
    scored = load_lm(chosen, map_location=model.device) if chosen else model
    loss, tokens = score(scored, dm.loader("test", whole=True))
    metrics = {"test/loss": loss, "test/ppl": math.exp(loss), "test/bpc": loss / math.log(2)}
    if trainer.logger is not None:
        trainer.logger.log_metrics(metrics, step=trainer.global_step)
    return {
        "test_loss": loss,
        "test_ppl": metrics["test/ppl"],
        "test_bpc": metrics["test/bpc"],
        "test_tokens": tokens,
        "test_checkpoint": chosen or "the weights at the end of training",
    }


def stopped(trainer: pl.Trainer, output_dir: Path, signum: signal.Signals) -> None:
    """SIGTERM (`kill`, a scheduler's preemption) or SIGINT (Ctrl-C): Lightning stops cleanly
    but would exit with status 0 (SIGTERM) or 1, saying nothing of what is kept. Say it, with
    the command that carries on, and exit 128 + the signal's number."""
    last = last_checkpoint(output_dir)
    kept = (
        f"{last} holds the last finished epoch: carry on with {carry_on_command(output_dir)}"
        if last.is_file()
        else "no epoch had finished, no checkpoint was written"
    )
    print(
        f"error: training was stopped by {signum.name} in epoch {trainer.current_epoch}; {kept}",
        file=sys.stderr,
    )
    raise SystemExit(128 + signum)


def carry_on_command(output_dir: Path) -> str:
    """The command line of this run, resuming from its folder's last.ckpt."""
    from hydra.core.hydra_config import HydraConfig

    given = []
    if HydraConfig.initialized():
        given = [
            arg
            for arg in HydraConfig.get().overrides.task
            if not arg.startswith(("ckpt_path=", "hydra.run.dir="))
        ]
    return shlex.join(
        ["python", "train.py", *given, "ckpt_path=last", f"hydra.run.dir={output_dir}"]
    )


@rank_zero_only
def finish(cfg: DictConfig, output_dir: Path, trainer, model, results: dict) -> None:
    """Rank 0: results.json (for sweep reports), the HPARAMS tab, the printed summary."""
    tmp = output_dir / ".results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(output_dir / "results.json")
    if isinstance(trainer.logger, TensorBoard):
        trainer.logger.log_run_settings(run_settings(cfg), status="success")
    elif trainer.logger is not None:
        trainer.logger.log_hyperparams(run_settings(cfg))
    if trainer.logger is not None:
        trainer.logger.finalize("success")
    if "horizons" in results:
        print(f"val/mse {results['val_mse']:.4f} (best {results['best_val_mse']:.4f})")
        print("mean squared error k steps ahead on the validation part:")
        for k, errors in results["horizons"].items():
            print(f"  k={k:>3}  rnn {errors['rnn']:.4f}  linear {errors['linear']:.4f}")
    else:
        print(f"val/ppl {results['val_ppl']:.3f}")
        if "test_ppl" in results:
            print(
                f"test/ppl {results['test_ppl']:.3f} ({results['test_bpc']:.3f} bits per "
                f"character, {results['test_tokens']} characters, {results['test_checkpoint']})"
            )
        predicted = model.predict(cfg.prefix, cfg.num_preds)
        print(f"predict({cfg.prefix!r}, {cfg.num_preds}): {predicted!r}")
    last = last_checkpoint(output_dir)
    print(f"run folder {output_dir}" + (f"; last checkpoint {last}" if last.is_file() else ""))


def run_settings(cfg: DictConfig) -> dict:
    """The settings that tell runs apart, flat (`model/rnn/num_hiddens`) for TensorBoard's
    HPARAMS tab: the model, the data's shape, the trainer's budget, the seed, and every key
    set on the command line (config groups by the option chosen, e.g. `experiment`)."""
    keep_data = ("batch_size", "num_steps", "num_train", "num_val", "path", "split", "sampling")
    trainer = ("max_epochs", "gradient_clip_val", "accelerator", "devices")
    settings = flatten(
        {
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "data": {k: cfg.data.get(k) for k in keep_data},
            "trainer": {k: cfg.trainer.get(k) for k in trainer},
            "seed": cfg.seed,
        },
        sep="/",
    )
    for key, value in command_line_settings(cfg).items():
        settings[board_name(key)] = value
    return settings


def command_line_settings(cfg: DictConfig) -> dict:
    """Keys given on the command line with the value this run has (a group: its option)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    found = {}
    for key in override_keys(list(hydra.overrides.task)):
        if key in hydra.runtime.choices:
            found[key] = hydra.runtime.choices[key]
        else:
            value = OmegaConf.select(cfg, key, default=None)
            found[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return found


def resume_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """`ckpt_path=last`: this run folder's own last.ckpt if there is one (a requeued or
    restarted job carries on), else a fresh start; any other value is a checkpoint file."""
    if ckpt_path != "last":
        return ckpt_path
    last = last_checkpoint(output_dir)
    return str(last) if last.is_file() else None


def last_checkpoint(output_dir: Path) -> Path:
    """Where the `last_checkpoint` callback (conf/callbacks/default.yaml) writes in a run."""
    return output_dir / "checkpoints" / "last.ckpt"


def check_resumable(
    ckpt_path: str, model: pl.LightningModule, vocab: Vocab | None, max_epochs: int | None
) -> None:
    """Resuming needs our checkpoint of the same kind of model, trained on text with the same
    vocabulary, and epochs left to train."""
    checkpoint = read_checkpoint(ckpt_path)
    kind = SineRNN if isinstance(model, SineRNN) else RNNLMScratch
    saved = getattr(load_lm(ckpt_path, checkpoint=checkpoint, kind=kind), "vocab", None)
    if vocab is not None and (saved is None or saved.idx_to_token != vocab.idx_to_token):
        raise UserError(
            f"ckpt_path={ckpt_path!r} was trained with a vocabulary of "
            f"{len(saved) if saved else 0} tokens, the data now has {len(vocab)}: resume with "
            "the data.path it was trained on"
        )
    done = checkpoint.get("epoch", -1) + 1
    if max_epochs is not None and done >= max_epochs:
        raise UserError(
            f"ckpt_path={ckpt_path!r} has already trained {done} epochs and "
            f"trainer.max_epochs={max_epochs}: nothing is left to train; raise "
            "trainer.max_epochs to carry on"
        )
