"""``aemon held-out``: choose among settings on NAB with each category left out in turn.

A default chosen on NAB's files is judged on files the choice never saw. For each category with
incidents, the choice made without it is the setting whose NAB score over the *other*
categories' files is highest (their raw scores pooled and normalised as NAB normalises its
total, ``100 * (raw - null) / (perfect - null)``; artificialNoAnomaly's false alarms count
against it), as the mean over that setting's seeds; the left-out category's score at that choice
is what the choice is worth on unseen files. A tie keeps the first setting named (the
incumbent). Each input is what ``nab_score.py DATA DETECTIONS --json`` prints for one seed.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from aemon.core.errors import ConfigError, DataError
from aemon.training.incidents import nab_normalised


@dataclass(frozen=True)
class Run:
    """One seed's scorer output: per category, its pooled raw, null and perfect scores."""

    path: Path
    parts: dict[str, tuple[float, float, float]]

    def score(self, categories: list[str]) -> float:
        """NAB's normalised score over the files of ``categories``."""
        raw, null, perfect = (sum(self.parts[c][k] for c in categories) for k in range(3))
        return nab_normalised(raw, null, perfect)


def read_run(path: Path) -> Run:
    """One ``nab_score.py --json`` output, refused in one line when it is not one."""
    try:
        doc = json.loads(path.read_text())
        categories = doc["yours"]["categories"]
        parts = {
            name: (
                float(c["total"]["raw"]),
                float(c["total"]["null"]),
                float(c["total"]["perfect"]),
            )
            for name, c in categories.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DataError(
            f"{path}: not the output of nab_score.py DATA DETECTIONS --json (no "
            "yours.categories.<name>.total with raw, null and perfect)"
        ) from None
    if not parts:
        raise DataError(f"{path}: no category scored")
    return Run(path, parts)


def parse_setting(text: str) -> tuple[str, list[Path]]:
    """``NAME=PATTERN[,PATTERN...]``: a setting's name and its seeds' files (globs expanded)."""
    name, sep, patterns = text.partition("=")
    if not sep or not name or not patterns:
        raise ConfigError(
            f"{text!r}: give each setting as NAME=FILES, such as "
            "default='runs/nab-default/seed-*.json'"
        )
    paths: list[Path] = []
    for pattern in patterns.split(","):
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise ConfigError(f"setting {name!r}: no file matches {pattern!r}")
        paths.extend(Path(p) for p in found)
    return name, paths


def choose(settings: dict[str, list[Run]]) -> dict[str, Any]:
    """Each setting's seeds, and per category with incidents the choice made without it."""
    if len(settings) < 2:
        raise ConfigError("give at least two settings to choose between")
    first = next(iter(settings.values()))[0]
    names = list(first.parts)
    bounds = {c: p[1:] for c, p in first.parts.items()}  # null and perfect: the files and labels
    for run in (r for runs in settings.values() for r in runs):
        if {c: p[1:] for c, p in run.parts.items()} != bounds:
            raise DataError(
                f"{run.path}: other categories or incident windows than {first.path} (its null "
                "and perfect scores differ): score every setting on the same files"
            )
    scored = [c for c in names if first.parts[c][2] > first.parts[c][1]]  # perfect > null
    if len(scored) < 2:
        raise DataError(
            f"{first.path}: incidents in {len(scored)} of its categories: leaving one out needs "
            "two or more (score all of NAB's, without --category)"
        )
    rows = {}
    for setting, runs in settings.items():
        totals = [r.score(names) for r in runs]
        rows[setting] = {
            "seeds": len(runs),
            "totals": totals,
            "mean": mean(totals),
            "spread": max(totals) - min(totals),
            "categories": {c: mean(r.score([c]) for r in runs) for c in scored},
        }
    left_out = []
    for c in scored:
        others = [o for o in names if o != c]
        on_others = {s: mean(r.score(others) for r in runs) for s, runs in settings.items()}
        chosen = max(on_others, key=lambda s: on_others[s])  # the first of equals
        left_out.append(
            {
                "category": c,
                "chosen": chosen,
                "score": rows[chosen]["categories"][c],
                "scores": {s: rows[s]["categories"][c] for s in settings},
                "others": on_others,
            }
        )
    return {"settings": rows, "left_out": left_out}


def table(result: dict[str, Any]) -> str:
    """The settings' seeds and the left-out categories, as text."""
    rows, left = result["settings"], result["left_out"]
    scored = [x["category"] for x in left]
    width = max(len(s) for s in rows) + 2
    lines = [
        f"{'setting':<{width}}seeds  mean  spread  " + "  ".join(scored),
    ]
    for s, row in rows.items():
        cells = "  ".join(f"{row['categories'][c]:>{len(c)}.1f}" for c in scored)
        lines.append(
            f"{s:<{width}}{row['seeds']:>5}  {row['mean']:4.1f}  {row['spread']:6.1f}  {cells}"
        )
    first = next(iter(rows))
    lines += ["", f"{'left out':<24}{'chosen without it':<{max(width, 19)}}its score there"]
    for x in left:
        also = "" if x["chosen"] == first else f"  ({first}: {x['scores'][first]:.1f})"
        lines.append(f"{x['category']:<24}{x['chosen']:<{max(width, 19)}}{x['score']:.1f}{also}")
    held = mean(x["score"] for x in left)
    lines.append(
        f"\nleft-out categories' mean at the choices made without them: {held:.1f} "
        f"({first} throughout: {mean(x['scores'][first] for x in left):.1f})"
    )
    return "\n".join(lines)
