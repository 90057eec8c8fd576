"""torch's CPU threads: the `threads` setting of every entry point (null: torch's default, one
per core; DDP on a CPU shares the cores among its ranks by itself)."""

from __future__ import annotations

import os

from rnnlm.errors import require_count


def use_threads(count: int | None) -> None:
    """Compute with `count` threads, here and in the processes started from here (ddp_spawn)."""
    if count is None:
        return
    import torch

    require_count("threads", count)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(count)
    torch.set_num_threads(count)
