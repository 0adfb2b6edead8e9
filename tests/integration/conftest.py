"""A real Kafka-protocol broker for the session (or the one AEMON_TEST_BOOTSTRAP names) and a
small ECG detector with its held-out beats as a window CSV."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from monitor.cli import main

pytestmark = pytest.mark.integration


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


@pytest.fixture(scope="session")
def ecg(tmp_path_factory) -> tuple[Path, Path]:
    """(artifact, held-out CSV): the tutorial preset trains in about a second."""
    root = tmp_path_factory.mktemp("ecg")
    art, csv = root / "model", root / "test.csv"
    rc = main(
        [
            "train",
            "ecg",
            "--preset",
            "tutorial",
            "--quiet",
            "--out",
            str(art),
            "--holdout-csv",
            str(csv),
        ]
    )
    assert rc == 0
    return art, csv
