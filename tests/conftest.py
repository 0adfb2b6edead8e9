"""Shared fixtures: small synthetic window data the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.datasets.table import WindowTable, write_windows

LENGTH = 32


def make_windows(n_normal: int, n_anomalous: int, seed: int = 0) -> WindowTable:
    """Noisy sine windows (normal) and sines with a burst (anomalous), shuffled."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, LENGTH, dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi, n_normal + n_anomalous).astype(np.float32)
    x = np.sin(t[None, :] + phase[:, None]) + 0.05 * rng.standard_normal((len(phase), LENGTH))
    x[n_normal:, 10:16] += rng.choice([-2.0, 2.0], size=(n_anomalous, 1))
    label = np.r_[np.zeros(n_normal), np.ones(n_anomalous)].astype(np.int8)
    order = rng.permutation(len(x))
    return WindowTable(
        values=x[order].astype(np.float32),
        stream=np.array([f"s{i % 3}" for i in range(len(x))]),
        seq=np.arange(len(x), dtype=np.int64),
        label=label[order],
    )


@pytest.fixture(scope="session")
def window_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "windows.csv"
    write_windows(path, make_windows(400, 60))
    return path
