"""The README's Python API examples, run as they are written (in a scratch directory)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aemon
from aemon.daemon.config import FIELDS

README = Path(__file__).parents[2] / "README.md"


def _readme_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Python API") : text.index("## Usage")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_examples_run(tmp_path, monkeypatch):
    blocks = _readme_blocks()
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        if "aemon.serve(" in code:
            continue  # needs a broker and runs until stopped: its settings are checked below
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "artifacts/sine/detector.json").is_file()
    assert (tmp_path / "runs/sine-report/roc_pr.png").is_file()
    assert (tmp_path / "runs/pumps/pump-1.png").is_file()
    events = aemon.load(tmp_path / "artifacts/pumps").events(pd.read_csv(_pump_csv(tmp_path)))
    assert [e["state"] for e in events][:1] == ["open"]


def _pump_csv(tmp_path: Path) -> Path:
    minutes = pd.date_range("2026-01-01", periods=3000, freq="min")
    value = 10 + np.sin(np.arange(3000) * 2 * np.pi / 60)
    value[2400:2410] += 6
    path = tmp_path / "pump.csv"
    frame = pd.DataFrame({"timestamp": minutes, "stream": "pump-1", "value": value})
    frame.iloc[1500:].to_csv(path, index=False)
    return path


def test_the_readme_serve_example_names_real_settings():
    (code,) = [b for b in _readme_blocks() if "aemon.serve(" in b]
    call = next(n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call))
    assert {k.arg for k in call.keywords} <= set(FIELDS)
    with pytest.raises(aemon.ConfigError, match="unknown setting 'max_batches'"):
        aemon.serve("x", max_batches=1)
