"""A stream's sample step against its model's: named once when off by more than twice."""

import pytest

from aemon.core.cadence import OVER, Cadence, spoken


def fed(step: float, windows: int, trained: float = 60.0) -> list[str]:
    cadence = Cadence("pump-1", trained, 8)
    said = [cadence.push(seq, 1_700_000_000 + step * seq) for seq in range(windows)]
    return [line for line in said if line]


def test_a_stream_sampled_six_times_as_often_as_trained_is_named_once():
    (line,) = fed(10.0, 10 * OVER)
    assert line.startswith("stream 'pump-1': samples 10 s apart where its model was trained")
    assert "samples 1 min apart, so its 8-sample windows span 70 s instead of 7 min" in line


@pytest.mark.parametrize("step", [35.0, 60.0, 110.0])
def test_a_step_within_twice_either_way_is_no_reason_to_say_anything(step):
    assert fed(step, 10 * OVER) == []


def test_the_median_step_counts_not_a_gap_or_a_clock_stepping_back():
    cadence = Cadence("s", 60.0, 8)
    times = [60.0 * i for i in range(3 * OVER)]
    times[OVER] += 86_400  # a day missing, then a clock stepping back
    assert not any(cadence.push(i, t) for i, t in enumerate(times))


def test_times_that_do_not_move_forward_are_named_as_such():
    (line,) = fed(0.0, OVER + 1)
    assert "its windows' times do not move forward" in line


def test_durations_are_said_in_the_unit_people_would_say():
    assert [spoken(s) for s in (0.25, 10, 60, 70, 420, 5400, 9000, 86_400)] == [
        "250 ms", "10 s", "1 min", "70 s", "7 min", "90 min", "2.5 h", "1 d"
    ]  # fmt: skip
