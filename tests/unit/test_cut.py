import numpy as np
import pytest
from monitor.windowing import Windower

from training.datasets.cut import cut
from training.errors import DataError


def test_windows_match_the_monitors_windowing_per_stream(tmp_path):
    rng = np.random.default_rng(0)
    rows, streaming = [], {}
    w = Windower(length=5, stride=2)
    out = np.zeros(5, dtype=np.float32)
    counts = {}
    for t in range(60):
        s = "ab"[rng.integers(2)]
        v = float(rng.standard_normal())
        rows.append(f"{t},{s},{v!r},{int(t == 17)}")
        seq = counts.get(s, 0)
        counts[s] = seq + 1
        got = w.push(0, t, s, seq, float(t), np.float32([v]), out)
        if got is not None:
            streaming[(s, got)] = out.copy()
    path = tmp_path / "s.csv"
    path.write_text("ts,stream,value,label\n" + "\n".join(rows) + "\n")
    table = cut(path, 5, 2)
    offline = {
        (str(s), int(q)): v for s, q, v in zip(table.stream, table.seq, table.values, strict=True)
    }
    assert offline.keys() == streaming.keys()
    for key, values in offline.items():
        np.testing.assert_allclose(values, streaming[key], rtol=1e-6)
    assert table.label.sum() >= 1 and table.ts.max() <= 59


def test_dates_channels_and_errors(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("timestamp,x,y\n2024-01-01 00:00:00,1,10\n2024-01-01 00:05:00,2,20\n")
    t = cut(p, 2)
    assert t.ts.tolist() == [1704067500.0]
    assert t.values.tolist() == [[1, 2, 10, 20]]  # channel by channel
    with pytest.raises(DataError, match="no stream has 3 samples"):
        cut(p, 3)
    with pytest.raises(DataError, match="stride must be between"):
        cut(p, 2, 3)
    (tmp_path / "e.csv").write_text("timestamp,x\nnoon,1\n")
    with pytest.raises(DataError, match=r"e\.csv:2: timestamp 'noon' is not a time"):
        cut(tmp_path / "e.csv", 1)
    (tmp_path / "f.csv").write_text("ts,x\n1,abc\n")
    with pytest.raises(DataError, match=r"f\.csv:2: column 'x' is not a finite number"):
        cut(tmp_path / "f.csv", 1)
    (tmp_path / "g.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match="needs a 'timestamp' or 'ts' column"):
        cut(tmp_path / "g.csv", 1)
