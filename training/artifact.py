"""The model artifact: ``detector.json`` + ``weights.safetensors`` (+ ``report/``).

``detector.json`` holds everything needed to rebuild and trust the model; the weights' SHA-256
is recorded in it and checked on every load. Weights are never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

import safetensors.torch
import torch

from aemon import __version__
from aemon.training.errors import ArtifactError
from aemon.training.models import build
from aemon.training.models.base import SCORES, Autoencoder

SCHEMA_VERSION = 1
META_FILE = "detector.json"
WEIGHTS_FILE = "weights.safetensors"
REQUIRED = ("name", "family", "hparams", "input", "normaliser", "score", "threshold", "weights")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(out: str | Path, model: Autoencoder, meta: dict[str, object]) -> Path:
    """Write the weights, then ``detector.json`` with their checksum, versions and schema."""
    out = Path(out)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ArtifactError(f"not writing {out}: non-finite weights in {', '.join(bad[:3])}")
    try:
        json.dumps(meta, allow_nan=False)
    except ValueError:
        raise ArtifactError(f"not writing {out}: a non-finite number in its settings") from None
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_FILE
    safetensors.torch.save_file(state, str(weights), metadata={"format": "pt"})
    digest = sha256(weights)
    doc = {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "hparams": model.hparams,
        "weights": {"file": WEIGHTS_FILE, "sha256": digest},
        "model_version": digest[:12],
        "versions": {
            "aemon": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / META_FILE).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return out


def read_meta(path: str | Path) -> dict:
    """``detector.json`` of an artifact directory, checked for schema and required keys."""
    root = Path(path)
    meta_path = root / META_FILE
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
    return meta


def load_model(path: str | Path) -> tuple[Autoencoder, dict]:
    """Rebuild the model from ``detector.json`` and load verified weights into it."""
    root = Path(path)
    meta = read_meta(root)
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
    return model, meta
