"""Per-sample decisions of a timeline: the rows an event covers, each row's score."""

import numpy as np

from aemon.training.timeline import Timeline, flagged_rows, row_scores


def timeline():
    """Two streams of 6 windows each (rows 2..7 and 10..15 of a 16-row CSV)."""
    t = Timeline()
    for stream, first_row, above in (("a", 2, [0, 1, 0, 1, 0, 0]), ("b", 10, [0, 0, 0, 1, 1, 1])):
        for k, a in enumerate(above):
            t.stream.append(stream)
            t.seq.append(k + 2)
            t.last_row.append(first_row + k)
            t.score.append(float(k) + (10.0 if a else 0.0))
            t.above.append(bool(a))
    return t


def test_an_event_covers_its_opening_window_to_its_last_window_above():
    events = [
        {"state": "open", "stream": "a", "start_seq": 3},
        {"state": "resolved", "stream": "a", "start_seq": 3, "resolved_seq": 7},
        {"state": "open", "stream": "b", "start_seq": 5},  # still open at the end
        {"state": "open", "stream": "b", "start_seq": 5},  # a duplicate (at-least-once)
    ]
    flags = flagged_rows(timeline(), events, 16)
    assert np.flatnonzero(flags).tolist() == [3, 4, 5, 13, 14, 15]


def test_rows_before_a_streams_first_window_have_no_score():
    scores = row_scores(timeline(), 16)
    assert np.isnan(scores[[0, 1, 8, 9]]).all()
    assert scores[3] == 11.0 and scores[15] == 15.0
