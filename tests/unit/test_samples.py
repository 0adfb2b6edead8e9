import dataclasses
import warnings

import numpy as np
import orjson
import pandas as pd
import pytest

from aemon.core.errors import ConfigError, DataError
from aemon.replay import check_counted, message_count, sample_messages
from aemon.training.datasets.cut import windows_of
from aemon.training.datasets.samples import read_samples, samples_of

HEAD = "timestamp,stream,value\n"


def write(tmp_path, text):
    p = tmp_path / "s.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # the same wording as a window CSV's (tests/unit/test_table.py)
        (
            "1700000000,a,1\n1700000060,a,n/a\n",
            r"s\.csv:3: column 'value' is 'n/a', a missing value: aemon does not guess one; drop",
        ),
        ("1700000000,a,1\n1700000060,a,\n", r"s\.csv:3: column 'value' is empty, a missing value"),
        ("1700000000,a,NaN\n", r"s\.csv:2: column 'value' is 'NaN', a missing value"),
        ("1700000000,a,-inf\n", r"s\.csv:2: column 'value' is -inf \(not a finite float32"),
        ("1700000000,a,1e300\n", r"s\.csv:2: column 'value' is 1e\+300 \(not a finite float32"),
        ("1700000000,,1\n", r"s\.csv:2: empty stream id"),
        (",a,1\n", r"s\.csv:2: timestamp '' is not a time"),
        ("1700000000,a,1\n1700000060000,a,2\n", r"s\.csv:3: timestamp 1700000060000 is after the"),
        ("-1e11,a,1\n", r"s\.csv:2: timestamp -1e11 is before the year 1"),
    ],
)
def test_a_bad_cell_of_a_sample_csv_is_named_as_written(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        read_samples(write(tmp_path, HEAD + rows))


def test_one_file_may_hold_streams_of_different_metrics(tmp_path):
    """A column empty in every row of a stream is a metric that stream does not have: the file
    splits into kinds of stream, each with its own columns. An empty cell among a stream's
    values stays a missing value; a column empty in every row, or a stream with no value at
    all, is refused."""
    text = "timestamp,stream,cpu,mem\n1700000000,web,1,\n1700000000,db,2,3\n1700000060,web,4,\n"
    s = read_samples(write(tmp_path, text))
    assert s.columns() == {"web": (0,), "db": (0, 1)}
    web = s.own_metrics(s.rows_of("web"))
    assert web.channels == ["cpu"] and web.values.tolist() == [[1.0], [4.0]]
    kinds = s.kinds()
    assert [(k.streams(), k.channels) for k in kinds] == [
        (["web"], ["cpu"]),
        (["db"], ["cpu", "mem"]),
    ]
    whole = read_samples(write(tmp_path, "timestamp,stream,cpu\n1700000000,a,1\n1700000000,b,2\n"))
    assert whole.kinds() == [whole]
    gap = "timestamp,stream,cpu,mem\n1700000000,web,1,\n1700000060,web,1,4\n"
    with pytest.raises(DataError, match=r"s\.csv:2: column 'mem' is empty, a missing value"):
        read_samples(write(tmp_path, gap))
    with pytest.raises(DataError, match=r"s\.csv: column 'note' is empty in every row: leave it"):
        read_samples(write(tmp_path, "timestamp,cpu,note\n1700000000,1,\n1700000060,2,NA\n"))
    nothing = "timestamp,stream,cpu,mem\n1700000000,web,,\n1700000000,db,2,3\n1700000060,web,,\n"
    with pytest.raises(DataError, match=r"s\.csv: stream 'web' has no value in any column"):
        read_samples(write(tmp_path, nothing))


def test_rows_with_a_missing_value_are_left_out_only_when_asked(tmp_path):
    """``missing="skip"``: a row with a missing value in a metric its stream has is left out
    (one warning naming the first and the count), as the daemon leaves out such a sample; a
    metric a stream does not have is not missing; text or an infinity is still refused, and so
    is a file with no row left. The refusal of a file says how to ask for it."""
    text = (
        "timestamp,stream,cpu,mem\n1700000000,web,1,\n1700000000,db,2,3\n"
        "1700000060,web,,\n1700000060,db,NaN,4\n1700000120,web,5,\n1700000120,db,6,7\n"
    )
    with pytest.raises(DataError, match=r"s\.csv:4: column 'cpu' is empty.*give --missing skip"):
        read_samples(write(tmp_path, text))
    with pytest.warns(UserWarning, match=r"s\.csv:4: left out 2 of 6 rows with a missing value"):
        s = read_samples(write(tmp_path, text), "skip")
    assert s.stream.tolist() == ["web", "db", "web", "db"]
    assert s.columns() == {"web": (0,), "db": (0, 1)}
    assert s.values[:, 0].tolist() == [1, 2, 5, 6] and s.ts.tolist()[-1] == 1700000120
    frame = pd.DataFrame({"timestamp": [1700000000, 1700000060], "value": [np.nan, 1.0]})
    with pytest.warns(UserWarning, match=r"samples, row 0: left out 1 of 2 rows"):
        assert samples_of(frame, missing="skip").values.tolist() == [[1.0]]
    with pytest.raises(DataError, match=r"s\.csv:3: column 'value' holds 'x', not a number"):
        read_samples(write(tmp_path, HEAD + "1700000000,a,\n1700000060,a,x\n"), "skip")
    with pytest.raises(DataError, match=r"s\.csv:2: column 'value' is inf"):
        read_samples(write(tmp_path, HEAD + "1700000000,a,inf\n1700000060,a,\n"), "skip")
    with pytest.raises(DataError, match=r"s\.csv: every row has a missing value"):
        read_samples(write(tmp_path, "timestamp,a,b\n1700000000,1,\n1700000060,,2\n"), "skip")
    with pytest.raises(ConfigError, match="missing must be one of refuse, skip"):
        read_samples(write(tmp_path, HEAD + "1700000000,a,1\n"), "fill")


@pytest.mark.parametrize(
    ("text", "name"),
    [("Timestamp,value\n1700000000,1\n", "Timestamp"), ("ts,Stream,v\n1700000000,a,1\n", "Stream")],
)
def test_an_id_column_named_in_other_case_is_named_in_the_refusal(tmp_path, text, name):
    """Not read as a value column ("column 'Stream' holds 'a', not a number")."""
    with pytest.raises(DataError, match=rf"s\.csv:1: .* case-sensitive: rename '{name}' to"):
        read_samples(write(tmp_path, text))


def test_a_column_of_names_among_the_values_is_told_to_be_named_stream(tmp_path):
    """A "host" column in a file without ``stream`` is read as a value: the refusal says what
    to name it; beside ``stream`` it is told to be left out; a text cell in a column of numbers
    or one of NaN is a bad cell."""
    hosts = "timestamp,host,cpu\n1700000000,web-1,0.5\n1700000060,web-2,0.7\n"
    with pytest.raises(DataError, match=r"s\.csv:2: column 'host' holds 'web-1', text in every"):
        read_samples(write(tmp_path, hosts))
    both = "timestamp,stream,host,cpu\n1700000000,a,web-1,0.5\n"
    told = r"s\.csv:2: column 'host' holds 'web-1', text in every row: no metric; leave it out wi"
    with pytest.raises(DataError, match=told):
        read_samples(write(tmp_path, both))
    with pytest.raises(DataError, match=r"samples, row 0: .* no metric; leave it out of the table"):
        samples_of(pd.read_csv(write(tmp_path, both)))
    mixed = "timestamp,host,cpu\n1700000000,1,0.5\n1700000060,web-2,0.7\n"
    with pytest.raises(DataError, match=r"s\.csv:3: column 'host' holds 'web-2', not a number"):
        read_samples(write(tmp_path, mixed))
    nans = "timestamp,a,cpu\n1700000000,NaN,0.5\n"  # no names: a missing value
    with pytest.raises(DataError, match=r"s\.csv:2: column 'a' is 'NaN', a missing value"):
        read_samples(write(tmp_path, nans))


def test_the_value_columns_are_those_named_in_that_order_or_all_but_those_ignored(tmp_path):
    """``metrics``: only those columns, in their order (the others, text or not, are not read);
    ``ignore``: every value column but those. Each name once, a value column of the file, never
    the time or an id column, and one of the two."""
    path = write(tmp_path, "timestamp,stream,host,cpu,mem\n1700000000,a,web-1,0.5,7\n")
    chosen = read_samples(path, metrics=["mem", "cpu"])
    assert chosen.channels == ["mem", "cpu"] and chosen.values.tolist() == [[7.0, 0.5]]
    left = read_samples(path, ignore=["host"])
    assert left.channels == ["cpu", "mem"] and left.values.tolist() == [[0.5, 7.0]]
    frame = pd.read_csv(path)
    assert samples_of(frame, ignore=["host", "mem"]).channels == ["cpu"]
    with pytest.raises(DataError, match=r"s\.csv:1: no value column 'disk' \(they are host, cp"):
        read_samples(path, metrics=["cpu", "disk"])
    with pytest.raises(DataError, match=r"no value column left once host, cpu, mem are ignored"):
        read_samples(path, ignore=["host", "cpu", "mem"])
    with pytest.raises(ConfigError, match=r"'stream' is the time column or an id column"):
        read_samples(path, ignore=["stream"])
    with pytest.raises(ConfigError, match=r"'cpu' is named twice"):
        read_samples(path, metrics=["cpu", "cpu"])
    with pytest.raises(ConfigError, match=r"metrics: name at least one column"):
        read_samples(path, metrics=[])
    with pytest.raises(ConfigError, match=r"not both"):
        read_samples(path, metrics=["cpu"], ignore=["host"])


def test_a_column_of_labels_under_another_name_is_not_learned_as_a_metric(tmp_path):
    """NAB's ``is_anomaly`` or SKAB's ``changepoint`` among the values: refused with the name
    to use; a metric of that name holding other numbers is a metric."""
    rows = "timestamp,value,is_anomaly\n1700000000,1.5,0\n1700000060,1.7,1\n"
    with pytest.raises(DataError, match=r"s\.csv:1: column 'is_anomaly' .* name it 'label'"):
        read_samples(write(tmp_path, rows))
    target = "timestamp,value,target\n1700000000,1.5,20.5\n1700000060,1.7,21\n"
    assert read_samples(write(tmp_path, target)).channels == ["value", "target"]


def test_stream_ids_that_pandas_would_read_as_missing_are_ids(tmp_path):
    """North America's region, a host called null: ids the daemon accepts, so training does."""
    rows = "".join(f"{1_700_000_000 + i},{s},{i}\n" for i, s in enumerate(["NA", "null", "None"]))
    samples = read_samples(write(tmp_path, HEAD + rows))
    assert samples.stream.tolist() == ["NA", "null", "None"]
    np.testing.assert_array_equal(samples.values[:, 0], [0, 1, 2])


def test_a_missing_value_in_a_dataframe_is_named():
    frame = pd.DataFrame({"ts": [1_700_000_000, 1_700_000_060], "value": [1.0, np.nan]})
    with pytest.raises(DataError, match=r"^samples, row 1: column 'value' is nan"):
        samples_of(frame)


def test_a_dataframe_s_rows_are_named_by_position_as_iloc_counts_them():
    """A table in memory has no lines: its rows are named as ``frame.iloc`` counts them (a
    CSV's line numbers, header included, were two more than the row a pandas user looks at)."""
    times = ["2026-01-01T00:00:00", "2026-01-01T00:01:00", "nope"]
    with pytest.raises(DataError, match=r"^samples, row 2: timestamp 'nope' is not a time"):
        samples_of(pd.DataFrame({"timestamp": times, "value": 1.0}))
    with pytest.raises(DataError, match=r"^samples: column names are case-sensitive"):
        samples_of(pd.DataFrame({"timestamp": times[:2], "Stream": "a", "value": 1.0}))
    back = pd.DataFrame({"ts": 1_700_000_000 - 60.0 * np.arange(4), "value": 1.0})
    with pytest.warns(UserWarning, match=r"^samples, row 1: .* after 1700000000.0 on row 0\)"):
        samples_of(back)


def test_a_dataframe_with_a_column_twice_is_refused_by_name():
    """As a CSV's header is (it ended in an IndexError: ``frame[names]`` took the column twice
    over); a name with spaces around it counts as the name."""
    frame = pd.DataFrame([[1_700_000_000, 1.0, 2.0, 3.0]], columns=["ts", "cpu", "mem", " mem"])
    with pytest.raises(DataError, match=r"^samples: column 'mem' appears twice$"):
        samples_of(frame)


def test_a_byte_order_mark_is_not_part_of_the_time_column_s_name(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + (HEAD + "1700000000,a,1\n").encode())
    assert read_samples(p).stream.tolist() == ["a"]
    p.write_bytes(b"\xef\xbb\xbftimestamp;value\n1700000000;1\n")
    with pytest.raises(DataError, match=r"bom\.csv:1: one column, 'timestamp;value'"):
        read_samples(p)


def _rows(times, streams=("a",)):
    return "".join(f"{t},{s},1\n" for t in times for s in streams)


@pytest.mark.parametrize(
    "times",
    [
        [1_700_000_000 + 60 * i for i in range(300)][::-1],  # newest first
        np.random.default_rng(0).permutation(1_700_000_000 + 60 * np.arange(300)).tolist(),
    ],
    ids=["newest first", "shuffled"],
)
def test_rows_out_of_time_order_are_taken_as_they_stand_with_one_warning(tmp_path, times):
    warning = r"s\.csv:\d+: stream 'a' \(and 1 more streams\) goes back in time"
    with pytest.warns(UserWarning, match=warning):
        samples = read_samples(write(tmp_path, HEAD + _rows(times, ("a", "b"))))
    np.testing.assert_array_equal(samples.ts[::2], times)  # never sorted (the clock rule)


def test_a_clock_stepping_back_now_and_then_is_no_reason_to_warn(tmp_path, recwarn):
    """A daylight-saving hour stamped twice, a clock stepping back 55 minutes: once each."""
    times = [1_700_000_000 + 300 * (i - 12 * (i >= 100)) - 3300 * (i >= 250) for i in range(300)]
    samples = read_samples(write(tmp_path, HEAD + _rows(times, ("a", "b"))))
    assert len(samples) == 600
    assert not [w for w in recwarn if "back in time" in str(w.message)]


def test_a_seq_that_does_not_count_each_stream_s_samples_is_warned_about(tmp_path, recwarn):
    """A seq counting seconds (or one counter over interleaved streams) jumps at every sample:
    each jump starts the stream's windows again, so it is named; a lost sample now and then,
    or seq 0, 1, 2, ... per stream, is not."""
    times = [1_700_000_000 + 300 * i for i in range(300)]
    seconds = "timestamp,stream,seq,value\n" + "".join(f"{t},a,{t},1\n" for t in times)
    with pytest.warns(UserWarning, match=r"s\.csv:3: stream 'a' does not count its samples in seq"):
        samples = read_samples(write(tmp_path, seconds))
    with pytest.raises(DataError, match="no stream has 8 samples in a row: its seq jumps"):
        windows_of(samples, 8)
    counted = "timestamp,stream,seq,value\n" + "".join(
        f"{t},a,{i + (i > 100)},1\n"
        for i, t in enumerate(times)  # one sample lost
    )
    assert len(windows_of(read_samples(write(tmp_path, counted)), 8).table) == 36  # 37 less one
    assert not [w for w in recwarn if "does not count" in str(w.message)][1:]


def test_replay_sends_each_stream_s_own_metrics_by_name_on_request():
    """``aemon replay --samples --by-name``: the values as a producer writing a map sends
    them, each stream with the metrics it has (a file of streams of different metrics)."""
    frame = pd.DataFrame(
        {
            "ts": 1_700_000_000 + 60.0 * np.arange(3),
            "stream": ["web", "pump", "web"],
            "cpu": [0.5, np.nan, 0.25],
            "flow": [np.nan, 3.0, np.nan],
        }
    )
    samples = samples_of(frame)
    sent = [orjson.loads(v) for _, v, _ in sample_messages(samples, by_name=True)]
    assert [d["values"] for d in sent] == [{"cpu": 0.5}, {"flow": 3.0}, {"cpu": 0.25}]
    plain = [orjson.loads(v)["values"] for _, v, _ in sample_messages(samples)]
    assert plain == [[0.5], [3.0], [0.25]]


def test_an_end_column_cuts_a_stream_into_lives_that_replay_sends_with_its_end_markers(
    tmp_path, recwarn
):
    """``end`` = 1: the stream's end marker follows that sample. Its windows start afresh after
    it (seq from 0 again is no repeat, and warns of nothing), and replay sends the marker
    there, counting a stream without seq from 0 again, as the daemon numbers it."""
    rows = [(f"{1_700_000_000 + 60 * i},a,{i % 10},{int(i == 9)},{i}\n") for i in range(20)]
    rows += [f"{1_700_000_000 + 60 * i},b,{i},0,{i}\n" for i in range(12)]
    samples = read_samples(write(tmp_path, "timestamp,stream,seq,end,value\n" + "".join(rows)))
    assert samples.channels == ["value"] and samples.end is not None
    assert [r.tolist() for r in samples.runs_of("a")] == [list(range(10)), list(range(10, 20))]
    assert len(samples.runs_of("b")) == 1 and not [w for w in recwarn if "seq" in str(w.message)]
    cut = windows_of(samples, 8, 2).table  # a: 2 windows in each life, none across the end
    assert cut.seq.tolist() == [7, 9, 7, 9, 7, 9, 11]
    assert cut.start.tolist()[:4] == [1_700_000_000 + 60 * i for i in (0, 2, 10, 12)]
    sent = [orjson.loads(v) for _, v, _ in sample_messages(samples, with_seq=False)]
    assert sent[10] == {"stream": "a", "end": True} and len(sent) == message_count(samples) == 33
    bare = dataclasses.replace(samples, seq=None)  # no seq column: each sample's count
    assert windows_of(bare, 8, 2).table.seq.tolist() == cut.seq.tolist()
    counts = [orjson.loads(v).get("seq") for k, v, _ in sample_messages(bare) if k == b"a"]
    assert counts == [*range(10), None, *range(10)]  # the marker between
    check_counted(samples)  # a's seq from 0 again after its end: what the daemon counts
    # the sample an end follows left out (a missing value): its stream still ends there
    gappy = [f"{1_700_000_000 + 60 * i},a,{int(i == 4)},{'' if i == 4 else i}\n" for i in range(9)]
    with pytest.warns(UserWarning, match="left out 1 of 9 rows"):
        kept = read_samples(
            write(tmp_path, "timestamp,stream,end,value\n" + "".join(gappy)), "skip"
        )
    assert [len(r) for r in kept.runs_of("a")] == [4, 4]
    with pytest.raises(DataError, match=r"end must be 0 or 1 \(the stream ends after the row\)"):
        read_samples(write(tmp_path, "timestamp,end,value\n1700000000,2,1\n"))


def test_streams_counting_seq_from_1_are_warned_about_once(tmp_path):
    """The daemon meets a stream whose seq starts at 1 at its window 1 and warms it up: the
    CSV says so before it is replayed; streams from 0 (or from further on: a slice of a
    history) are not named."""
    rows = [
        f"{1_700_000_000 + 60 * i},{s},{i + base},1\n"
        for s, base in (("a", 1), ("b", 1), ("c", 0), ("d", 900))
        for i in range(3)
    ]
    with pytest.warns(
        UserWarning, match=r"s\.csv:2: stream 'a' \(and 1 more streams\) counts seq from 1"
    ):
        read_samples(write(tmp_path, "timestamp,stream,seq,value\n" + "".join(rows)))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        read_samples(write(tmp_path, "timestamp,stream,seq,value\n" + "".join(rows[6:])))
    assert not said
