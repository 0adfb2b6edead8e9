"""The model artifact: ``detector.json`` + ``weights.safetensors`` (+ ``report/``).

``detector.json`` holds everything needed to rebuild and trust the model; the weights' SHA-256
is recorded in it and checked on every load. Weights are never unpickled.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from aemon.core.errors import ArtifactError, ConfigError
from aemon.core.families import build
from aemon.core.families.base import SCORES, Autoencoder
from aemon.core.learning import Learning
from aemon.core.profile import HOURS, Profile
from aemon.core.rates import exceed_probability
from aemon.core.version import __version__
from aemon.core.windowing import BLANK, CLOCK_CHANNELS, CLOCKS

SCHEMA_VERSION = 1
META_FILE = "detector.json"
WEIGHTS_FILE = "weights.safetensors"
REQUIRED = ("name", "family", "hparams", "input", "normaliser", "score", "threshold", "weights")


def threshold_value(value: object) -> float:
    """A threshold a user gives: a finite number >= 0 (scores are errors), as a float."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        out = math.nan
    if not (math.isfinite(out) and out >= 0):
        raise ConfigError(f"threshold must be a finite number >= 0, got {value!r}")
    return out


@dataclass(frozen=True)
class Window:
    """How a series or window model cuts its input: ``length`` samples, every ``stride``."""

    length: int
    stride: int


# What in ``detector.json`` does not change a window's score (see :attr:`Meta.scoring`).
_NOT_SCORING = frozenset(
    {"threshold", "events", "metrics", "model_version", "versions", "created_at"}
)


@dataclass(frozen=True)
class Meta:
    """``detector.json``, typed: the one way every caller reads an artifact's metadata.

    ``doc`` is the document as written (or being built, while a model is fitted); everything
    else is read through the properties below, so that each fact is parsed in one place.
    """

    doc: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.doc["name"])

    @property
    def family(self) -> str:
        return str(self.doc["family"])

    @property
    def hparams(self) -> dict[str, Any]:
        return self.doc["hparams"]

    @property
    def members(self) -> int:
        """Autoencoders side by side whose errors a window's score averages (1: one model)."""
        return int(self.hparams.get("members", 1))

    @property
    def kind(self) -> str:
        """What the model takes: ``window``, ``series`` (raw samples it windows) or ``image``."""
        return str(self.doc["input"].get("kind", "window"))

    @property
    def is_series(self) -> bool:
        return self.kind == "series"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.doc["input"]["shape"])

    @property
    def channels(self) -> int:
        """Channels of the model's input: the values, then the clock's (if it has one)."""
        return 1 if len(self.shape) == 1 else self.shape[0]

    @property
    def clock(self) -> str | None:
        """What the two input channels after the values hold, seen by the model and not
        scored: ``time_of_day`` or ``time_of_week`` (each sample's), ``blank`` (zeros); None:
        there are none."""
        return self.doc["input"].get("clock")

    @property
    def value_channels(self) -> int:
        """The values each sample carries: the channels scored."""
        return self.channels - (CLOCK_CHANNELS if self.clock else 0)

    @property
    def profile(self) -> Profile | None:
        """The profile (of the day or the week) whose distances the model also takes
        (:mod:`aemon.core.profile`), or None."""
        doc = self.doc["input"].get("profile")
        return None if doc is None else Profile.from_dict(doc, self.value_channels, str(self.clock))

    @property
    def learning(self) -> Learning | None:
        """How the model keeps learning on its stream (:mod:`aemon.core.learning`), or None."""
        doc = self.doc.get("learning")
        return None if doc is None else Learning.from_dict(doc)

    @property
    def model_channels(self) -> int:
        """Channels the model takes: the input's and, with a daily profile, each value's
        distance from it."""
        return self.channels + (self.value_channels if "profile" in self.doc["input"] else 0)

    @property
    def recorded_metrics(self) -> list[str] | None:
        """The names of a series model's value columns, in window order, as its training data
        named them (None where the artifact records none)."""
        names = (self.doc.get("series") or {}).get("metrics")
        if isinstance(names, list) and len(names) == self.value_channels:
            return [str(n) for n in names]
        return None

    @property
    def metric_names(self) -> list[str]:
        """:attr:`recorded_metrics`, else ``channel N``."""
        return self.recorded_metrics or [f"channel {i}" for i in range(self.value_channels)]

    @property
    def channel_scale(self) -> tuple[float, ...] | None:
        """Per channel of a several-metric series model, the error that channel reaches on
        normal data (the 99% quantile of its calibration errors): each channel's error is
        divided by it before the mean, so that a metric the model reconstructs loosely does not
        drown one it reconstructs tightly. None: errors are averaged as they are."""
        scale = self.doc.get("channel_scale")
        return None if scale is None else tuple(float(v) for v in scale["values"])

    @property
    def window(self) -> Window:
        """Window length and stride (tumbling windows of the input length when none is
        recorded)."""
        w = self.doc["input"].get("window", {})
        length = int(w.get("length", self.shape[-1]))
        return Window(length, int(w.get("stride", length)))

    @property
    def normaliser(self) -> dict[str, Any]:
        return self.doc["normaliser"]

    @property
    def score(self) -> str:
        return str(self.doc["score"])

    @property
    def threshold(self) -> float:
        """The calibrated threshold value."""
        return float(self.doc["threshold"]["value"])

    def with_threshold(self, value: float) -> Meta:
        """The same artifact deciding at ``value``: the calibrated value is kept beside it, and
        the version changes with what is decided (the weights' version when ``value`` is the
        calibrated one again), so that alert and event ids never mix two thresholds. A series
        model's expected false alarms per day follow the new value."""
        value = threshold_value(value)
        thr = {k: v for k, v in self.doc["threshold"].items() if k != "calibrated_value"}
        calibrated = float(self.doc["threshold"].get("calibrated_value", thr["value"]))
        doc = {**self.doc, "threshold": {**thr, "value": value}}
        if value != calibrated:
            doc["threshold"]["calibrated_value"] = calibrated
        if "log_median" in thr and "windows_per_day" in thr:  # a series model: its rate anew
            p = exceed_probability(thr, value)
            doc["threshold"]["exceed_probability"] = p
            doc["threshold"]["expected_false_alarms_per_day"] = p * float(thr["windows_per_day"])
        weights = self.doc.get("weights", {}).get("sha256")
        if weights:
            doc["model_version"] = model_version(weights, doc["threshold"])
        return Meta(doc)

    @property
    def threshold_spec(self) -> str:
        """How the threshold was calibrated, as the ``--threshold`` flag writes it."""
        thr = self.doc["threshold"]
        return f"{thr.get('method')}:{thr.get('param')}"

    @property
    def calibration_tail(self) -> tuple[float, ...]:
        """Calibration scores that seed an adaptive threshold (series models)."""
        return tuple(float(v) for v in self.doc["threshold"].get("calibration_tail", ()))

    @property
    def event_rule(self) -> dict[str, Any] | None:
        """The event rule's settings (series models), else None."""
        return self.doc.get("events")

    @property
    def stream(self) -> str | None:
        """The stream a per-stream model serves (None: any)."""
        stream = self.doc.get("stream")
        return None if stream is None else str(stream)

    @property
    def model_version(self) -> str:
        return str(self.doc["model_version"])

    @functools.cached_property
    def scoring(self) -> str:
        """A digest of all that a window's score depends on (the weights' checksum, the scaling,
        the model's shape, its inputs), and not of what turns scores into decisions (threshold,
        event rule) or of when and by what it was written: artifacts with the same digest give
        every window the same score. Computed once: read it of a document no longer written."""
        kept = {k: v for k, v in self.doc.items() if k not in _NOT_SCORING}
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()

    @property
    def training(self) -> dict[str, Any]:
        return self.doc.get("training", {})

    @property
    def metrics(self) -> dict[str, Any]:
        return self.doc.get("metrics", {})


