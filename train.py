"""Train a character-level RNN LM: python train.py model=scratch|concise [key=value ...]"""

import signal

# Ctrl-C waits until the task starts: cut short, the imports, Hydra writing the run folder or
# torch's import would end in a traceback and leave a half-made folder behind.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rnnlm.errors import user_errors
from rnnlm.ops.sweep import register_resolvers

register_resolvers()  # before Hydra resolves the sweep folder names
# Optuna's storage layer imports alembic, which logs every plugin it sets up at INFO.
logging.getLogger("alembic").setLevel(logging.WARNING)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors  # a Ctrl-C held back until here ends the run in one line
def main(cfg: DictConfig) -> float:
    from rnnlm.train import train  # after Hydra has parsed the command line: --help stays fast

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return train(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    for arg in sys.argv[1:]:  # Hydra answers a group set to null with a traceback
        group, _, value = arg.lstrip("+").partition("=")
        if value.lower() in ("null", "none") and (Path(__file__).parent / "conf" / group).is_dir():
            sys.exit(f"{arg} is not allowed: to turn {group} off write ~{group}")
    main()
