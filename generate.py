"""Continue a prefix: python generate.py ckpt_path=PATH prefix="it has" [strategy=sample]
(or prefix_file=PROMPT.txt, - for standard input: any text as it is)"""

import hydra
from omegaconf import DictConfig

from rnnlm.errors import require_given, user_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
@user_errors
def main(cfg: DictConfig) -> list[str]:
    require_given(cfg)  # a missing ckpt_path is reported before the slow imports
    from rnnlm.generate import generate

    return generate(cfg)


if __name__ == "__main__":
    main()
