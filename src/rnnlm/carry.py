"""The state a language model carries from one streamed batch to the next (`rnnlm.text.streams`),
and the check that makes it safe: a batch must start where the batch before it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rnnlm.errors import UserError


@dataclass
class Carried:
    """A split's last state (detached), and the position its next batch must start at."""

    next: int
    state: Any


class CarriedStates:
    """One carried state per split (train, val, test), each read by one batch after another."""

    def __init__(self) -> None:
        self.by_split: dict[str, Carried] = {}

    def take(self, split: str, position: list[int]) -> Any:
        """The state a batch of `split` starts from: none for windows (no `position`) and at
        position 0, else the last batch's, which must have ended at `position`."""
        carried = self.by_split.pop(split, None)
        if not position or int(position[0]) == 0:
            return None
        start = int(position[0])
        if carried is None or carried.next != start:
            ended = "no batch before it" if carried is None else f"the last ended at {carried.next}"
            raise UserError(
                f"a {split} batch of streams starts at position {start} but {ended}: "
                "streamed batches must arrive in order (data.sampling=sequential needs "
                "trainer.use_distributed_sampler=false)"
            )
        return carried.state

    def keep(self, split: str, position: list[int], steps: int, state: Any) -> None:
        """Keep `state`, detached, for the batch `steps` after `position` (nothing for windows)."""
        if position:
            self.by_split[split] = Carried(int(position[0]) + steps, detach_state(state))


def detach_state(state: Any) -> Any:
    return map_state(state, torch.Tensor.detach)


def map_state(state: Any, fn) -> Any:
    """`fn` applied to every tensor of a state (a tensor, or nested tuples of them: the LSTM's)."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    return tuple(map_state(s, fn) for s in state)
