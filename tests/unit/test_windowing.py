import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aemon.core.windowing import (
    BLANK,
    DAY,
    TIME_OF_DAY,
    LateSample,
    Windower,
    clock_values,
    time_of_day,
)


def feed(w: Windower, samples, partition=0):
    """samples: (offset, stream, seq, ts, value) -> emitted {(stream, seq): window}; ``ts`` is
    only carried along: the windower never looks at the clock."""
    out = {}
    row = np.zeros(w.length, dtype=np.float32)
    for offset, stream, seq, _ts, value in samples:
        try:
            got = w.push(partition, offset, stream, seq, np.float32([value]), row)
        except LateSample:
            continue
        if got is not None:
            out[(stream, got)] = row.copy()
    return out


def test_a_count_from_0_again_is_named():
    w = Windower(length=3, stride=1)
    row = np.zeros(3, dtype=np.float32)
    for seq in range(4):
        w.push(0, seq, "a", seq, np.float32([seq]), row)
    with pytest.raises(LateSample, match=r"last \(3\) \(its producer counts from 0 again"):
        w.push(0, 4, "a", 0, np.float32([0]), row)  # a second file replayed from 0


def test_length_and_stride_cut_the_expected_windows():
    w = Windower(length=4, stride=2)
    got = feed(w, [(i, "a", i, float(i), float(i)) for i in range(9)])
    assert sorted(got) == [("a", 3), ("a", 5), ("a", 7)]
    np.testing.assert_array_equal(got[("a", 5)], [2, 3, 4, 5])


def test_streams_are_independent_and_seq_defaults_to_arrival_count():
    w = Windower(length=2, stride=2)
    samples = [(i, "ab"[i % 2], None, float(i), float(i)) for i in range(8)]
    got = feed(w, samples)
    assert sorted(got) == [("a", 1), ("a", 3), ("b", 1), ("b", 3)]
    np.testing.assert_array_equal(got[("b", 3)], [5, 7])


def test_repeated_seqs_are_refused_and_gaps_restart_the_buffer():
    w = Windower(length=3, stride=1)
    row = np.zeros(3, dtype=np.float32)
    w.push(0, 0, "a", 0, np.float32([0]), row)
    with pytest.raises(LateSample, match=r"not after the stream's last \(0\)$"):
        w.push(0, 1, "a", 0, np.float32([0]), row)  # repeated seq
    got = feed(
        w, [(2, "a", 1, 2.0, 1), (3, "a", 5, 3.0, 5), (4, "a", 6, 4.0, 6), (5, "a", 7, 5, 7)]
    )
    assert w.gaps == 1
    assert list(got) == [("a", 7)]  # 0,1 then a jump to 5: the first full window ends at 7


def test_a_stream_met_on_a_second_partition_is_counted_with_both_partitions():
    """Messages not keyed by stream spread a stream over partitions, each windowing its share."""
    w = Windower(length=2, stride=1)
    feed(w, [(0, "a", 0, 0.0, 0), (1, "b", 0, 0.0, 0)], partition=0)
    feed(w, [(0, "b", 1, 0.0, 0)], partition=1)
    feed(w, [(1, "c", 0, 0.0, 0), (2, "b", 2, 0.0, 0)], partition=1)  # "b" is known on 1 now
    assert (w.split, w.last_split) == (1, ("b", 0, 1))
    w.drop([0])
    feed(w, [(3, "a", 0, 0.0, 0)], partition=1)  # partition 0 is no longer this consumer's
    assert w.split == 1


def test_safe_offset_and_drop():
    w = Windower(length=3, stride=3)
    feed(w, [(10, "a", 0, 0.0, 0), (11, "b", 0, 0.0, 0), (12, "a", 1, 1.0, 0)])
    assert w.safe_offset(0, 13) == 10
    assert w.safe_offset(1, 50) == 50
    w.drop([0])
    assert w.safe_offset(0, 13) == 13


def test_multichannel_windows_are_channels_by_time():
    w = Windower(length=2, stride=2)
    row = np.zeros((2, 2), dtype=np.float32)
    w.push(0, 0, "a", 0, np.float32([1, 10]), row)
    assert w.push(0, 1, "a", 1, np.float32([2, 20]), row) == 1
    np.testing.assert_array_equal(row, [[1, 2], [10, 20]])