def model_version(weights_sha256: str, threshold: dict[str, Any]) -> str:
    """What alert and event ids are made of: the weights' checksum, and the threshold when a
    user set one other than the calibrated value (it changes what is decided)."""
    if "calibrated_value" not in threshold:
        return weights_sha256[:12]
    return hashlib.sha256(f"{weights_sha256}:{float(threshold['value'])!r}".encode()).hexdigest()[
        :12
    ]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def seal(model: Autoencoder, meta: dict[str, object]) -> tuple[bytes, dict]:
    """The weights as safetensors bytes and the complete ``detector.json`` document (checksum,
    ``model_version``, versions, schema), in memory: a fitted model has its version before it is
    saved, and :func:`save` writes exactly these bytes."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ArtifactError(f"non-finite weights in {', '.join(bad[:3])}")
    try:
        json.dumps(meta, allow_nan=False)
    except ValueError:
        raise ArtifactError("a non-finite number in the model's settings") from None
    blob = safetensors.torch.save(state, metadata={"format": "pt"})
    digest = hashlib.sha256(blob).hexdigest()
    doc = {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "hparams": model.hparams,
        "weights": {"file": WEIGHTS_FILE, "sha256": digest},
        "model_version": model_version(digest, meta.get("threshold", {})),  # type: ignore[arg-type]
        "versions": {
            "aemon": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return blob, doc


def save(out: str | Path, model: Autoencoder, meta: dict[str, object]) -> Path:
    """Write the weights, then ``detector.json`` with their checksum, versions and schema."""
    out = Path(out)
    try:
        blob, doc = seal(model, meta)
    except ArtifactError as exc:
        raise ArtifactError(f"not writing {out}: {exc}") from None
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"not writing {out}: it is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / WEIGHTS_FILE).write_bytes(blob)
    (out / META_FILE).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return out


def read_meta(path: str | Path) -> Meta:
    """``detector.json`` of an artifact directory, checked for schema, keys and types."""
    root = Path(path)
    meta_path = root / META_FILE
    if root.name in (META_FILE, WEIGHTS_FILE) and root.is_file():
        raise ArtifactError(
            f"{root}: give the artifact's directory ({root.parent}), not a file in it"
        )
    if not root.is_dir():
        raise ArtifactError(f"{root}: not an aemon artifact directory (expected {META_FILE})")
    if not meta_path.is_file():
        raise ArtifactError(f"{root}: no {META_FILE}; not an aemon artifact")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{meta_path}: corrupt JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("schema_version") != SCHEMA_VERSION:
        found = meta.get("schema_version") if isinstance(meta, dict) else None
        raise ArtifactError(
            f"{meta_path}: schema version {found!r}, this aemon reads {SCHEMA_VERSION}"
        )
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ArtifactError(f"{meta_path}: missing {', '.join(missing)}")
    if meta["score"] not in SCORES:
        raise ArtifactError(f"{meta_path}: unknown score function {meta['score']!r}")
    problem = _wrong_type(meta)
    if problem:
        raise ArtifactError(f"{meta_path}: {problem}")
    return Meta(meta)


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _wrong_type(meta: dict) -> str | None:
    """The first value of ``detector.json`` whose type the loader cannot use, if any."""
    checks: list[tuple[str, object, bool]] = [
        ("name", meta["name"], isinstance(meta["name"], str)),
        ("family", meta["family"], isinstance(meta["family"], str)),
        ("hparams", meta["hparams"], isinstance(meta["hparams"], dict)),
        ("normaliser", meta["normaliser"], isinstance(meta["normaliser"], dict)),
        ("input", meta["input"], isinstance(meta["input"], dict)),
        ("threshold", meta["threshold"], isinstance(meta["threshold"], dict)),
        ("weights", meta["weights"], isinstance(meta["weights"], dict)),
    ]
    for key, value, ok in checks:
        if not ok:
            kind = "a text" if key in ("name", "family") else "an object"
            return f"{key} must be {kind}, got {value!r}"
    shape = meta["input"].get("shape")
    if not (
        isinstance(shape, list)
        and shape
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        return f"input.shape must be a list of whole numbers > 0, got {shape!r}"
    value = meta["threshold"].get("value")
    if not _finite(value):
        return f"threshold.value must be a finite number, got {value!r}"
    if not isinstance(meta.get("model_version", ""), str):
        return f"model_version must be a text, got {meta['model_version']!r}"
    if "stream" in meta and not isinstance(meta["stream"], str):
        return f"stream must be a text, got {meta['stream']!r}"
    if "events" in meta and not isinstance(meta["events"], dict):
        return f"events must be an object, got {meta['events']!r}"
    clock = meta["input"].get("clock")
    if clock not in (None, *CLOCKS) or (clock and (len(shape) != 2 or shape[0] < 3)):
        return (
            f"input.clock must be one of {', '.join(CLOCKS)} (then input.shape [channels >= 3, "
            f"length]) or absent, got {clock!r} with input.shape {shape}"
        )
    if "profile" in meta["input"]:
        if clock in (None, BLANK):
            return f"input.profile needs input.clock {' or '.join(HOURS)}, got {clock!r}"
        try:
            Profile.from_dict(meta["input"]["profile"], shape[0] - CLOCK_CHANNELS, clock)
        except ArtifactError as exc:
            return str(exc)
    if "learning" in meta:
        if "events" not in meta:
            return "learning needs a series model (events)"
        try:
            Learning.from_dict(meta["learning"])
        except ArtifactError as exc:
            return str(exc)
    if "channel_scale" in meta:
        values = shape[0] - (CLOCK_CHANNELS if clock else 0)
        return _wrong_scale(meta["channel_scale"], shape, values)
    return None


def _wrong_scale(scale: object, shape: list[int], channels: int) -> str | None:
    """What is wrong with ``channel_scale``: one finite number > 0 per value channel."""
    values = scale.get("values") if isinstance(scale, dict) else None
    if not (
        isinstance(values, list)
        and len(shape) == 2
        and len(values) == channels
        and all(_finite(v) and v > 0 for v in values)
    ):
        return (
            f"channel_scale.values must be one finite number > 0 per value channel "
            f"({channels} of input.shape {shape}), got {values!r}"
        )
    return None


def load_model(path: str | Path) -> tuple[Autoencoder, Meta]:
    """Rebuild the model from ``detector.json`` and load verified weights into it."""
    root = Path(path)
    typed = read_meta(root)
    meta = typed.doc
    weights = root / meta["weights"].get("file", WEIGHTS_FILE)
    if not weights.is_file():
        raise ArtifactError(f"{weights}: missing weights file")
    if sha256(weights) != meta["weights"].get("sha256"):
        raise ArtifactError(f"{weights}: checksum mismatch; the artifact is corrupt or tampered")
    model = build(meta["family"], meta["hparams"])
    try:
        state = safetensors.torch.load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ArtifactError(f"{weights}: unreadable safetensors file ({exc})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:3]
        raise ArtifactError(f"{weights}: tensors do not match {meta['family']!r} model: {diff}")
    model.load_state_dict(state)
    model.eval()
    return model, typed
