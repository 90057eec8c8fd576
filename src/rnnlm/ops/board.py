"""What TensorBoard shows of a run and of many, and what a finished run writes.

TIME SERIES and SCALARS open on the first two tag groups by name: test figures are written under
`~test/` (after train and val). HPARAMS: each run writes its settings and no experiment, so
TensorBoard makes the columns from the settings in which the runs under `--logdir` differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.tensorboard.summary import hparams
from torch.utils.tensorboard.writer import FileWriter

from rnnlm.checkpoints import read_checkpoint
from rnnlm.files import flatten, write_json
from rnnlm.ops.resume import last_checkpoint

# Not settings of the model or its training: where things are written and shown.
NOT_SETTINGS = ("hydra", "logger", "callbacks", "ckpt_path", "verbose")


class TensorBoard(TensorBoardLogger):
    """Lightning's logger (conf/logger/tensorboard.yaml): events in the run folder, no `epoch`
    scalar, `test/` as `~test/`, settings as an HPARAMS row."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        shown = {("~" + k if k.startswith("test/") else k): v for k, v in metrics.items()}
        super().log_metrics({k: v for k, v in shown.items() if k != "epoch"}, step)

    @rank_zero_only
    def log_run_settings(self, settings: dict[str, Any]) -> None:
        """The settings as one HPARAMS row: what `log_hyperparams` writes but its experiment
        summary, which would fix every later run's columns (TensorBoard makes them from the
        settings in which the runs differ when no run has one)."""
        plain = {
            k: v if isinstance(v, float | str) else plain_value(v) for k, v in settings.items()
        }
        _, started, ended = hparams(plain, {})
        writer = FileWriter(self.log_dir)  # an events file of its own: Lightning closed its own
        writer.add_summary(started)
        writer.add_summary(ended)
        writer.close()


def plain_value(value: Any) -> str:
    """Integers, booleans, lists and None as they read in the config."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def run_settings(cfg: DictConfig) -> dict:
    """Every setting of the run, flat (`model/rnn/num_hiddens`), and each group's option."""
    from hydra.core.hydra_config import HydraConfig

    plain = OmegaConf.to_container(cfg, resolve=True)
    settings = flatten({k: v for k, v in plain.items() if k not in NOT_SETTINGS}, sep="/")
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    settings |= {
        g: o for g, o in choices.items() if o is not None and not g.startswith(NOT_SETTINGS)
    }
    return settings


@rank_zero_only
def finish(cfg: DictConfig, output_dir: Path, trainer, model, metrics: dict, done: dict) -> None:
    """Rank 0: results.json (`done`, the epochs and the model's figures, for sweep reports),
    the HPARAMS row, the printed summary."""
    last = last_checkpoint(output_dir)
    # The last checkpoint's epochs: a ddp_spawn parent's trainer does not get its workers' count.
    epochs = read_checkpoint(last).get("epoch", -1) + 1 if last.is_file() else trainer.current_epoch
    results = {"epochs": epochs} | done | model.results(metrics)
    write_json(output_dir / "results.json", results)
    if trainer.logger is not None:
        log = getattr(trainer.logger, "log_run_settings", trainer.logger.log_hyperparams)
        log(run_settings(cfg))
        trainer.logger.finalize("success")
    for line in model.summary(results):
        print(line)
    print(f"run folder {output_dir}" + (f"; last checkpoint {last}" if last.is_file() else ""))
