"""The training loop: in-memory tensors on the device, Adam, early stopping, progress bar."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from aemon.core.device import autocast
from aemon.core.families.base import Autoencoder
from aemon.training.presets import FitConfig

Corrupt = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class FitResult:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    device: str = "cpu"


def _eval_loss(model: Autoencoder, x: torch.Tensor, loss: str, batch: int) -> float:
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            b = x[i : i + batch]
            total += float(model.training_loss(b, b, loss)) * len(b)
    return total / len(x)


def fit(
    model: Autoencoder,
    train: np.ndarray,
    val: np.ndarray | None,
    cfg: FitConfig,
    device: torch.device,
    corrupt: Corrupt | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` in place to reconstruct ``train``; restore the best-validation weights.

    ``corrupt`` (denoising) maps a clean batch to a noisy one; the target stays clean.
    """
    start = time.perf_counter()
    model.to(device)
    x = torch.as_tensor(train, dtype=torch.float32, device=device)
    xv = None if val is None else torch.as_tensor(val, dtype=torch.float32, device=device)
    opts = model.optimizers(cfg.lr, cfg.weight_decay)
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, cfg.epochs) for o in opts]
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    result = FitResult(device=str(device))
    best, best_state, stale = float("inf"), None, 0
    # A bar on a terminal (left on screen at the end); in a log file a line every tenth of the
    # run instead of thousands of bar updates.
    tty = sys.stderr.isatty()
    bar = tqdm(range(cfg.epochs), desc="train", unit="epoch", disable=not (progress and tty))
    every = max(1, cfg.epochs // 10)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(x), generator=gen, device=device)
        # Batch losses stay on the device until the epoch ends: no GPU sync per step.
        losses, sizes = [], []
        for i in range(0, len(x), cfg.batch_size):
            clean = x[perm[i : i + cfg.batch_size]]
            noisy = corrupt(clean, gen) if corrupt else clean
            with autocast(device, cfg.amp):
                losses.append(model.fit_step(noisy, clean, cfg.loss, opts, gen))
            sizes.append(len(clean))
        weights = torch.tensor(sizes, dtype=torch.float64, device=device)
        total = float(torch.stack(losses).double() @ weights)
        if cfg.cosine:
            for sched in scheds:
                sched.step()
        result.train_loss.append(total / len(x))
        if xv is not None:
            result.val_loss.append(_eval_loss(model, xv, cfg.loss, 4096))
            if result.val_loss[-1] < best:
                best, best_state, stale = result.val_loss[-1], copy.deepcopy(model.state_dict()), 0
                result.best_epoch = epoch
            else:
                stale += 1
            bar.set_postfix(loss=f"{result.train_loss[-1]:.4f}", cal=f"{result.val_loss[-1]:.4f}")
        else:
            result.best_epoch = epoch
            bar.set_postfix(loss=f"{result.train_loss[-1]:.4f}")
        stop = cfg.patience is not None and stale >= cfg.patience
        if progress and not tty and ((epoch + 1) % every == 0 or stop or epoch + 1 == cfg.epochs):
            cal = f", calibration {result.val_loss[-1]:.4g}" if result.val_loss else ""
            print(
                f"aemon: epoch {epoch + 1}/{cfg.epochs}: training loss {result.train_loss[-1]:.4g}"
                f"{cal}{' (stopping early)' if stop else ''}",
                file=sys.stderr,
                flush=True,
            )
        if stop:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
