import gzip
import struct

import numpy as np
import pytest

from aemon.core.errors import DataError
from aemon.training.datasets.images import IDX_FILES, load_digits, load_idx, read_idx

RNG = np.random.default_rng(5)


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    head = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(np.uint8).tobytes()


def write_set(root, n=12, h=6, w=5):
    images = RNG.integers(0, 256, (n, h, w), dtype=np.uint8)
    labels = RNG.integers(0, 10, n, dtype=np.uint8)
    for split in ("train", "test"):
        img_name, lab_name = IDX_FILES[split]
        (root / img_name).write_bytes(gzip.compress(idx_bytes(images)))
        (root / lab_name).write_bytes(gzip.compress(idx_bytes(labels)))
    return images, labels


def test_reads_what_was_written_scaled_to_unit_range(tmp_path):
    images, labels = write_set(tmp_path)
    got = load_idx(tmp_path, "train")
    np.testing.assert_allclose(got.images, images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(got.labels, labels)
    assert got.images.dtype == np.float32 and got.images.shape == (12, 6, 5)


def test_plain_uncompressed_idx_reads_too(tmp_path):
    a = RNG.integers(0, 256, (3, 2, 2), dtype=np.uint8)
    (tmp_path / "x.idx").write_bytes(idx_bytes(a))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx", 3), a)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x00\x08\x03", "bad magic number"),
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "element type 0x0d"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 4) + b"\x00" * 4, "1 dimensions, expected 3"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated header"),
        (b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 2, 2) + b"\x00" * 7, "2 x 2 x 2 = 8 bytes"),
        (b"\x00\x00\x08\x03" + struct.pack(">3I", 1, 1, 1) + b"\x00" * 3, "file holds 3"),
    ],
)
def test_corrupt_idx_files_are_refused_clearly(tmp_path, data, message):
    (tmp_path / "bad").write_bytes(data)
    with pytest.raises(DataError, match=message):
        read_idx(tmp_path / "bad", 3)


def test_truncated_gzip_and_missing_files(tmp_path):
    (tmp_path / "t.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((2, 2, 2))))[:-6])
    with pytest.raises(DataError, match="unreadable"):
        read_idx(tmp_path / "t.gz", 3)
    with pytest.raises(DataError, match=r"missing train-images-idx3-ubyte\.gz"):
        load_idx(tmp_path, "train")


def test_label_count_must_match_image_count(tmp_path):
    write_set(tmp_path)
    (tmp_path / IDX_FILES["test"][1]).write_bytes(gzip.compress(idx_bytes(np.zeros(5))))
    with pytest.raises(DataError, match="12 images but 5 labels"):
        load_idx(tmp_path, "test")


def test_digits_need_no_files():
    train, test = load_digits()
    assert train.images.shape[1:] == (8, 8) and len(train.images) + len(test.images) == 1797
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0
    assert set(np.unique(test.labels)) == set(range(10))
