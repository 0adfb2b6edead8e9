"""The small protocol every autoencoder family implements."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

SCORES = ("mae", "mse", "elbo")


def elementwise_error(x: torch.Tensor, recon: torch.Tensor, score: str) -> torch.Tensor:
    """Per-element error (absolute or squared), the same shape as ``x``."""
    diff = recon - x
    return diff.abs() if score == "mae" else diff.square()


def reconstruction_loss(recon: torch.Tensor, clean: torch.Tensor, loss: str) -> torch.Tensor:
    """The mean ``l1`` (else squared) error of a reconstruction, fused in one kernel."""
    fused = nn.functional.l1_loss if loss == "l1" else nn.functional.mse_loss
    return fused(recon, clean)


def adam(params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused kernel (CPU and CUDA): one update for all parameters per step."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)


class Autoencoder(nn.Module):
    """``encode``/``decode`` plus the training loss and the anomaly score.

    Inputs are batches ``[n, *input_shape]``. Families with extra loss terms (VAE, AAE) override
    :meth:`training_loss`; the anomaly score is the mean per-element reconstruction error unless a
    family defines another.
    """

    hparams: dict[str, object]
    # windows a forward pass takes at most on the CPU: past it the activations leave the cache
    # and each window costs more (a forward pass timed alone, one thread, 2026-12-07: the dense
    # families gain up to 1,024 and little past it; the convolutional ones take 256, conv.py)
    cpu_rows = 1024

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def training_loss(self, noisy: torch.Tensor, clean: torch.Tensor, loss: str) -> torch.Tensor:
        """Loss of reconstructing ``clean`` from ``noisy`` (the same tensor unless denoising)."""
        return reconstruction_loss(self(noisy), clean, loss)

    def loss_name(self, loss: str) -> str:
        """What :meth:`training_loss` computes, for the loss plot's axis."""
        return {"l1": "mean absolute error (L1)", "l2": "mean squared error (L2)"}[loss]

    def errors(self, x: torch.Tensor, score: str) -> torch.Tensor:
        """Per-element reconstruction error, for scores and for the parts that contribute most."""
        return elementwise_error(x, self(x), score)

    def optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        """The optimizers :meth:`fit_step` uses (adversarial families need several)."""
        return [adam(self.parameters(), lr, weight_decay)]

    def fit_step(
        self,
        noisy: torch.Tensor,
        clean: torch.Tensor,
        loss: str,
        opts: list[torch.optim.Optimizer],
        gen: torch.Generator,
    ) -> torch.Tensor:
        """One update on a batch; returns the reconstruction loss for the progress bar."""
        (opt,) = opts
        opt.zero_grad(set_to_none=True)
        value = self.training_loss(noisy, clean, loss)
        value.backward()
        opt.step()
        return value.detach()
