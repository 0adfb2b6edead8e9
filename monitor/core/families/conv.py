"""Convolutional autoencoders: 1-D for windows ``[L]`` or ``[C, L]``, 2-D for images ``[H, W]``
or ``[C, H, W]``. Strided convolutions halve the resolution per layer; transposed convolutions
restore it (the 2-D one is the TensorFlow tutorial's denoiser: 28 -> 14 -> 7 -> 14 -> 28). With
``latent``, a dense layer between them squeezes the codes into that many: without one a 1-D
model keeps more codes than its window has values and rebuilds anomalous windows too."""

from __future__ import annotations

import math

import torch
from torch import nn

from aemon.core.families.base import Autoencoder
from aemon.core.families.dense import OUTPUTS, initialise
from aemon.core.families.registry import register


def _conv_ae(dims: int, channels: int, widths: list[int], kernel: int, output: str):
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    up = nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d
    pad = kernel // 2
    enc: list[nn.Module] = []
    prev = channels
    for w in widths:
        enc += [conv(prev, w, kernel, stride=2, padding=pad), nn.ReLU()]
        prev = w
    dec: list[nn.Module] = []
    for w in [*reversed(widths[:-1]), widths[0]]:
        dec += [up(prev, w, kernel, stride=2, padding=pad, output_padding=1), nn.ReLU()]
        prev = w
    dec += [conv(prev, channels, kernel, padding=pad), OUTPUTS[output]()]
    return nn.Sequential(*enc), nn.Sequential(*dec)


class _ConvAE(Autoencoder):
    dims = 1
    # a window's activations are channels x its length: 1-D on ECG's 140 samples 44,000
    # windows/s in passes of 64, 21,500 of 256, 12,600 of 4,096; 2-D on 28 x 28 images 10,900
    # / 9,700 / 3,900 at 64 / 256 / 1,024
    cpu_rows = 256

    def __init__(
        self,
        input_shape: list[int],
        widths: list[int],
        kernel: int = 3,
        output: str = "linear",
        init: str = "torch",
        latent: int | None = None,
    ) -> None:
        super().__init__()
        if len(input_shape) not in (self.dims, self.dims + 1):
            raise ValueError(f"input shape {input_shape} does not suit a {self.dims}-D conv AE")
        self.hparams = {
            "input_shape": list(input_shape),
            "widths": list(widths),
            "kernel": kernel,
            "output": output,
            "init": init,
        }
        self.input_shape = tuple(input_shape)
        self.channels = input_shape[0] if len(input_shape) > self.dims else 1
        self.encoder, self.decoder = _conv_ae(self.dims, self.channels, widths, kernel, output)
        if latent is not None:
            self.hparams["latent"] = latent
            with torch.no_grad():
                grid = (1, self.channels, *self.input_shape[-self.dims :])
                shape = self.encoder(torch.zeros(grid)).shape[1:]
            flat = math.prod(shape)
            self.encoder = nn.Sequential(self.encoder, nn.Flatten(), nn.Linear(flat, latent))
            self.decoder = nn.Sequential(
                nn.Linear(latent, flat), nn.ReLU(), nn.Unflatten(1, shape), self.decoder
            )
        initialise(self, init)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(len(x), self.channels, *self.input_shape[-self.dims :]))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        crop = tuple(slice(0, n) for n in self.input_shape[-self.dims :])
        return out[(..., *crop)].reshape(len(z), *self.input_shape)


@register("conv1d")
class ConvAE1d(_ConvAE):
    """1-D convolutional AE for windows; lengths that are not a power of two are cropped back."""

    dims = 1


@register("conv2d")
class ConvAE2d(_ConvAE):
    """2-D convolutional AE for images."""

    dims = 2
