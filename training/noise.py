"""Corruptions for denoising training: the model sees a noisy batch and must return the clean one.

Specs as the CLI takes them: ``gaussian:SIGMA`` (added normal noise), ``saltpepper:P`` (each
element set to the batch's minimum or maximum with probability P), ``mask:P`` (each element set
to zero with probability P). ``clip=(lo, hi)`` clamps the result (images: ``(0, 1)``, as the
TensorFlow tutorial clips its noisy images).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from aemon.core.specs import parse_denoise

Corrupt = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def parse(spec: str, clip: tuple[float, float] | None = None) -> Corrupt:
    """A corruption function from ``KIND:AMOUNT``."""
    kind, amount = parse_denoise(spec)

    def corrupt(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if kind == "gaussian":
            noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            out = x + amount * noise
        else:
            hit = torch.rand(x.shape, generator=gen, device=x.device) < amount
            if kind == "mask":
                out = x.masked_fill(hit, 0.0)
            else:
                high = torch.rand(x.shape, generator=gen, device=x.device) < 0.5
                extreme = torch.where(high, x.max(), x.min())
                out = torch.where(hit, extreme, x)
        return out.clamp(*clip) if clip else out

    return corrupt