def test_streams_of_different_widths_fill_the_start_of_a_wider_row():
    """A stream's samples are as wide as its first: one metric with a blank clock beside three
    metrics without a clock, each window in the first ``channels x length`` entries of a row
    sized for the widest."""
    w = Windower(length=2, stride=1)
    row = np.full(6, -1, dtype=np.float32)  # [3 channels, 2] at the most
    w.push(0, 0, "one", 0, np.float32([1]), row, (0.0, 0.0))
    assert w.push(0, 1, "one", 1, np.float32([2]), row, (0.0, 0.0)) == 1
    np.testing.assert_array_equal(row, [1, 2, 0, 0, 0, 0])
    row[:] = -1
    w.push(0, 2, "two", 0, np.float32([1, 10]), row)
    assert w.push(0, 3, "two", 1, np.float32([2, 20]), row) == 1
    np.testing.assert_array_equal(row, [1, 2, 10, 20, -1, -1])


def test_stride_above_length_is_refused():
    with pytest.raises(ValueError, match="stride"):
        Windower(length=3, stride=4)


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(1, 6),
    stride_frac=st.floats(0.01, 1.0),
    streams=st.lists(st.sampled_from("abc"), min_size=1, max_size=60),
    crash=st.integers(0, 60),
)
def test_a_restart_from_the_safe_offset_loses_and_changes_no_window(
    length, stride_frac, streams, crash
):
    stride = max(1, round(length * stride_frac))
    counts: dict = {}
    samples = []
    for offset, s in enumerate(streams):
        seq = counts.get(s, 0)
        counts[s] = seq + 1
        samples.append((offset, s, seq, float(offset), float(offset)))
    everything = feed(Windower(length, stride), samples)

    crash = min(crash, len(samples))
    before_w = Windower(length, stride)
    before = feed(before_w, samples[:crash])
    resume = before_w.safe_offset(0, crash)  # what the daemon would have committed
    after = feed(Windower(length, stride), samples[resume:])
    assert set(everything) == set(before) | set(after)
    for key, window in after.items():
        np.testing.assert_array_equal(window, everything[key])


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(1, 6),
    stride_frac=st.floats(0.01, 1.0),
    steps=st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from([1, 1, 1, 2])), max_size=80),
)
def test_every_window_holds_the_last_samples_since_the_stream_s_last_gap(
    length, stride_frac, steps
):
    """Against cutting each stream's list of samples by hand: ``length`` samples up to the one
    that ends the window, channels by time, none from before a jump in ``seq``."""
    stride = max(1, round(length * stride_frac))
    w = Windower(length, stride)
    row = np.zeros((2, length), dtype=np.float32)
    seen: dict = {}  # stream -> [(seq, sample)] since its last gap
    nxt: dict = {}
    for offset, (stream, step) in enumerate(steps):
        seq = nxt.get(stream, 0) + step - 1
        nxt[stream] = seq + 1
        sample = np.float32([offset, -offset])
        run = seen.setdefault(stream, [])
        if run and seq != run[-1][0] + 1:
            run.clear()
        run.append((seq, sample))
        got = w.push(0, offset, stream, seq, sample, row)
        due = len(run) >= length and (seq + 1 - length) % stride == 0
        assert (got is not None) == due
        if due:
            np.testing.assert_array_equal(row, np.stack([x for _, x in run[-length:]]).T)


def test_clock_jumps_do_not_refuse_or_reorder_samples():
    """A daylight-saving hour stamped twice and a 55-minute step back: every sample is taken in
    order, exactly as without the jumps."""
    ts = [0, 3600, 3600, 7200, 7200 - 3300, 7500]  # repeat, then a step back
    jumpy = [(i, "a", None, float(t), float(i)) for i, t in enumerate(ts)]
    calm = [(i, "a", None, float(i), float(i)) for i in range(len(ts))]
    assert (
        feed(Windower(3, 1), jumpy).keys()
        == feed(Windower(3, 1), calm).keys()
        == {
            ("a", 2),
            ("a", 3),
            ("a", 4),
            ("a", 5),
        }
    )


