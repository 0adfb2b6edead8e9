"""Adversarial autoencoder (dense): the encoder also plays generator against a discriminator
that tells encoded latents from samples of a standard Gaussian prior (Makhzani et al., 2015).

Each batch: a reconstruction update of encoder and decoder, a discriminator update (prior
samples are real, codes are fake), then a generator update of the encoder to fool it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aemon.core.families.base import Autoencoder, adam
from aemon.core.families.dense import _stack, check_choices, dense_decoder
from aemon.core.families.registry import register


@register("aae")
class AAE(Autoencoder):
    def __init__(
        self,
        input_shape: list[int],
        widths: list[int],
        latent: int,
        activation: str = "relu",
        output: str = "linear",
        disc_widths: list[int] | None = None,
    ) -> None:
        super().__init__()
        check_choices(activation, output)
        disc = list(disc_widths or [64, 64])
        self.hparams = {
            "input_shape": list(input_shape),
            "widths": list(widths),
            "latent": latent,
            "activation": activation,
            "output": output,
            "disc_widths": disc,
        }
        self.input_shape = tuple(input_shape)
        n = math.prod(input_shape)
        self.encoder = _stack([n, *widths, latent], activation, 0.0, last_act=False)
        self.decoder = dense_decoder(latent, widths, n, activation, output)
        self.discriminator = _stack([latent, *disc, 1], "leaky_relu", 0.0, last_act=False)
        self.latent = latent

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *self.input_shape)

    def sample(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """Draws from the prior through the decoder."""
        z = torch.randn(n, self.latent, generator=gen, device=next(self.parameters()).device)
        return self.decode(z)

    def optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        ae = [*self.encoder.parameters(), *self.decoder.parameters()]
        return [
            adam(ae, lr, weight_decay),
            adam(self.discriminator.parameters(), lr / 2),
            adam(self.encoder.parameters(), lr / 2),
        ]

    def loss_name(self, loss: str) -> str:
        return f"{super().loss_name(loss)}, the reconstruction part"

    def fit_step(self, noisy, clean, loss, opts, gen) -> torch.Tensor:
        ae_opt, d_opt, g_opt = opts
        ae_opt.zero_grad(set_to_none=True)
        rec = self.training_loss(noisy, clean, loss)
        rec.backward()
        ae_opt.step()

        z_fake = self.encode(noisy)
        z_real = torch.randn(z_fake.shape, generator=gen, device=z_fake.device, dtype=z_fake.dtype)
        d_opt.zero_grad(set_to_none=True)
        real, fake = self.discriminator(z_real), self.discriminator(z_fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
        d_loss = d_loss + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        d_loss.backward()
        d_opt.step()

        g_opt.zero_grad(set_to_none=True)
        fooled = self.discriminator(self.encode(noisy))
        F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled)).backward()
        g_opt.step()
        return rec.detach()
