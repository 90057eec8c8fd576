"""How many CPU threads torch computes with: the `threads` setting of every entry point.

    threads=auto   (default) one thread for small steps, else one per core; while training,
                   the cores other processes leave free (`ShareCores`)
    threads=torch  torch's default: one OpenMP thread per core, spinning between ops
    threads=N      exactly N threads

Spinning threads gain little on the book's small ops and lose many times over beside another
process. `prepare` runs before torch starts; `choose` once the model's size is known; both
export `OMP_NUM_THREADS` for the processes started from this one."""

from __future__ import annotations

import os
import time

from rnnlm.errors import UserError

ALLOWED = "auto, torch, or an integer >= 1"
# Below this many multiply-adds per step of one layer (batch x hidden x (hidden + inputs)),
# a step is too small for a second thread to pay off (measured: benchmarks/bench_contention.py).
SHARE_FROM = 8_000_000


def parse(value: object) -> int | str:
    """`auto`, `torch` or a positive thread count; anything else is a `UserError`."""
    if value in ("auto", "torch"):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise UserError(f"threads={value!r} is not allowed: use {ALLOWED}")


def cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under SLURM or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def prepare(value: object) -> int | str:
    """Check `threads` and, before torch starts its thread pool, export a fixed count."""
    threads = parse(value)
    if isinstance(threads, int):
        export(threads)
    return threads


def per_process(work: int, processes: int = 1) -> int:
    """Threads for `threads=auto`: one for steps of fewer than `SHARE_FROM` multiply-adds,
    else the cores shared out among the processes of the run (DDP ranks on one machine)."""
    return 1 if work < SHARE_FROM else share(processes)


def share(processes: int = 1) -> int:
    """This process's share of the cores among the `processes` of its run (DDP ranks)."""
    return max(1, cores() // max(1, processes))


def choose(value: object, work: int, processes: int = 1) -> int:
    """Set torch's thread count for a model doing `work` multiply-adds per step; returns it."""
    import torch

    threads = parse(value)
    if threads == "torch":
        return torch.get_num_threads()
    count = threads if isinstance(threads, int) else per_process(work, processes)
    export(count)
    torch.set_num_threads(count)
    return count


def export(count: int) -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(count)


def machine_busy() -> float | None:
    """CPU seconds spent so far by every process on the machine (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class BusyElsewhere:
    """Cores that other processes kept busy since the last `cores()` call: the machine's busy CPU
    time minus this process's, over the wall time."""

    def __init__(self) -> None:
        self.last = (time.monotonic(), machine_busy(), time.process_time())

    def cores(self) -> float | None:
        now = (time.monotonic(), machine_busy(), time.process_time())
        (t0, busy0, own0), (t1, busy1, own1) = self.last, now
        self.last = now
        if busy0 is None or busy1 is None or t1 - t0 <= 0:
            return None
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))


def sharing(most: int, busy_elsewhere: float) -> int:
    """Threads that leave the cores other processes use to them, between 1 and `most`."""
    return max(1, min(most, cores() - round(busy_elsewhere)))
