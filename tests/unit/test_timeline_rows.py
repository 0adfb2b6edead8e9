"""Per-sample decisions of a timeline: the rows an event covers, each row's score."""

import numpy as np

from aemon.training.timeline import Timeline, flagged_rows, row_scores


def timeline():
    """Two streams of 6 windows each (rows 2..7 and 10..15 of a 24-row CSV), and a stream
    that ended and was sent again (rows 16..19 and 20..23, each run's seq from 2)."""
    t = Timeline()
    for stream, first_row, above in (
        ("a", 2, [0, 1, 0, 1, 0, 0]),
        ("b", 10, [0, 0, 0, 1, 1, 1]),
        ("c", 16, [0, 1, 0, 1]),
        ("c", 20, [0, 1, 1, 0]),
    ):
        for k, a in enumerate(above):
            t.stream.append(stream)
            t.seq.append(k + 2)
            t.end.append(60.0 * (first_row + k))
            t.last_row.append(first_row + k)
            t.score.append(float(k) + (10.0 if a else 0.0))
            t.above.append(bool(a))
    return t


def event(state: str, stream: str, row: int, at: int | None = None, ended: bool = False) -> dict:
    """An event opened at the window ending at ``row``; resolved at the one ending at ``at``."""
    doc = {"event_id": f"{stream}{row}", "state": state, "stream": stream}
    doc |= {"start_seq": row % 4 + 2 if stream == "c" else row - (0 if stream == "a" else 8)}
    doc["start_ts"] = 60.0 * row
    if at is not None:
        doc["resolved_seq"] = doc["start_seq"] + at - row
        doc["resolved_ts"] = 60.0 * at
    return doc | ({"ended": True} if ended else {})


def test_an_event_covers_its_opening_window_to_its_last_window_above():
    events = [
        event("open", "a", 3),
        event("resolved", "a", 3, at=7),
        event("open", "b", 13),  # still open at the end
        event("open", "b", 13),  # a duplicate (at-least-once)
        # c's first life: resolved by its end at its last window, which was above
        event("open", "c", 17),
        event("resolved", "c", 17, at=19, ended=True),
        event("open", "c", 21),  # its second life, the same seq: its own rows
        event("resolved", "c", 21, at=23),
    ]
    flags = flagged_rows(timeline(), events, 24)
    assert np.flatnonzero(flags).tolist() == [3, 4, 5, 13, 14, 15, 17, 18, 19, 21, 22]


def test_rows_before_a_streams_first_window_have_no_score():
    scores = row_scores(timeline(), 24)
    assert np.isnan(scores[[0, 1, 8, 9]]).all()
    assert scores[3] == 11.0 and scores[15] == 15.0
