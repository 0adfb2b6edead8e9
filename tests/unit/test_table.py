import numpy as np
import pytest

from aemon.core.errors import DataError
from aemon.core.table import read_matrix, read_windows, write_windows
from tests.conftest import make_windows


def write(tmp_path, text, name="w.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_round_trip_keeps_ids_labels_and_float32_values(tmp_path):
    table = make_windows(20, 5)
    write_windows(tmp_path / "w.csv", table)
    back = read_windows(tmp_path / "w.csv")
    np.testing.assert_array_equal(back.values, table.values)
    np.testing.assert_array_equal(back.stream, table.stream)
    np.testing.assert_array_equal(back.seq, table.seq)
    np.testing.assert_array_equal(back.label, table.label)
    assert back.ts is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stream,a,b\np,1,2\np,3\n", r"w\.csv:3: 2 columns where the first row has 3"),
        ("a,b\n1,2\n3,x\n", r"w\.csv:3: column 'b' holds 'x', not a number"),
        ("host,a,b\nweb-1,1,2\n", r"w\.csv:2: column 'host' holds 'web-1', text in every row"),
        ("a,b,is_anomaly\n1,2,0\n3,4,1\n", r"w\.csv:1: column 'is_anomaly' holds only 0 and 1"),
        ("a,b,Y\n1,2,0\n", r"w\.csv:1: column 'Y' holds only 0 and 1, as labels do"),
        ("date,a,b\n2026-01-01,1,2\n", r"w\.csv:1: column 'date' is a sample CSV's time"),
        ("stream,host,a\np,web-1,1\n", r"w\.csv:2: column 'host' holds 'web-1', not a number"),
        ("a,b\n1,2\n3,\n", r"w\.csv:3: column 'b' is empty, a missing value: aemon does not"),
        ("a,b\n1,2\n3,NULL\n", r"w\.csv:3: column 'b' is 'NULL', a missing value"),
        ("a,b\n1,nan\n", r"w\.csv:2: column 'b' is nan, a missing .*; drop the row or fill it"),
        ("a,b\n1,2\ninf,2\n", r"w\.csv:3: column 'a' is inf \(not a finite float32 number\)"),
        ("a,b\n1,1e300\n", r"w\.csv:2: column 'b' is 1e\+300 \(not a finite float32 number\)"),
        ("label,a\n2,1\n", r"w\.csv:2: label must be 0 \(normal\) or 1 \(anomaly\)"),
        ("seq,a\n1.5,1\n", r"w\.csv:2: column 'seq' must hold whole numbers"),
        ("a,b\n", r"w\.csv: a header but no rows"),
        ("", r"w\.csv: the file is empty"),
        ("stream,label\np,1\n", r"w\.csv:1: no value columns"),
        ("Stream,a\np,1\n", r"w\.csv:1: .* case-sensitive: rename 'Stream' to 'stream'"),
        ("ts,a\n1700000000,1\n1700000060000,2\n", r"w\.csv:3: ts 1700000060000 is after the y"),
    ],
)
def test_bad_window_files_name_file_line_and_problem(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_windows(write(tmp_path, text))


def test_wrong_window_length_is_named(tmp_path):
    with pytest.raises(DataError, match="windows of 2 values; the model expects 3"):
        read_windows(write(tmp_path, "a,b\n1,2\n"), length=3)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_windows(tmp_path / "nope.csv")
    p = tmp_path / "b.csv"
    p.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(DataError, match="not a readable text table"):
        read_windows(p)


def test_headerless_tsv_matrix(tmp_path):
    m = read_matrix(write(tmp_path, "1\t0.5\t0.25\n2\t1\t2\n", "x.tsv"))
    np.testing.assert_array_equal(m, [[1, 0.5, 0.25], [2, 1, 2]])
    with pytest.raises(DataError, match=r"x\.tsv:2: column '3' holds 'oops'"):
        read_matrix(write(tmp_path, "1\t0.5\t0.25\n2\t1\toops\n", "x.tsv"))


def test_a_byte_order_mark_is_not_part_of_the_first_column_s_name(tmp_path):
    """Excel's "CSV UTF-8" starts with one: the stream column must still be the stream."""
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbfstream,a,b\np,1,2\nq,3,4\n")
    table = read_windows(p)
    assert table.stream.tolist() == ["p", "q"]
    np.testing.assert_array_equal(table.values, [[1, 2], [3, 4]])
