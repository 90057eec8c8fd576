"""Score a checkpoint, or a list of them (an ensemble): python eval.py ckpt_path=PATH split=test"""

import hydra
from omegaconf import DictConfig

from rnnlm.errors import require_given, user_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@user_errors
def main(cfg: DictConfig) -> float:
    require_given(cfg)  # a missing ckpt_path is reported before the slow imports
    from rnnlm.evaluate import evaluate

    return evaluate(cfg)


if __name__ == "__main__":
    main()