def test_history_keeps_the_commit_behind_the_last_windows():
    w = Windower(length=2, stride=1, history=3)
    feed(w, [(10 + i, "a", i, 0.0, i) for i in range(8)])  # windows end at seq 1..7
    # The last history + 1 = 4 windows (seq 4..7) start at seq 3: offset 13.
    assert w.history_offset(0, "a") == 13
    assert w.safe_offset(0, 18) == 13


def test_the_clock_channels_carry_the_time_of_day_or_zeros():
    """Two channels after the values: the UTC time of day on the unit circle (midnight (0, 1),
    6:00 (1, 0), the same a day later), zeros for a blank clock, none for a model without."""
    w = Windower(length=2, stride=1)
    row = np.zeros((3, 2), dtype=np.float32)
    w.push(0, 0, "a", 0, np.float32([5]), row, clock_values(TIME_OF_DAY, 86_400.0 * 3))
    six = clock_values(TIME_OF_DAY, 86_400.0 * 3 + 21_600)
    assert w.push(0, 1, "a", 1, np.float32([7]), row, six) == 1
    np.testing.assert_allclose(row, [[5, 7], [0, 1], [1, 0]], atol=1e-7)
    assert time_of_day(1_700_000_000.0) == pytest.approx(time_of_day(1_700_000_000.0 + DAY))
    w.push(0, 2, "b", 0, np.float32([1]), row, clock_values(BLANK, 86_400.0))
    w.push(0, 3, "b", 1, np.float32([2]), row, clock_values(BLANK, 86_400.0))
    np.testing.assert_array_equal(row, [[1, 2], [0, 0], [0, 0]])
    assert clock_values(None, 86_400.0) is None
    w.push(0, 4, "c", 0, np.float32([3]), row, None)  # no clock channels: [length] only
    assert w.push(0, 5, "c", 1, np.float32([4]), row, None) == 1
    np.testing.assert_array_equal(row, [[3, 4], [0, 0], [0, 0]])


def test_a_counted_stream_resumes_its_count_at_its_anchor_after_a_restart():
    """Samples without seq: a windower that re-reads from an earlier offset, restored with the
    anchors the first one had, skips what came before each stream's anchor and gives every
    later window the seq the first one gave it."""
    samples = [(i, "ab"[i % 2], None, float(i), float(i)) for i in range(60)]
    first = Windower(length=3, stride=1, history=4)
    feed(first, samples[:40])
    anchors = first.anchors(0)
    assert anchors == {"a": (26, 13), "b": (27, 13)}  # 5 windows back: samples 13 of each
    later = feed(first, samples[40:])
    again = Windower(length=3, stride=1, history=4)
    again.restore(0, anchors, 20)
    resumed = feed(again, samples[20:])  # from the commit, before either anchor
    assert set(later) <= set(resumed)
    for key, window in later.items():
        np.testing.assert_array_equal(resumed[key], window)
    assert min(seq for _, seq in resumed) == 15  # the first windows after the anchors
    plain = Windower(length=3, stride=1, history=4)
    assert min(seq for _, seq in feed(plain, samples[20:])) == 2  # without: counted from 0


def test_a_restored_stream_not_met_again_keeps_its_anchor():
    """After a restart, a stream whose samples lie further into the re-read than the first
    hand-offs still has its anchor in the next ones: the commit they are kept with would
    otherwise count it from 0 again after a second restart."""
    w = Windower(length=3, stride=1, history=4)
    assert not w.counts(0)
    w.restore(0, {"a": (26, 13), "quiet": (900, 450)}, 20)
    assert w.counts(0)
    feed(w, [(i, "a", None, float(i), float(i)) for i in range(20, 40)])
    anchors = w.anchors(0)
    assert anchors["quiet"] == (900, 450) and anchors["a"][0] >= 26
    got = feed(w, [(o, "quiet", None, 0.0, 0.0) for o in (900, 903, 905)])
    assert list(got) == [("quiet", 452)]  # met at its anchor: counted on from 450
    assert w.anchors(0)["quiet"] == (900, 450)
    w.drop([0])
    assert not w.counts(0) and w.anchors(0) == {}


