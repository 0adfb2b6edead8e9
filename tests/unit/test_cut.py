import numpy as np
import pytest

from aemon.core.errors import DataError
from aemon.core.windowing import Windower
from aemon.training.datasets.cut import cut


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
        got = w.push(0, t, s, seq, np.float32([v]), out)
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
    assert t.ts.tolist() == [1704067500.0] and t.start.tolist() == [1704067200.0]
    assert t.values.tolist() == [[1, 2, 10, 20]]  # channel by channel
    with pytest.raises(DataError, match="no stream has 3 samples"):
        cut(p, 3)
    with pytest.raises(DataError, match="stride must be between"):
        cut(p, 2, 3)
    (tmp_path / "e.csv").write_text("timestamp,x\nnoon,1\n")
    with pytest.raises(DataError, match=r"e\.csv:2: timestamp 'noon' is not a time"):
        cut(tmp_path / "e.csv", 1)
    (tmp_path / "f.csv").write_text("ts,x\n1,abc\n")
    with pytest.raises(DataError, match=r"f\.csv:2: column 'x' holds 'abc', not a number"):
        cut(tmp_path / "f.csv", 1)
    (tmp_path / "g.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match="needs a time column named timestamp, ts, time"):
        cut(tmp_path / "g.csv", 1)


def test_iso_dates_epoch_seconds_and_seq_as_an_id(tmp_path):
    """ISO 8601 with or without a zone, or epoch seconds, give the same windows; seq names the
    sample and is never a value channel."""
    iso = tmp_path / "iso.csv"
    iso.write_text("time,seq,v\n2024-03-10 01:00:00,0,1\n2024-03-10T01:05:00Z,1,2\n")
    epoch = tmp_path / "epoch.csv"
    epoch.write_text("timestamp,seq,v\n1710032400,0,1\n1710032700,1,2\n")
    a, b = cut(iso, 2), cut(epoch, 2)
    assert a.values.tolist() == b.values.tolist() == [[1.0, 2.0]]
    assert a.ts.tolist() == b.ts.tolist() == [1710032700.0]


def test_overflowing_values_are_refused_as_the_daemon_refuses_them(tmp_path):
    p = tmp_path / "big.csv"
    p.write_text("ts,v\n1,1e30\n2,1e300\n")
    with pytest.raises(DataError, match=r"big\.csv:3: column 'v' is 1e\+300 \(not a finite"):
        cut(p, 1)
