"""Where each stream's model is: one artifact for every stream, or a directory of artifacts.

A *models directory* holds one artifact per sub-directory; each artifact trained by
``aemon train series`` records its ``stream``. An artifact without a stream serves every stream
that has no model of its own.
"""

from __future__ import annotations

from pathlib import Path

from aemon.core.artifact import META_FILE, read_meta
from aemon.core.errors import ArtifactError

ANY = ""  # the key of an artifact that serves every stream without a model of its own


def catalog(path: str | Path) -> dict[str, Path]:
    """``{stream: artifact directory}`` (``ANY`` for a catch-all) of an artifact or models dir."""
    root = Path(path)
    if (root / META_FILE).is_file():
        return {read_meta(root).stream or ANY: root}
    if not root.is_dir():
        raise ArtifactError(f"{root}: not an artifact or a directory of artifacts")
    found: dict[str, Path] = {}
    for sub in sorted(p for p in root.iterdir() if (p / META_FILE).is_file()):
        stream = read_meta(sub).stream or ANY
        if stream in found:
            raise ArtifactError(f"{sub} and {found[stream]} both serve stream {stream!r}")
        found[stream] = sub
    if not found:
        raise ArtifactError(f"{root}: no {META_FILE} in it or in any sub-directory")
    return found
