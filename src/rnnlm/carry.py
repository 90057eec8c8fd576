"""The state a language model carries from one streamed batch to the next (`rnnlm.text.streams`),
and the check that makes it safe: a batch must start where the batch before it ended."""

from __future__ import annotations

from typing import Any

import torch

from rnnlm.errors import UserError


class CarriedStates:
    """One carried state per split (train, val, test), each read by one batch after another."""

    def __init__(self) -> None:
        self.by_split: dict[str, tuple[int, Any]] = {}  # split -> (next position, state)

    def take(self, split: str, position: list[int]) -> Any:
        """The state a batch of `split` starts from: none for windows (no `position`) and at
        position 0, else the last batch's, which must have ended at `position`."""
        next_start, state = self.by_split.pop(split, (None, None))
        start = int(position[0]) if position else 0
        if start == 0:
            return None
        if next_start != start:
            ended = (
                "no batch before it" if next_start is None else f"the last ended at {next_start}"
            )
            raise UserError(
                f"a {split} batch of streams starts at position {start} but {ended}: "
                "streamed batches must arrive in order (data.sampling=sequential needs "
                "trainer.use_distributed_sampler=false)"
            )
        return state

    def keep(self, split: str, position: list[int], steps: int, state: Any) -> None:
        """Keep `state`, detached, for the batch `steps` after `position` (nothing for windows)."""
        if position:
            self.by_split[split] = (int(position[0]) + steps, detach_state(state))


def detach_state(state: Any) -> Any:
    return map_state(state, torch.Tensor.detach)


def map_state(state: Any, fn) -> Any:
    """`fn` applied to every tensor of a state (a tensor, or nested tuples of them: the LSTM's)."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    return tuple(map_state(s, fn) for s in state)
