"""Training speed: one epoch of aemon's fit loop against seed-style loops, in the same run.

Seed-style means the usual tutorial code, a ``DataLoader`` at batch 64 that fetches and collates
single samples. Two of them are measured:

- ``seed_style``: what ``torchvision.datasets.MNIST(transform=ToTensor())`` does per sample,
  rebuilt without torchvision: the uint8 image becomes a PIL image, then a float tensor in [0, 1];
- ``tensor_dataset``: the cheapest per-sample loader, a ``TensorDataset`` over the float images.

aemon's loop keeps the data as one tensor on the device and slices shuffled index ranges. All
train the same dense AE (784 -> 64 -> 784, Glorot init, MSE, Adam 1e-3) for one epoch, each
warmed up on a few batches first. The machine's other load varies from second to second,
so each loop runs once per round, interleaved, and the medians are compared.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

from aemon.core.families import build
from aemon.training.fit import fit
from aemon.training.presets import IMAGE_PRESETS

SEED_BATCH = 64
AEMON_BATCHES = (64, 256, 1024)


class PerSampleImages(Dataset):
    """uint8 images converted one at a time, as torchvision's MNIST with ``ToTensor`` does."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = torch.from_numpy(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        pil = Image.fromarray(self.images[i].numpy(), mode="L")
        pixels = torch.from_numpy(np.array(pil, np.uint8, copy=True))
        return pixels.view(1, *pixels.shape).float().div(255)


def _model(shape: tuple[int, ...]) -> torch.nn.Module:
    torch.manual_seed(0)
    return build("dense", {"input_shape": list(shape), **IMAGE_PRESETS["dense"].hparams})


def _loader_epoch(batches: Iterable[torch.Tensor], shape: tuple[int, ...]) -> float:
    """Seconds for one epoch over ``batches`` (re-iterable), after a 6-batch warm-up."""
    model = _model(shape)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(b: torch.Tensor) -> None:
        b = b.reshape(len(b), *shape)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(b), b).backward()
        opt.step()

    for i, b in enumerate(batches):
        step(b)
        if i == 5:
            break
    start = time.perf_counter()
    for b in batches:
        step(b)
    return time.perf_counter() - start


def seed_style_epoch(x: np.ndarray) -> float:
    """Seconds for one epoch through torchvision-style per-sample conversion."""
    pixels = np.rint(x * 255).astype(np.uint8)
    return _loader_epoch(
        DataLoader(PerSampleImages(pixels), batch_size=SEED_BATCH, shuffle=True), x.shape[1:]
    )


def tensor_dataset_epoch(x: np.ndarray) -> float:
    """Seconds for one epoch through a ``TensorDataset`` loader of the float images."""
    rows = TensorDataset(torch.from_numpy(x))
    loader = DataLoader(rows, batch_size=SEED_BATCH, shuffle=True, collate_fn=_stack_first)
    return _loader_epoch(loader, x.shape[1:])


def _stack_first(items: list[tuple[torch.Tensor]]) -> torch.Tensor:
    return torch.stack([item[0] for item in items])


def aemon_epoch(x: np.ndarray, batch: int) -> float:
    """Seconds for one epoch of :func:`aemon.training.fit.fit` at ``batch``."""
    cfg = replace(IMAGE_PRESETS["dense"].fit, epochs=1, batch_size=batch, cosine=False)
    device = torch.device("cpu")
    fit(_model(x.shape[1:]), x[: batch * 6], None, cfg, device, progress=False)  # warm-up
    return fit(_model(x.shape[1:]), x, None, cfg, device, progress=False).seconds


def compare(x: np.ndarray, rounds: int = 3) -> dict[str, object]:
    """Medians over ``rounds`` of both seed-style loops and of aemon's loop at each of
    :data:`AEMON_BATCHES` (one of each per round, interleaved); ratios of the medians."""
    runs: dict[str, list[float]] = {}
    for _ in range(rounds):
        runs.setdefault("seed_style_batch64_s", []).append(seed_style_epoch(x))
        runs.setdefault("tensor_dataset_batch64_s", []).append(tensor_dataset_epoch(x))
        for b in AEMON_BATCHES:
            runs.setdefault(f"aemon_batch{b}_s", []).append(aemon_epoch(x, b))
    med = {k: statistics.median(v) for k, v in runs.items()}
    doc: dict[str, object] = {"images": len(x), "rounds": rounds}
    doc.update({k: round(v, 4) for k, v in med.items()})
    for b in AEMON_BATCHES:
        ours = med[f"aemon_batch{b}_s"]
        doc[f"ratio_batch{b}"] = round(med["seed_style_batch64_s"] / ours, 2)
        doc[f"ratio_batch{b}_vs_tensor_dataset"] = round(med["tensor_dataset_batch64_s"] / ours, 2)
    return doc
