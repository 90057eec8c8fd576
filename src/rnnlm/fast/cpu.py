"""The CPU side of a run: `ShareCores` for `threads=auto`, the allocator, and the work of one
step that the thread count is chosen for (`rnnlm.fast.threads`)."""

from __future__ import annotations

import ctypes
import sys
import time

import pytorch_lightning as pl
import torch

from rnnlm.fast import threads


class ShareCores(pl.Callback):
    """`threads=auto`: every `every_s` seconds of training, use the cores other processes leave
    free (1 to `most` threads): spinning threads on a wanted core make each op wait."""

    def __init__(self, most: int, every_s: float = 0.5) -> None:
        self.most, self.every_s = most, every_s
        self.watch = threads.BusyElsewhere()
        self.next_check = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watch = threads.BusyElsewhere()
        self.next_check = time.monotonic() + self.every_s

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if time.monotonic() < self.next_check:
            return
        self.next_check = time.monotonic() + self.every_s
        elsewhere = self.watch.cores()
        if elsewhere is not None:
            wanted = threads.sharing(self.most, elsewhere)
            if wanted != torch.get_num_threads():
                torch.set_num_threads(wanted)


def tune_allocator() -> None:
    """Keep freed multi-MB tensors in glibc's heap: fresh mmap'd pages for every step's buffers
    cost more page faults than maths (docs/performance.md)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 512 << 20)
    libc.mallopt(M_TOP_PAD, 64 << 20)


def step_work(model: pl.LightningModule, batch_size: int) -> int:
    """Multiply-adds of one time step of one layer (its gates together): the ops threads share."""
    rnn = model.rnn
    return batch_size * rnn.gates * rnn.num_hiddens * (rnn.num_hiddens + rnn.num_inputs)
