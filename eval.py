"""Score a checkpoint, or a list of them (an ensemble): python eval.py ckpt_path=PATH split=test"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rnnlm.fast import threads
from rnnlm.ops.cli import check_command_line, report_user_errors, require_given, run_entry_point


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@report_user_errors
def main(cfg: DictConfig):
    threads.prepare(cfg.threads)  # before torch is imported
    require_given(cfg)  # a missing ckpt_path is reported before the slow imports
    from rnnlm.evaluate import evaluate

    return evaluate(cfg)


if __name__ == "__main__":
    check_command_line(sys.argv[1:], Path(__file__).parent / "conf", "eval")
    run_entry_point(main)
