"""The real Prometheus tools the tests run. `make test` installs them (Debian's `prometheus`
package, `make tools`) before any test starts; a test never installs anything."""

from __future__ import annotations

import shutil

import pytest


def ensure(binary: str, package: str) -> str:
    """The path of ``binary``; a failure naming the set-up step when it is missing."""
    found = shutil.which(binary)
    if not found:
        pytest.fail(f"{binary} is missing: run 'make tools' (Debian's {package} package)")
    return found
