"""Continue a prefix: python generate.py ckpt_path=PATH prefix="it has" [strategy=sample]
(or prefix_file=PROMPT.txt, - for standard input: any text as it is)"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rnnlm.fast import threads
from rnnlm.ops.cli import (
    check_command_line,
    quote_text_values,
    report_user_errors,
    require_given,
    run_entry_point,
)


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
@report_user_errors
def main(cfg: DictConfig):
    threads.prepare(cfg.threads)  # before torch is imported
    require_given(cfg)  # a missing ckpt_path is reported before the slow imports
    from rnnlm.generate import generate

    return generate(cfg)


if __name__ == "__main__":
    sys.argv[1:] = quote_text_values(sys.argv[1:])
    check_command_line(sys.argv[1:], Path(__file__).parent / "conf", "generate")
    run_entry_point(main)
