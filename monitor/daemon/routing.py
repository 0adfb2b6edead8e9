"""The daemon's models: one artifact for every stream, or a directory with one per stream.

Each stream is routed to its own model (or to the catch-all one); a stream without a model is
refused with the reason ``no_model``. Every artifact is watched on its own: a changed
``detector.json`` reloads that model only, and a bad new artifact is refused while the old one
keeps scoring. An artifact put into the directory later is taken in between batches when the
running daemon can serve it as it runs (:meth:`Models.load_new`); else it waits for a restart.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from aemon.core.artifact import META_FILE
from aemon.core.catalog import ANY, artifacts_in, catalog, check_one_daemon, describe_windows
from aemon.core.detector import Detector
from aemon.core.errors import ArtifactError, ConfigError
from aemon.core.events import Rule
from aemon.core.windowing import Windower
from aemon.core.wording import counted, listed

log = logging.getLogger("aemon.serve")


def _stamp(path: Path) -> int:
    with contextlib.suppress(OSError):
        return (path / META_FILE).stat().st_mtime_ns
    return 0


class Takes(NamedTuple):
    """What a model's samples are, for the intake (fixed for its life: a reload that would change
    it is refused): values per sample, what its clock channels hold, its windows' shape."""

    values: int
    clock: str | None
    shape: tuple[int, ...]

    @classmethod
    def of(cls, det: Detector) -> Takes:
        return cls(det.meta.value_channels, det.meta.clock, det.input_shape)


