"""Shared fixtures: small synthetic window data the tests make themselves; a real
Kafka-protocol broker for the session (or the one AEMON_TEST_BOOTSTRAP names) and a small ECG
detector with its held-out beats as a window CSV (for the broker tiers)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aemon
from aemon.core.table import WindowTable, write_windows
from aemon.tools.broker import EmbeddedBroker
from aemon.training.datasets import ecg5000

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


DAY_S = 86_400


def office_hours(days: float, step: int = 600, start: int = 1_700_006_400) -> pd.DataFrame:
    """A load that is high from 8:00 to 20:00 UTC and low at night, every ``step`` seconds
    (``start`` is a midnight), with a little noise."""
    t = start + step * np.arange(int(days * DAY_S / step))
    hour = (t % DAY_S) / 3600
    value = np.where((hour >= 8) & (hour < 20), 10.0, 1.0)
    value += 0.2 * np.random.default_rng(0).standard_normal(len(t))
    return pd.DataFrame({"timestamp": t, "value": value})


def office_weeks(days: int, step: int = 3600, start: int = 1_699_833_600) -> pd.DataFrame:
    """Office hours on weekdays only (``start`` is a Monday midnight): weekends stay at the
    night's level, every ``step`` seconds."""
    frame = office_hours(days, step, start)
    weekend = ((frame.timestamp - start) // DAY_S) % 7 >= 5
    frame.loc[weekend, "value"] -= 9.0 * (frame.value[weekend] > 5.5)
    return frame


def two_streams(hours_b: float) -> pd.DataFrame:
    """Stream ``a``: three days every 10 minutes; ``b``: ``hours_b`` hours every minute."""
    a = office_hours(3).assign(stream="a")
    b = office_hours(hours_b / 24, step=60).assign(stream="b")
    return pd.concat([a, b], ignore_index=True)


def samples_csv(path, n=400, streams=("a",), flat=False, seed=0, spike_at=None):
    rng = np.random.default_rng(seed)
    lines = ["timestamp,stream,seq,value"]
    for s in streams:
        t = np.arange(n)
        x = np.zeros(n) if flat else np.sin(2 * np.pi * t / 40) + 0.05 * rng.standard_normal(n)
        if flat:
            x[::50] = 1e-4  # mostly zeros, the odd tiny blip
        if spike_at is not None:
            x[spike_at : spike_at + 5] += 5.0
        lines += [f"{1_700_000_000 + 60 * i},{s},{i},{float(x[i])!r}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def window_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "windows.csv"
    write_windows(path, make_windows(400, 60))
    return path


@pytest.fixture(scope="session", autouse=True)
def no_daemon_left():
    """Kill any ``aemon serve`` process a failed test left running."""
    yield
    from tests.integration.helpers import Daemon

    for d in Daemon.started:
        d.kill()


@pytest.fixture(scope="session")
def bootstrap():
    given = os.environ.get("AEMON_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    broker = EmbeddedBroker()
    asyncio.run(broker.start())
    yield broker.bootstrap
    broker.stop()


def train_ecg(out: Path, holdout: Path | None = None, seed: int = 0) -> Path:
    """The ECG5000 tutorial detector (about a second) fitted through the API and saved to
    ``out``; its held-out beats written to ``holdout``."""
    split = ecg5000.split(ecg5000.load())
    det = aemon.fit(
        split.train.values, split.train.label, preset="ecg-tutorial", seed=seed, name="ecg5000"
    )
    if holdout is not None:
        write_windows(holdout, split.test)
    return det.save(out)


@pytest.fixture(scope="session")
def ecg(tmp_path_factory) -> tuple[Path, Path]:
    """(artifact, held-out CSV)."""
    root = tmp_path_factory.mktemp("ecg")
    return train_ecg(root / "model", root / "test.csv"), root / "test.csv"