def test_the_holder_of_a_partitions_commit_is_the_stream_needed_from_earliest():
    w = Windower(length=3, stride=1, history=2)
    assert w.holder(0) is None
    feed(w, [(o, "ab"[o % 2], o // 2, 0.0, 0.0) for o in range(12)])  # a and b, in turn
    assert w.holder(0) == ("a", 2, 10, 2)  # a's windows' history starts at its sample 1
    feed(w, [(o, "b", o - 6, 0.0, 0.0) for o in range(12, 30)])  # a stops
    assert w.holder(0) == ("a", 2, 10, 2) and w.safe_offset(0, 30) == 2


def test_an_ended_stream_is_forgotten_and_a_later_sample_starts_it_afresh():
    """Its end marker: the stream holds nothing back any more and its seq may start from 0
    again; a stream without seq counts from 0 again, and a restart that re-reads from after
    the marker, restored with the anchors kept then, counts it from 0 too, not from an anchor
    kept before its end."""
    w = Windower(length=3, stride=1, history=2)
    feed(w, [(o, "ab"[o % 2], o // 2, 0.0, 0.0) for o in range(12)])
    assert not w.end(0, 12, "a", after=8)  # sent by the daemon, but a sent again at 10
    assert w.end(0, 12, "a", after=10) and not w.end(0, 13, "nobody")
    assert w.holder(0) == ("b", 3, 11, 1) and w.safe_offset(0, 14) == 3
    assert list(feed(w, [(o, "a", o - 14, 0.0, 0.0) for o in range(14, 17)])) == [("a", 2)]

    counted = Windower(length=3, stride=1, history=2)
    counted.restore(0, {"c": (4, 2)}, 4)  # kept with the commit before its end
    feed(counted, [(o, "c", None, 0.0, 0.0) for o in range(4, 10)])
    assert counted.anchors(0) == {"c": (5, 3)}
    counted.end(0, 10, "c")
    assert counted.counts(0) and counted.anchors(0) == {"c": (11, 0)}  # from 0, after it
    assert counted.safe_offset(0, 11) == 11
    after = Windower(length=3, stride=1, history=2)
    after.restore(0, counted.anchors(0), 11)  # a restart from the commit after the marker
    again = [(o, "c", None, 0.0, 0.0) for o in range(11, 14)]
    assert list(feed(after, again)) == list(feed(counted, again)) == [("c", 2)]
    assert counted.anchors(0) == after.anchors(0) == {"c": (11, 0)}


def test_an_ended_streams_anchor_goes_once_the_commit_passes_its_end():
    """A stream without seq that ended keeps its anchor ``(marker + 1, 0)`` in the anchors of
    each commit until one passes it: then it goes, so they do not grow with every stream that
    ever ended. A restart from there or later leaves out any anchor before where it re-reads
    (one kept before the stream's end, still in the topic), and counts the stream from 0."""
    w = Windower(length=3, stride=1, history=2)
    feed(w, [(o, "cd"[o % 2], None, 0.0, 0.0) for o in range(10)])
    assert w.anchors(0) == {"c": (0, 0), "d": (1, 0)}
    w.end(0, 10, "c")
    for commit, anchors in ((3, {"c": (11, 0)}), (11, {"c": (11, 0)}), (12, {})):
        w.committed(0, commit)
        assert {s: a for s, a in w.anchors(0).items() if s == "c"} == anchors
    w.end(0, 12, "d")
    w.committed(0, 14)
    assert w.anchors(0) == {} and not w.counts(0)  # the partition pays for anchors no more
    quiet = Windower(length=3, stride=1, history=2)
    quiet.restore(0, {"q": (20, 9)}, 15)  # restored, its sample not read yet
    quiet.committed(0, 20)  # a commit at its sample has not passed it: kept
    assert quiet.anchors(0) == {"q": (20, 9)}
    stale = Windower(length=3, stride=1, history=2)
    stale.restore(0, {"c": (2, 1), "e": (15, 4)}, 12)  # c's from before its end
    got = feed(stale, [(o, "ce"[o % 2], None, 0.0, 0.0) for o in range(15, 21)])
    assert sorted(got) == [("c", 2), ("e", 6)]  # c from 0, e on from its anchor
