"""Train a character-level RNN LM: python train.py model=scratch|concise [key=value ...]"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rnnlm.fast import threads
from rnnlm.ops.cli import check_command_line, quote_text_values, report_user_errors, run_entry_point
from rnnlm.ops.sweep import register_resolvers

register_resolvers()  # before Hydra resolves the sweep folder names
# Optuna's storage layer imports alembic, which logs every plugin it sets up at INFO.
logging.getLogger("alembic").setLevel(logging.WARNING)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@report_user_errors
def main(cfg: DictConfig) -> float:
    threads.prepare(cfg.threads)  # before torch is imported
    from rnnlm.train import train  # after Hydra has parsed the command line: --help stays fast

    return train(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    sys.argv[1:] = quote_text_values(sys.argv[1:])  # prefix="It Has!" reads as it is
    check_command_line(sys.argv[1:], Path(__file__).parent / "conf", "train")
    run_entry_point(main, " before training started")
