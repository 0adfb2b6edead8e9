"""Every test here needs a real Kafka-protocol broker or Prometheus: marked ``integration``.
The broker and the ECG detector fixtures are shared (``tests/conftest.py``)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)
