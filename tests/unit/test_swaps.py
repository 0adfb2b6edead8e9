"""Swap points (:mod:`aemon.daemon.swaps`): which windows a restart skips and where it resumes
a stream whose model was swapped in, kept through the learned-models topic's JSON."""

from aemon.daemon.swaps import SKIP, Resume, Resuming, SwapPoint

STATE = {"above": [True], "since_trigger": 0, "last": [9, 540.0], "event": None, "raised": False}
POINT = SwapPoint("v2", 10, 500, STATE, False)


def resuming() -> Resuming:
    r = Resuming()
    r.restore(0, {"a": POINT, "b": POINT, "c": POINT, "d": POINT})
    return r


def test_a_swap_point_survives_its_record():
    assert SwapPoint.from_json(POINT.to_json()) == POINT


def test_a_restart_that_reads_from_before_the_swap_skips_to_it_and_resumes_there():
    r = resuming()
    got = [r.at(0, "a", "v2", i, 400 + 10 * i) for i in range(5, 13)]
    assert got[:5] == [SKIP] * 5  # windows 5-9: decided before the restart
    assert got[5] == Resume(POINT, first=5)  # window 10: resumed, its warm-up from window 5
    assert got[6:] == [None, None]  # then as ever
    assert r.at(1, "a", "v2", 5, 450) is None  # another partition's "a": none kept


def test_a_swap_point_behind_the_restart_or_of_another_model_or_stream_life_is_let_be():
    r = resuming()
    assert r.at(0, "b", "v2", 11, 510) is None  # the re-read starts after the swap point
    assert r.at(0, "b", "v2", 5, 450) is None  # looked at once, at the stream's first window
    assert r.at(0, "c", "v3", 5, 450) is None  # another model swapped in since: a restart's
    assert r.at(0, "d", "v2", 5, 900) is None  # past its offset: the stream ended, began again
    r.forget({0})
    assert r.points == {} and r.ahead == {}
