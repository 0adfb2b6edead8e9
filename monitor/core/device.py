"""Device choice and the inference helpers shared by training and the monitor."""

from __future__ import annotations

import contextlib

import torch

from aemon.core.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` means CUDA when present, else the CPU; a device this machine lacks is a
    :class:`ConfigError` naming the setting (training, scoring and ``serve`` alike)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: not auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA was asked for but is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS was asked for but is not available here")
    return device


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """bf16 mixed precision on CUDA GPUs that support it; a no-op elsewhere.

    bf16 keeps float32's range, so training needs no loss scaling; GPUs without bf16 run float32.
    """
    if device.type != "cuda" or not enabled or not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)