@dataclass
class Models:
    """Loaded detectors, the stream -> model routing, and each artifact's change stamp."""

    root: str
    device: str = "auto"
    amp: bool = False
    detectors: list[Detector] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    route: dict[str, int] = field(default_factory=dict)
    stamps: list[int] = field(default_factory=list)
    takes: list[Takes] = field(default_factory=list)
    row_shape: tuple[int, ...] = field(init=False, default=())  # a batch row, fixed at start
    _refused: dict[Path, int] = field(init=False, default_factory=dict)  # added, not served

    def __post_init__(self) -> None:
        for stream, path in catalog(self.root).items():
            self.add(stream, path, Detector.load(path, device=self.device, amp=self.amp))
        check_one_daemon([d.meta for d in self.detectors])
        self.row_shape = self._row_shape()

    def add(self, stream: str, path: Path, det: Detector) -> int:
        """Serve ``det`` (the artifact at ``path``) for ``stream`` from now on; its index. The
        route comes last: the intake sends the stream's samples to it only once all is there."""
        i = len(self.detectors)
        self.paths.append(path)
        self.stamps.append(_stamp(path))
        self.detectors.append(det)
        self.rules.append(Rule.from_meta(det.meta))
        self.takes.append(Takes.of(det))
        self.route[stream] = i
        return i

    @property
    def first(self) -> Detector:
        return self.detectors[0]

    def _row_shape(self) -> tuple[int, ...]:
        """A batch row: the input shape every model takes; flat, as long as the largest window,
        where series models differ (each row's window fills its start: ``batching.as_windows``)."""
        shapes = {det.input_shape for det in self.detectors}
        return shapes.pop() if len(shapes) == 1 else (max(int(np.prod(s)) for s in shapes),)

    @property
    def series(self) -> bool:
        """Series models: windows form events. Others alert on every window above threshold."""
        return self.first.meta.event_rule is not None

    @property
    def single(self) -> bool:
        """One model serves every stream (no per-stream routing needed)."""
        return list(self.route) == [ANY]

    def warmup(self, model: int) -> int:
        """Windows of a stream met in the middle that model ``model`` scores before it
        decides (:meth:`Rule.warmup`)."""
        return self.rules[model].warmup(self.detectors[model].learning)

    @property
    def history(self) -> int:
        return max(self.warmup(i) for i in range(len(self.detectors)))

    @property
    def versions(self) -> set[str]:
        """The versions of the models served now."""
        return {det.version for det in self.detectors}

    @property
    def learning(self) -> bool:
        """Whether any model keeps learning on its streams."""
        return any(det.learning is not None for det in self.detectors)

    def describe(self) -> str:
        """Every model in use, with the streams it serves: what the start-up line says."""
        parts = []
        for stream, i in self.route.items():
            det = self.detectors[i]
            serves = "every stream" if stream == ANY else f"stream {stream!r}"
            parts.append(f"{det.name} {det.version} ({det.meta.family}, {serves})")
        return f"{counted(len(parts), 'model')}: {listed(parts, most=20, sep='; ')}"

    def windower(self, input_kind: str) -> Windower | None:
        """For raw samples (``input_kind`` "samples", or "auto" with series models): windows as
        the artifact records them (tumbling when it names none), keeping the history series
        decisions depend on. None for ready-made windows."""
        det = self.first
        if input_kind == "auto":
            input_kind = "samples" if det.meta.is_series else "windows"
        if self.series and input_kind != "samples":
            raise ConfigError("input_kind: series models (aemon train series) take samples")
        if input_kind != "samples":
            return None
        w = det.meta.window
        history = self.history if self.series else 0
        return Windower(w.length, w.stride, history)

    def index(self, stream: str) -> int | None:
        """The model serving ``stream``, or None."""
        i = self.route.get(stream)
        return self.route.get(ANY) if i is None else i

    def unserved(self, again: bool = False) -> list[Path]:
        """Artifacts put into the models directory since start and not served: new ones, and
        ones refused before that have changed since (or all of those, ``again``); their streams'
        samples are dead-lettered ``no_model`` meanwhile."""
        root = Path(self.root)
        if (root / META_FILE).is_file():
            return []
        known = set(self.paths)
        with contextlib.suppress(OSError):
            return [
                p
                for p in artifacts_in(root)
                if p not in known and (again or self._refused.get(p) != _stamp(p))
            ]
        return []

    def load_new(
        self, paths: list[Path], wide: int
    ) -> tuple[list[tuple[str, Path, Detector]], int]:
        """Load artifacts ``paths`` added since start (blocking: call in a worker thread): those
        the running daemon can serve as it runs, each with its stream, for :meth:`add`; each
        other one is logged, counted and left until it changes (a restart serves it).
        ``wide``: the most metrics a batch row's errors hold (the scorer's)."""
        taken: list[tuple[str, Path, Detector]] = []
        refused = 0
        for path in paths:
            self._refused[path] = _stamp(path)
            try:
                det = Detector.load(path, device=self.device, amp=self.amp)
                stream = det.meta.stream or ANY
                self._fits(det, stream, wide, {s for s, _, _ in taken})
            except Exception as exc:  # a bad new artifact must not stop a running monitor
                log.error("%s is not served until a restart: %s", path, exc)
                refused += 1
                continue
            del self._refused[path]
            taken.append((stream, path, det))
        return taken, refused

    def _fits(self, det: Detector, stream: str, wide: int, taking: set[str]) -> None:
        """ArtifactError unless the running daemon can serve ``det`` for ``stream`` as it runs:
        beside its models (:func:`check_one_daemon`), in batch rows sized at start, with no
        more history than a restart re-reads now and learning only where the daemon learns."""
        meta = det.meta
        if self.single:
            raise ArtifactError("the daemon serves one model for every stream")
        if stream in self.route or stream in taking:
            served = self.paths[self.route[stream]] if stream in self.route else "another"
            raise ArtifactError(f"stream {stream!r} is served by {served} already")
        check_one_daemon([meta, *(d.meta for d in self.detectors)])
        size, room = int(np.prod(det.input_shape)), int(np.prod(self.row_shape))
        if size > room:
            raise ArtifactError(
                f"its windows hold {size} values, more than the {room} of the batch rows sized "
                "at start"
            )
        if meta.is_series and meta.value_channels > wide:
            raise ArtifactError(
                f"it takes {meta.value_channels} metrics, more than the {wide} the batches were "
                "sized for at start"
            )
        learning = det.learning
        if learning is not None and not self.learning:
            raise ArtifactError("it keeps learning, and the daemon started with no model that does")
        history = Rule.from_meta(meta).history + (0 if learning is None else learning.history)
        if history > self.history:
            raise ArtifactError(
                f"its decisions depend on {history:,} windows before them, more than the "
                f"{self.history:,} a restart re-reads now"
            )

    def changed(self) -> list[int]:
        """Models whose ``detector.json`` changed since loaded."""
        return [i for i, p in enumerate(self.paths) if _stamp(p) != self.stamps[i]]

    def reload(self, which: list[int]) -> tuple[list[tuple[int, Detector]], int]:
        """Reload models ``which`` (blocking: call in a worker thread); a model that fails to load
        or no longer fits keeps running. Returns the models swapped in, by position, and how
        many were refused."""
        swapped, refused = [], 0
        for i in which:
            self.stamps[i] = _stamp(self.paths[i])
            try:
                det = Detector.load(self.paths[i], device=self.device, amp=self.amp)
                check_one_daemon([det.meta, *(d.meta for d in self.detectors)])
                takes = Takes.of(det)
                if takes != self.takes[i]:  # its streams' buffered samples fit the running one
                    raise ArtifactError(
                        f"it takes {describe_windows(det.meta)}, the running model "
                        f"{describe_windows(self.detectors[i].meta)}; the stream's buffered "
                        "samples carry those"
                    )
                rule = Rule.from_meta(det.meta)
            except Exception as exc:  # a bad new artifact must not stop a running monitor
                old = self.detectors[i]
                log.error("model reload refused, keeping %s %s: %s", old.name, old.version, exc)
                refused += 1
                continue
            self.detectors[i], self.rules[i] = det, rule
            swapped.append((i, det))
        return swapped, refused
