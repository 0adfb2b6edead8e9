"""Training speed: one epoch of aemon's fit loop against a seed-style loop, in the same run.

The seed-style loop is the usual tutorial code: a ``DataLoader`` over a ``TensorDataset`` that
collates 64 single samples into each batch. aemon's loop keeps the data as one tensor on the
device and slices shuffled index ranges. Both train the same dense AE (784 -> 64 -> 784,
Glorot init, MSE, Adam 1e-3) for one epoch; each is warmed up on a few batches first.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from training.fit import fit
from training.models import build
from training.presets import IMAGE_PRESETS


def _model(shape: tuple[int, ...]) -> torch.nn.Module:
    torch.manual_seed(0)
    return build("dense", {"input_shape": list(shape), **IMAGE_PRESETS["dense"].hparams})


def seed_style_epoch(x: np.ndarray, batch: int = 64) -> float:
    """Seconds for one epoch through a per-sample DataLoader."""
    model = _model(x.shape[1:])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(x)), batch_size=batch, shuffle=True)

    def step(b: torch.Tensor) -> None:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(b), b).backward()
        opt.step()

    for i, (b,) in enumerate(loader):  # warm-up
        step(b)
        if i == 5:
            break
    start = time.perf_counter()
    for (b,) in loader:
        step(b)
    return time.perf_counter() - start


def aemon_epoch(x: np.ndarray, batch: int) -> float:
    """Seconds for one epoch of :func:`training.fit.fit` at ``batch``."""
    cfg = replace(IMAGE_PRESETS["dense"].fit, epochs=1, batch_size=batch, cosine=False)
    device = torch.device("cpu")
    fit(_model(x.shape[1:]), x[: batch * 6], None, cfg, device, progress=False)  # warm-up
    return fit(_model(x.shape[1:]), x, None, cfg, device, progress=False).seconds


def compare(x: np.ndarray) -> dict[str, object]:
    seed = seed_style_epoch(x)
    ours = {b: aemon_epoch(x, b) for b in (64, 256)}
    return {
        "images": len(x),
        "seed_style_batch64_s": round(seed, 4),
        "aemon_batch64_s": round(ours[64], 4),
        "aemon_batch256_s": round(ours[256], 4),
        "ratio_batch64": round(seed / ours[64], 2),
        "ratio_batch256": round(seed / ours[256], 2),
    }
