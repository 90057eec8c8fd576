"""Score a checkpoint: python eval.py ckpt_path=PATH [data.path=FILE] [split=val|all]"""

import hydra
from omegaconf import DictConfig

from rnnlm import threads
from rnnlm.errors import report_user_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@report_user_errors
def main(cfg: DictConfig):
    threads.prepare(cfg.threads)  # before torch is imported
    from rnnlm.evaluate import evaluate

    return evaluate(cfg)


if __name__ == "__main__":
    main()
