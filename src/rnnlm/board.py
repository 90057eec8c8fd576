"""What TensorBoard shows of a run and of a sweep.

- `TensorBoard` (conf/logger/tensorboard.yaml): Lightning's logger without its `epoch`
  scalar, so the dashboard's groups are this project's own (`test`, `train`, `val`). A run's
  settings go to the HPARAMS tab as one row: every setting that tells runs apart, integers
  as written (not `32.000`), and as metrics the last values of the run's `METRICS` scalars.
  A single run writes no HPARAMS experiment: TensorBoard would pick one run's at random and
  show its columns for every run.
  Its CUSTOM SCALARS tab opens on `LAYOUT`: train and val perplexity on one chart first.
  (TensorBoard's Time Series tab opens the first two groups by name, `test` and `train`.)
- `write_experiment`: a sweep's HPARAMS experiment, written in each job's folder when the job
  starts (TensorBoard takes it from any run; in the sweep folder it would be an empty run):
  the keys the sweep varies as the columns shown, and `METRICS`.

Open a sweep with `tensorboard --logdir <sweep folder>`: its runs are named by the job's
overrides (`3_model.lr=2,model.rnn.num_hiddens=64`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from rnnlm.errors import flatten

# Scalars the HPARAMS tab shows for every run (their last value).
METRICS = ("val/ppl_best", "val/ppl", "test/ppl", "test/bpc", "test/bits_per_char", "train/ppl")

# The CUSTOM SCALARS tab, in the order a user reads a run: category -> chart -> tag patterns.
LAYOUT = {
    "perplexity": {
        "train and val perplexity": ["Multiline", [r"^(train|val)/ppl$"]],
        "best val perplexity so far": ["Multiline", [r"^val/ppl_best$"]],
        "test perplexity (static and dynamic)": ["Multiline", [r"^test/ppl"]],
    },
    "bits per character": {
        "every part": ["Multiline", [r"^(train|val|test)/(bpc|bits_per_char)"]],
    },
    "training": {
        "loss": ["Multiline", [r"^(train|val|test)/loss$"]],
        "learning rate": ["Multiline", [r"^train/lr$"]],
        "gradient norm before clipping": ["Multiline", [r"^train/grad_norm$"]],
    },
}


class TensorBoard(TensorBoardLogger):
    """Lightning's TensorBoardLogger, events straight in the run folder, no `epoch` scalar,
    settings as a row of the HPARAMS tab (`log_run_settings`)."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not getattr(self, "_layout_written", False):
            # Lightning's logger has no hook for a dashboard layout: written with the first scalars.
            self.experiment.add_custom_scalars(LAYOUT)
            self._layout_written = True
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)

    @rank_zero_only
    def log_run_settings(self, settings: dict[str, Any], status: str = "success") -> None:
        """The run's settings (flat, `a/b` names) as one row of the HPARAMS tab, for a run
        that ended with `status` (success or failure)."""
        started = plugin_data_pb2.SessionStartInfo()
        for name, value in settings.items():
            started.hparams[name].CopyFrom(plain_value(value))
        ended = plugin_data_pb2.SessionEndInfo(status=f"STATUS_{status.upper()}")
        writer = self.experiment._get_file_writer()
        writer.add_summary(
            plugin_summary(metadata.SESSION_START_INFO_TAG, session_start_info=started)
        )
        writer.add_summary(plugin_summary(metadata.SESSION_END_INFO_TAG, session_end_info=ended))
        writer.flush()


def plain_value(value: Any) -> struct_pb2.Value:
    """Floats as numbers; integers, booleans, lists and None as they read in the config."""
    if isinstance(value, float):
        return struct_pb2.Value(number_value=value)
    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    if value is None:
        return struct_pb2.Value(string_value="null")
    if isinstance(value, bool):
        return struct_pb2.Value(string_value=str(value).lower())
    return struct_pb2.Value(string_value=str(value))


def plugin_summary(tag: str, **data: Any) -> Summary:
    content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data)
    plugin = SummaryMetadata.PluginData(
        plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def write_experiment(folder: Path, keys: list[str]) -> None:
    """The HPARAMS experiment of a sweep in `folder`: `keys` (dotted config keys, or config
    groups) as its columns, `METRICS` as its metrics."""
    from torch.utils.tensorboard import SummaryWriter

    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=board_name(key), display_name=key, differs=True) for key in keys
        ],
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=tag)
            for tag in METRICS
        ],
    )
    with SummaryWriter(str(folder)) as writer:
        writer._get_file_writer().add_summary(
            plugin_summary(metadata.EXPERIMENT_TAG, experiment=experiment)
        )


def board_name(key: str) -> str:
    """`model.rnn.num_hiddens` -> `model/rnn/num_hiddens`, as nested settings are flattened."""
    return key.replace(".", "/")


def run_settings(cfg: DictConfig) -> dict:
    """The settings that tell runs apart, flat (`model/rnn/num_hiddens`) for TensorBoard's
    HPARAMS tab: the model, the data's shape, the trainer's budget, the seed, and every key
    set on the command line (config groups by the option chosen, e.g. `experiment`)."""
    keep_data = (
        "batch_size", "num_steps", "num_train", "num_val", "path", "split", "sampling",
        "preprocess", "token", "min_freq",
    )  # fmt: skip
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
    from rnnlm.sweep import override_keys

    hydra = HydraConfig.get()
    found = {}
    for key in override_keys(list(hydra.overrides.task)):
        if key in hydra.runtime.choices:
            found[key] = hydra.runtime.choices[key]
        else:
            value = OmegaConf.select(cfg, key, default=None)
            found[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return found
