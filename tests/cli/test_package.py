"""What ``pip install`` puts on the path: the package ``aemon`` and its console script, nothing
named ``training`` or ``monitor``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_wheel_holds_only_aemon_and_its_console_script(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("monitor", "training"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    run = subprocess.run(
        [*pip, "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("aemon-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"aemon", wheel.name.split("-py")[0] + ".dist-info"}
    assert {
        "aemon/__init__.py",
        "aemon/cli/main.py",
        "aemon/core/artifact.py",
        "aemon/daemon/service.py",
        "aemon/tools/harness.py",
        "aemon/training/__init__.py",
    } <= set(names)
    assert "aemon/core/families/dense.py" in names
    sources = {  # every module of the checkout, where the package-dir mapping puts it
        f"aemon/{'training/' if tree == 'training' else ''}{p.relative_to(ROOT / tree)}"
        for tree in ("monitor", "training")
        for p in (ROOT / tree).rglob("*.py")
    }
    assert sources - set(names) == set()  # a package missing from pyproject's list
    meta = wheel.name.split("-py")[0] + ".dist-info"
    entry = zipfile.ZipFile(wheel).read(f"{meta}/entry_points.txt").decode()
    assert "aemon = aemon.cli:main" in entry
    assert zipfile.ZipFile(wheel).read(f"{meta}/top_level.txt").decode().split() == ["aemon"]
