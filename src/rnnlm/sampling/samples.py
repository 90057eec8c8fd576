"""Generated text in TensorBoard's TEXT tab while training (conf/callbacks/default.yaml)."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch

from rnnlm.errors import UserError, require_count
from rnnlm.sampling.generate import generate
from rnnlm.sampling.sampler import Sampler


class TextSamples(pl.Callback):
    """Every `every_n_epochs` (and after the last), the TEXT tab gets the text generated after
    each prefix: greedy (the book's `predict`) and sampled at `temperature`."""

    def __init__(
        self,
        every_n_epochs: int = 10,
        prefixes: Sequence[str] = ("the time traveller", "it has"),
        num_preds: int = 50,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        require_count("callbacks.text_samples.every_n_epochs", every_n_epochs)
        require_count("callbacks.text_samples.num_preds", num_preds, minimum=0)
        self.every_n_epochs, self.prefixes = every_n_epochs, list(prefixes)
        self.num_preds, self.seed = num_preds, seed
        self.samplers = {
            "greedy": Sampler.from_options("greedy"),
            f"sample_t{temperature:g}": Sampler.from_options("sample", temperature=temperature),
        }

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        due = epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs
        writer = getattr(trainer.logger, "experiment", None)
        if trainer.sanity_checking or not due or not trainer.is_global_zero:
            return
        if not hasattr(writer, "add_text"):
            return
        for name, sampler in self.samplers.items():
            generator = torch.Generator(pl_module.device).manual_seed(self.seed)
            lines = []
            for prefix in self.prefixes:
                try:
                    lines += generate(
                        pl_module, prefix, self.num_preds, sampler, generator=generator
                    )
                except UserError as err:  # another text's vocabulary: say so, train on
                    lines.append(f"(no sample: {err})")
            text = "\n".join(f"    {line}" for line in lines)  # markdown code block
            writer.add_text(f"samples/{name}", text, trainer.global_step)
