"""Where each stream's model is: one artifact for every stream, or a directory of artifacts.

A *models directory* holds one artifact per sub-directory; each artifact trained by
``aemon train series`` records its ``stream``. An artifact without a stream serves every stream
that has no model of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aemon.core.artifact import META_FILE, Meta, read_meta
from aemon.core.errors import ArtifactError
from aemon.core.windowing import BLANK, HOUR_WORDS
from aemon.core.wording import counted

ANY = ""  # the key of an artifact that serves every stream without a model of its own


def artifacts_in(root: Path) -> list[Path]:
    """The artifacts of a models directory (its sub-directories holding a ``detector.json``),
    sorted."""
    return sorted(p for p in root.iterdir() if (p / META_FILE).is_file())


def catalog(path: str | Path) -> dict[str, Path]:
    """``{stream: artifact directory}`` (``ANY`` for a catch-all) of an artifact or models dir."""
    root = Path(path)
    if (root / META_FILE).is_file():
        return {read_meta(root).stream or ANY: root}
    if not root.is_dir():
        if root.exists():
            read_meta(root)  # a file: it says which (given detector.json: its directory)
        raise ArtifactError(f"{root}: no such artifact or models directory")
    found: dict[str, Path] = {}
    for sub in artifacts_in(root):
        stream = read_meta(sub).stream or ANY
        if stream in found:
            raise ArtifactError(f"{sub} and {found[stream]} both serve stream {stream!r}")
        found[stream] = sub
    if not found:
        raise ArtifactError(f"{root}: no {META_FILE} in it or in any sub-directory")
    return found


def describe_windows(meta: Meta) -> str:
    """What a model's windows hold, in words: "8 samples of 3 metrics and the time of day"."""
    w = meta.window
    if not meta.is_series:
        return f"{' x '.join(map(str, meta.shape))} values"
    every = "" if w.stride == 1 else f" every {w.stride}"
    n = meta.value_channels
    words = {clock: f" and the {said}" for clock, said in HOUR_WORDS.items()}
    clock = {**words, BLANK: " and a blank clock"}.get(str(meta.clock), "")
    return f"{w.length} samples{every} of {counted(n, 'metric')}{clock}"


def check_one_daemon(metas: Sequence[Meta]) -> None:
    """ArtifactError unless one daemon can serve all of these models: windows of one length and
    stride (series models may differ in the metrics a sample carries and in their clock; window
    models take one shape), and not series models (events) beside window models (an alert a
    window)."""
    first = metas[0]
    for meta in metas[1:]:
        if (meta.event_rule is None) != (first.event_rule is None):
            raise ArtifactError("a models directory mixes series models with others")
        if meta.window != first.window or (not meta.is_series and meta.shape != first.shape):
            raise ArtifactError(
                f"models take different windows ({first.name}: {describe_windows(first)}; "
                f"{meta.name}: {describe_windows(meta)}); one daemon serves windows of one length "
                "and stride (of one shape for window models): give each its own models directory, "
                "input topic and daemon"
            )
