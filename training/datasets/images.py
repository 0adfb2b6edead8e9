"""Image data: MNIST-style IDX files (MNIST, Fashion-MNIST) read by our own reader, and
scikit-learn's 8x8 digits, which need no files. Pixels come back as float32 in [0, 1].

IDX format: a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
sizes, then the data. Images are type 0x08 (uint8) with 3 dimensions; labels are uint8 with 1.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aemon.core.errors import DataError
from aemon.core.specs import DATASETS
from aemon.training.datasets.download import SOURCES

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
UBYTE = 0x08


@dataclass
class ImageSet:
    images: np.ndarray  # float32 [n, h, w] in [0, 1]
    labels: np.ndarray  # int64 [n]


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """An IDX file (gzipped or not) of unsigned bytes with ``ndim`` dimensions, checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != UBYTE:
        raise DataError(f"{path}: element type 0x{raw[2]:02x}; only unsigned bytes are supported")
    if raw[3] != ndim:
        raise DataError(f"{path}: {raw[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: header says {' x '.join(map(str, shape))} = {expected} bytes of data, "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_idx(root: str | Path, split: str, where: str = "") -> ImageSet:
    """``split`` ("train" or "test") of the four standard IDX files under ``root``.

    ``where`` ends the missing-files message: where to get them.
    """
    root = Path(root)
    names = IDX_FILES[split]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DataError(
            f"{root}: missing {', '.join(missing)}; --data-root needs the four IDX files of one "
            f"data set ({', '.join(n for pair in IDX_FILES.values() for n in pair)}){where}"
        )
    images = read_idx(root / names[0], 3)
    labels = read_idx(root / names[1], 1)
    if len(images) != len(labels):
        raise DataError(f"{root}: {len(images)} images but {len(labels)} labels in the {split} set")
    return ImageSet((images / np.float32(255)).astype(np.float32), labels.astype(np.int64))


def load_digits() -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 1797 8x8 digits, scaled to [0, 1], split 80/20 (stratified, seed 0)."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(
        x, d.target, test_size=0.2, random_state=0, stratify=d.target
    )
    return ImageSet(xtr, ytr.astype(np.int64)), ImageSet(xte, yte.astype(np.int64))


def load(dataset: str, root: str | Path | None) -> tuple[ImageSet, ImageSet]:
    """(train, test) of ``dataset``; MNIST and Fashion-MNIST come from the IDX files in ``root``."""

    if dataset == "digits":
        return load_digits()
    if dataset not in DATASETS:
        raise DataError(f"unknown data set {dataset!r}; choose from {', '.join(DATASETS)}")
    if root is None:
        raise DataError(f"{dataset} needs --data-root, a directory with its four IDX files")
    where = (
        f"; get them from {SOURCES[dataset].mirrors[0]} or add --download "
        "(fetches them there and checks their published SHA-256)"
    )
    return load_idx(root, "train", where), load_idx(root, "test", where)
