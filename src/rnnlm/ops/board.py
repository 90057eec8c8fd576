"""What TensorBoard shows of a run and of many, and what a finished run writes.

- `TextSamples` (callbacks.text_samples): text generated as the model learns, in the TEXT tab.

- `TensorBoard` (conf/logger/tensorboard.yaml): Lightning's logger, events straight in the run
  folder, without its `epoch` scalar. TIME SERIES and SCALARS open on the first two groups of
  tags in name order, so the test figures (single dots) are written under `~test/` (after
  `train/` and `val/`); everywhere else (checkpoints, monitors, results.json) they are `test/`.
  CUSTOM SCALARS opens on `LAYOUT`: train and val perplexity on one chart first.
- HPARAMS: each run writes its settings (`run_settings`) and no experiment of its own: from
  the runs' settings TensorBoard makes the columns itself, those in which the runs under
  `--logdir` differ first, and every scalar a metric (one experiment written anywhere would
  be taken as the columns of every run).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.tensorboard.summary import hparams

from rnnlm.errors import UserError, require_count
from rnnlm.ops import report
from rnnlm.ops.files import flatten, write_json
from rnnlm.ops.resume import last_checkpoint
from rnnlm.sampling import Sampler, generate

TEST_GROUP = "~test"  # `test/ppl` -> `~test/ppl` in TensorBoard: the group sorts after val

# The CUSTOM SCALARS tab, in the order a user reads a run: category -> chart -> tag patterns.
LAYOUT = {
    "perplexity": {
        "train and val perplexity": ["Multiline", [r"^(train|val)/ppl$"]],
        "best val perplexity so far": ["Multiline", [r"^val/ppl_best$"]],
        "test perplexity (static and dynamic)": ["Multiline", [r"^~test/ppl"]],
    },
    "bits per character": {
        "every part": ["Multiline", [r"^(train|val|~test)/(bpc|bits_per_char)"]],
    },
    "training": {
        "loss": ["Multiline", [r"^(train|val|~test)/loss$"]],
        "learning rate": ["Multiline", [r"^train/lr$"]],
        "gradient norm before clipping": ["Multiline", [r"^train/grad_norm$"]],
    },
}


def board_tag(name: str) -> str:
    """The TensorBoard tag of a metric: `test/...` under `TEST_GROUP`, the others as named."""
    group, sep, rest = name.partition("/")
    return f"{TEST_GROUP}/{rest}" if sep and group == "test" else name


class TensorBoard(TensorBoardLogger):
    """Lightning's TensorBoardLogger, events straight in the run folder, no `epoch` scalar,
    the test group after train and val, settings as a row of the HPARAMS tab."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not getattr(self, "_layout_written", False):
            # Lightning's logger has no hook for a dashboard layout: written with the first scalars.
            self.experiment.add_custom_scalars(LAYOUT)
            self._layout_written = True
        shown = {board_tag(k): v for k, v in metrics.items() if k != "epoch"}
        super().log_metrics(shown, step)

    @rank_zero_only
    def log_run_settings(self, settings: dict[str, Any]) -> None:
        """The run's settings (flat, `a/b` names) as one row of the HPARAMS tab: torch's
        `hparams` summaries without the experiment (`log_hyperparams` would write one)."""
        _, started, ended = hparams({k: plain_value(v) for k, v in settings.items()}, {})
        writer = self.experiment._get_file_writer()
        writer.add_summary(started)
        writer.add_summary(ended)
        writer.flush()


def plain_value(value: Any) -> float | str:
    """Floats as numbers; integers, booleans, lists and None as they read in the config."""
    if isinstance(value, float):
        return value
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    return value if isinstance(value, str) else str(value)


# Not settings of the model or its training: where things are written and shown.
NOT_SETTINGS = ("hydra", "logger", "callbacks", "ckpt_path", "verbose")


def run_settings(cfg: DictConfig) -> dict:
    """Every setting of the run, flat (`model/rnn/num_hiddens`), for TensorBoard's HPARAMS
    tab, and the option each config group took (`model`: `scratch`, `experiment`, ...)."""
    from hydra.core.hydra_config import HydraConfig

    plain = OmegaConf.to_container(cfg, resolve=True)
    settings = flatten({k: v for k, v in plain.items() if k not in NOT_SETTINGS}, sep="/")
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        for group, option in choices.items():
            if option is not None and not group.startswith(NOT_SETTINGS):
                settings[group] = option
    return settings


@rank_zero_only
def finish(cfg: DictConfig, output_dir: Path, trainer, model, results: dict) -> None:
    """Rank 0: results.json (for sweep reports), the HPARAMS tab, the printed summary."""
    write_json(output_dir / "results.json", results)
    if isinstance(trainer.logger, TensorBoard):
        trainer.logger.log_run_settings(run_settings(cfg))
    elif trainer.logger is not None:
        trainer.logger.log_hyperparams(run_settings(cfg))
    if trainer.logger is not None:
        trainer.logger.finalize("success")
    for line in report.summary(model, results):
        print(line)
    last = last_checkpoint(output_dir)
    print(f"run folder {output_dir}" + (f"; last checkpoint {last}" if last.is_file() else ""))


class TextSamples(pl.Callback):
    """Every `every_n_epochs` (and after the last epoch), log the text generated after each
    prefix: greedy (the book's `predict`) and sampled at `temperature`."""

    def __init__(
        self,
        every_n_epochs: int = 10,
        prefixes: Sequence[str] = ("the time traveller", "it has"),
        num_preds: int = 50,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        require_count("callbacks.text_samples.every_n_epochs", every_n_epochs)
        require_count("callbacks.text_samples.num_preds", num_preds, minimum=0)
        self.every_n_epochs, self.prefixes, self.num_preds = (
            every_n_epochs,
            list(prefixes),
            num_preds,
        )
        self.samplers = {
            "greedy": Sampler.from_options("greedy"),
            f"sample_t{temperature:g}": Sampler.from_options("sample", temperature=temperature),
        }
        self.seed = seed

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        due = epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs
        writer = getattr(trainer.logger, "experiment", None)
        if trainer.sanity_checking or not due or not trainer.is_global_zero:
            return
        if not hasattr(writer, "add_text"):
            return
        for name, sampler in self.samplers.items():
            generator = torch.Generator(pl_module.device).manual_seed(self.seed)
            lines = []
            for prefix in self.prefixes:
                try:
                    lines.append(
                        generate(pl_module, prefix, self.num_preds, sampler, generator=generator)[0]
                    )
                except UserError as err:  # another text's vocabulary: say so, train on
                    lines.append(f"(no sample: {err})")
            text = "\n".join(f"    {line}" for line in lines)  # markdown code block
            writer.add_text(f"samples/{name}", text, trainer.global_step)
