import numpy as np
import pytest

from aemon.core.errors import DataError
from aemon.training.datasets import ecg5000

RNG = np.random.default_rng(3)


def ucr_rows(n, classes):
    return np.c_[RNG.choice(classes, n), RNG.standard_normal((n, ecg5000.LENGTH))]


def write_ucr(root, train, test):
    for name, rows in zip(ecg5000.UCR_FILES, (train, test), strict=True):
        np.savetxt(root / name, rows, delimiter="\t", fmt="%.6f")


def test_ucr_directory_merges_train_then_test_and_maps_class_1_to_normal(tmp_path):
    train, test = ucr_rows(30, [1, 2, 3]), ucr_rows(70, [1, 4, 5])
    write_ucr(tmp_path, train, test)
    data = ecg5000.load(tmp_path)
    merged = np.r_[train, test]
    np.testing.assert_allclose(data.values, merged[:, 1:], atol=1e-6)
    np.testing.assert_array_equal(data.label, (merged[:, 0] != 1).astype(np.int8))


def test_tutorial_csv_has_label_last_with_1_normal(tmp_path):
    rows = np.c_[RNG.standard_normal((10, ecg5000.LENGTH)), np.r_[np.ones(6), np.zeros(4)]]
    np.savetxt(tmp_path / "ecg.csv", rows, delimiter=",")
    data = ecg5000.load(tmp_path / "ecg.csv")
    np.testing.assert_array_equal(data.label, np.r_[np.zeros(6), np.ones(4)])


def test_split_follows_train_test_split_and_is_deterministic(tmp_path):
    write_ucr(tmp_path, ucr_rows(50, [1, 2]), ucr_rows(50, [1, 2]))
    data = ecg5000.load(tmp_path)
    a, b, c = (ecg5000.split(data, s) for s in (21, 21, 1))
    assert len(a.train) == 80 and len(a.test) == 20
    np.testing.assert_array_equal(a.test.seq, b.test.seq)
    assert not np.array_equal(a.test.seq, c.test.seq)
    assert sorted(np.r_[a.train.seq, a.test.seq]) == list(range(100))
    np.testing.assert_array_equal(a.test.values, data.values[a.test.seq])
    assert set(a.train.stream) == set(a.test.stream) == {"ecg5000"}  # not "e" (dtype=str)


def test_bad_sources_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing ECG5000_TRAIN\.tsv, ECG5000_TEST\.tsv"):
        ecg5000.load(tmp_path)
    np.savetxt(tmp_path / "short.csv", RNG.standard_normal((3, 20)), delimiter=",")
    with pytest.raises(DataError, match="20 columns, expected 140 values"):
        ecg5000.load(tmp_path / "short.csv")
    with pytest.raises(DataError, match="no such file"):
        ecg5000.load(tmp_path / "absent.csv")
    (tmp_path / "w.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="needs a 'label' column"):
        ecg5000.load(tmp_path / "w.csv")
