"""Variational autoencoder (dense): reparameterised Gaussian latent, reconstruction + beta * KL.

The anomaly score may be the reconstruction error (``mae``/``mse``) or ``elbo``: squared error
per element plus the KL divergence shared out over the elements, so that a window's mean is its
negative ELBO (up to constants) divided by its size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aemon.core.families.base import Autoencoder, elementwise_error
from aemon.core.families.dense import _stack, check_choices, dense_decoder
from aemon.core.families.registry import register


@register("vae")
class VAE(Autoencoder):
    def __init__(
        self,
        input_shape: list[int],
        widths: list[int],
        latent: int,
        activation: str = "relu",
        output: str = "linear",
        beta: float = 1.0,
        recon: str = "mse",
    ) -> None:
        super().__init__()
        check_choices(activation, output)
        if recon not in ("mse", "bce"):
            raise ValueError("recon must be 'mse' or 'bce'")
        if recon == "bce" and output != "sigmoid":
            raise ValueError("a BCE reconstruction needs output='sigmoid' (inputs in [0, 1])")
        self.hparams = {
            "input_shape": list(input_shape),
            "widths": list(widths),
            "latent": latent,
            "activation": activation,
            "output": output,
            "beta": beta,
            "recon": recon,
        }
        self.input_shape = tuple(input_shape)
        n = math.prod(input_shape)
        self.body = _stack([n, *widths], activation, 0.0, last_act=True)
        self.mu = nn.Linear(widths[-1] if widths else n, latent)
        self.logvar = nn.Linear(widths[-1] if widths else n, latent)
        self.decoder = dense_decoder(latent, widths, n, activation, output)
        self.latent = latent

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x.flatten(1))
        return self.mu(h), self.logvar(h).clamp(-10, 10)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *self.input_shape)

    def sample(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """Draws from the prior through the decoder."""
        z = torch.randn(n, self.latent, generator=gen, device=self.mu.weight.device)
        return self.decode(z)

    @staticmethod
    def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)

    def training_loss(self, noisy: torch.Tensor, clean: torch.Tensor, loss: str) -> torch.Tensor:
        mu, logvar = self._posterior(noisy)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = self.decode(z)
        if self.hparams["recon"] == "bce":
            # In float32 outside autocast (aemon's is CUDA's alone): CUDA refuses BCE under it.
            with torch.autocast("cuda", enabled=False):
                rec = F.binary_cross_entropy(recon.float(), clean.float(), reduction="none")
            rec = rec.flatten(1).sum(1)
        else:
            rec = (recon - clean).square().flatten(1).sum(1)
        return (rec + self.hparams["beta"] * self._kl(mu, logvar)).mean() / clean[0].numel()

    def loss_name(self, loss: str) -> str:
        recon = "binary cross-entropy" if self.hparams["recon"] == "bce" else "squared error"
        return f"negative ELBO ({recon} + KL) per value"

    def errors(self, x: torch.Tensor, score: str) -> torch.Tensor:
        mu, logvar = self._posterior(x)
        recon = self.decode(mu)
        if score != "elbo":
            return elementwise_error(x, recon, score)
        kl = self._kl(mu, logvar) / x[0].numel()
        return (recon - x).square() + kl.view(-1, *([1] * (x.dim() - 1)))
