"""Real Prometheus tools for the tests, installed from Debian's packages when missing."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def ensure(binary: str, package: str) -> str:
    """The path of ``binary``; installs ``package`` with apt-get first when it is missing."""
    found = shutil.which(binary)
    if found:
        return found
    print(f"\n{binary} is missing: installing Debian's {package} package", file=sys.stderr)
    env_ok = shutil.which("apt-get") is not None
    if not env_ok:
        pytest.fail(f"{binary} is missing and there is no apt-get to install {package}")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        subprocess.run(
            cmd,
            check=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            capture_output=True,
        )
    found = shutil.which(binary)
    if not found:
        pytest.fail(f"installing {package} did not provide {binary}")
    return found
