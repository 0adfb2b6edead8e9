"""The training loop: in-memory tensors on the device, Adam, early stopping, progress bar."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from aemon.training.device import autocast
from aemon.training.models.base import Autoencoder

Corrupt = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class FitConfig:
    """How to train. ``patience`` epochs without a better validation loss stop the run."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    loss: str = "l1"
    weight_decay: float = 0.0
    cosine: bool = False
    patience: int | None = None
    seed: int = 0
    amp: bool = True

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "l2"):
            raise ValueError("loss must be 'l1' or 'l2'")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch size must be >= 1 and the learning rate > 0")


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
    # disable=None: a bar on a terminal only, never thousands of lines in a log file.
    bar = tqdm(
        range(cfg.epochs),
        desc="train",
        unit="epoch",
        disable=None if progress else True,
        leave=False,
    )
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
            bar.set_postfix(loss=f"{result.train_loss[-1]:.4f}", val=f"{result.val_loss[-1]:.4f}")
            if cfg.patience is not None and stale >= cfg.patience:
                break
        else:
            result.best_epoch = epoch
            bar.set_postfix(loss=f"{result.train_loss[-1]:.4f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
