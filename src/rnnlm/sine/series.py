"""d2l.ai §9.1's series: x_t = sin(0.01 t) + N(0, 0.2^2) noise, t = 1 ... T. Example i reads the
`tau` values x[i : i + tau] and predicts x[i + tau]; the first `num_train` train, the rest
validate:   x: x0 x1 x2 x3 x4 x5 ...   example 0 [x0 x1 x2 x3] -> x4   example 1 [x1 .. x4] -> x5"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from rnnlm.errors import UserError, require_count, require_number


class SineSeries(pl.LightningDataModule):
    """The noisy sine of d2l §9.1 as (tau lags -> next value) examples."""

    def __init__(
        self,
        T: int = 1000,
        tau: int = 4,
        noise: float = 0.2,
        num_train: int = 600,
        batch_size: int = 16,
        seed: int = 42,
    ) -> None:
        super().__init__()
        require_count("data.T", T)
        require_count("data.tau", tau)
        require_count("data.batch_size", batch_size)
        require_number("data.noise", noise, ">= 0")
        require_count("data.num_train", num_train)
        if num_train >= T - tau:
            raise UserError(
                f"data.num_train={num_train} is not allowed: the series of data.T={T} values "
                f"makes {T - tau} examples of data.tau={tau} lags, and some must be left to "
                f"validate: use data.num_train < {T - tau}"
            )
        self.save_hyperparameters()
        self.T, self.tau, self.noise, self.num_train = T, tau, noise, num_train
        self.batch_size, self.seed = batch_size, seed
        generator = torch.Generator().manual_seed(seed)
        self.time = torch.arange(1, T + 1, dtype=torch.float32)
        self.x = torch.sin(0.01 * self.time) + torch.randn(T, generator=generator) * noise
        self.features = lags(self.x, tau)  # (T - tau, tau)
        self.labels = self.x[tau:]  # (T - tau,)

    @property
    def val_targets(self) -> slice:
        """The positions of the series that the validation examples predict."""
        return slice(self.num_train + self.tau, self.T)

    def loader(self, part: slice, shuffle: bool) -> DataLoader:
        data = TensorDataset(self.features[part], self.labels[part])
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self.loader(slice(0, self.num_train), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(slice(self.num_train, None), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """No part of its own to test on: the test loop scores val again with the chosen
        checkpoint."""
        return self.val_dataloader()

    def model_inputs(self) -> dict:
        return {}

    def has_test(self) -> bool:
        return True


def lags(x: torch.Tensor, tau: int) -> torch.Tensor:
    """(len(x) - tau, tau): row i is x[i : i + tau]."""
    return x.unfold(0, tau, 1)[: len(x) - tau]
