"""The per-stream decision layer: adaptive threshold, events, bounded history."""

import math
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from aemon.core.events import Decider, Rule, event_id, event_record
from aemon.tail import line as tail_line
from aemon.tail import stream_of


def run(rule: Rule, scores, stream="s"):
    d = Decider(rule, stream)
    verdicts = [d.push(i, float(i), float(s)) for i, s in enumerate(scores)]
    return d, verdicts


def test_fixed_threshold_events_open_once_and_resolve_after_a_quiet_period():
    rule = Rule(threshold=1.0, open_after=2, within=3, resolve_after=3)
    scores = [0, 0, 2, 0, 2, 2, 0, 2, 0, 0, 0, 0, 0, 5]
    _, v = run(rule, scores)
    opened = [i for i, x in enumerate(v) if x.opened]
    resolved = [(i, x.resolved) for i, x in enumerate(v) if x.resolved]
    assert opened == [4]  # 2 of the last 3 above at window 4; the lone 5 at 13 opens nothing
    ((at, ev),) = resolved
    assert at == 10  # triggers at 4, 5, 7 (2 of 3 above); quiet from 8: resolved at 7 + 3
    assert (ev.start_seq, ev.end_seq, ev.windows_above, ev.peak_score) == (4, 7, 3, 2.0)


def test_a_single_window_opens_with_open_after_one():
    _, v = run(Rule(threshold=1.0, open_after=1, within=1, resolve_after=1), [0, 3, 0, 3, 3, 0])
    assert [i for i, x in enumerate(v) if x.opened] == [1, 3]
    assert [i for i, x in enumerate(v) if x.resolved] == [2, 5]


def test_adaptive_threshold_is_the_running_quantile_times_the_margin():
    rng = np.random.default_rng(0)
    seed = tuple(rng.lognormal(0, 0.3, 50).tolist())
    scores = rng.lognormal(0, 0.3, 300)
    rule = Rule(
        threshold=0.01, adaptive_window=40, adaptive_quantile=0.9, adaptive_margin=0.2, seed=seed
    )
    _, v = run(rule, scores)
    history = np.r_[np.log(seed), np.log(scores)]
    for t in (0, 10, 39, 40, 41, 299):
        past = history[len(seed) + t - 40 : len(seed) + t]
        want = max(0.01, math.exp(np.quantile(past, 0.9) + 0.2))
        assert v[t].threshold == pytest.approx(want, rel=1e-12), t


def test_tail_probability_is_the_share_of_the_history_at_or_above_the_score():
    rule = Rule(threshold=0.0, adaptive_window=4, seed=(1.0, 2.0, 3.0, 4.0))
    d = Decider(rule)
    assert [d.tail_probability(s) for s in (0.5, 2.0, 2.5, 4.0, 9.0)] == [1, 0.8, 0.6, 0.4, 0.2]
    _, v = run(rule, [9.0, 9.0, 9.0])
    assert [x.p for x in v] == [0.2, 0.4, 0.6]  # each 9 joins the history after it is judged
    assert Decider(Rule(threshold=1.0)).tail_probability(5.0) is None  # no history, no p


def test_one_cut_off_on_p_flags_the_same_share_of_normal_windows_on_every_stream():
    """Streams whose scores differ in units and shape: the same cut-off on the raw score flags
    none of one and most of the other; on p both flag at most what was asked, nearly the same."""
    rng = np.random.default_rng(3)
    gauss = rng.lognormal(0, 0.2, 6000)
    heavy = 1e6 * rng.pareto(3.0, 6000)
    shares = []
    for scores in (gauss, heavy):
        rule = Rule(threshold=0.0, adaptive_window=2000, seed=tuple(scores[:2000].tolist()))
        _, v = run(rule, scores[2000:])
        p = np.array([x.p for x in v])
        shares.append([(p <= a).mean() for a in (0.01, 0.05)])
        assert (p > 0).all() and (p <= 1).all() and min(p) == pytest.approx(1 / 2001)
    for (g1, g5), (h1, h5) in [shares]:
        assert g1 <= 0.015 and h1 <= 0.015 and abs(g1 - h1) < 0.005
        assert 0.035 <= g5 <= 0.065 and 0.035 <= h5 <= 0.065
    assert (gauss > 2.0).mean() < 0.001 and (heavy > 2.0).mean() > 0.99  # one raw cut-off fails


def test_routine_spikes_raise_the_adaptive_threshold_but_a_new_level_opens_an_event():
    spiky = [1.0 if i % 10 else 8.0 for i in range(400)]  # a spike every 10 windows is routine
    _, fixed = run(Rule(threshold=2.0, resolve_after=1, within=1), spiky)
    assert sum(bool(x.opened) for x in fixed) == 40  # a fixed threshold opens one per spike
    rule = Rule(
        threshold=2.0, adaptive_window=200, adaptive_quantile=0.99, within=1, resolve_after=1
    )
    _, v = run(rule, [*spiky, *[30.0] * 5])
    opened = [i for i, x in enumerate(v) if x.opened]
    assert opened[-1] == 400  # the new level
    assert all(i < 200 for i in opened[:-1])  # spikes stop opening events once they are history


@pytest.mark.parametrize("delay", [0, 30])
def test_decisions_depend_only_on_the_bounded_history(delay):
    """Starting a decider anywhere and feeding it `history` windows first gives the same
    verdicts and events afterwards: what lets the daemon rebuild state after a restart."""
    rng = np.random.default_rng(1)
    scores = np.where(rng.random(600) < 0.05, 20.0, 1.0) * rng.lognormal(0, 0.2, 600)
    rule = Rule(
        threshold=1.5,
        adaptive_window=50,
        adaptive_delay=delay,
        open_after=2,
        within=4,
        resolve_after=5,
        seed=(1.0,) * 50,
    )
    assert rule.history == 50 + delay + 4 + 5
    _, full = run(rule, scores)
    for start in (37, 200, 401):
        d = Decider(rule, "s")
        part = [d.push(i, float(i), float(scores[i])) for i in range(start, 600)]
        for t in range(start + rule.history, 600):
            a, b = full[t], part[t - start]
            assert (a.threshold, a.above) == (b.threshold, b.above), t
            assert bool(a.opened) == bool(b.opened) and bool(a.resolved) == bool(b.resolved), t


def test_a_delayed_history_keeps_a_persistent_fault_above_the_threshold():
    """Without a delay the quantile learns a fault within ~1% of the history and the event
    resolves while the fault lasts; with one, the fault's windows wait D windows to be learned."""
    rng = np.random.default_rng(2)
    scores = rng.lognormal(0, 0.1, 700)
    scores[300:600] *= 5.0  # a fault lasting 300 windows
    common = {"threshold": 1.0, "adaptive_window": 500, "seed": tuple(rng.lognormal(0, 0.1, 500))}
    _, now = run(Rule(**common), scores)
    _, later = run(Rule(**common, adaptive_delay=400), scores)
    assert np.mean([v.above for v in now[300:600]]) < 0.2  # the threshold rose to mask it
    assert all(v.above for v in later[300:600])  # never learned while it lasted
    assert not any(v.above for v in later[620:])  # and none of its windows were learned after
    assert [v.threshold for v in later[:400]] == [later[0].threshold] * 400  # seed until D


def _verdicts(d: Decider, scores, start: int) -> list[tuple[float, bool, bool, bool]]:
    out = []
    for i in range(start, len(scores)):
        v = d.push(i, float(i), float(scores[i]))
        out.append((v.threshold, v.above, bool(v.opened), bool(v.resolved)))
    return out


@pytest.mark.parametrize("window, delay", [(60, 20), (60, 0), (40, 10), (30, 50)])
def test_a_new_threshold_adopted_keeps_the_history_a_restart_would_rebuild(window, delay):
    """A stream's model swapped for the same weights at another threshold (``set_threshold``):
    from the swap on, its decider judges every window as one given the new rule from the start
    (what a restart with the new model rebuilds from the same windows), for a history as long
    as the old rule's or shorter; an event open at the swap stays open."""
    rng = np.random.default_rng(5)
    scores = np.where(rng.random(500) < 0.04, 8.0, 1.0) * rng.lognormal(0, 0.2, 500)
    scores[240:262] = 40.0  # an event open at the swap (window 250)
    seed = tuple(rng.lognormal(0, 0.2, 40))
    old = Rule(threshold=1.2, adaptive_window=60, adaptive_delay=20, open_after=2, seed=seed)
    new = Rule(threshold=2.5, adaptive_window=window, adaptive_delay=delay, open_after=2, seed=seed)
    d = Decider(old, "s")
    before = [d.push(i, float(i), float(scores[i])) for i in range(250)]
    assert d.event is not None and any(v.opened for v in before)
    d.adopt(new, same_scores=True)
    assert d.event is not None  # still open: the last verdicts count on towards resolving it
    after = _verdicts(d, scores, 250)
    reference = Decider(new, "s")
    for i in range(250):
        reference.push(i, float(i), float(scores[i]))
    want = _verdicts(reference, scores, 250)
    assert [a[:2] for a in after] == [w[:2] for w in want]  # thresholds and verdicts
    assert after[-100:] == want[-100:]  # and, long after the swap, the events too
    assert min(a[0] for a in after) >= 2.5  # the new floor holds from the first window


def test_a_model_of_other_weights_adopted_starts_its_history_afresh():
    """Another model's scores are in other units: its decider forgets the old scores and starts
    from the new rule's calibration scores, as a new stream's does; the event open stays open."""
    rng = np.random.default_rng(6)
    scores = rng.lognormal(0, 0.2, 300) * 100.0  # the old model's units
    scores[100:130] = 900.0  # learned into the history: the old threshold rose to it
    common = {"adaptive_window": 50, "open_after": 1, "within": 1, "resolve_after": 2}
    old = Rule(threshold=150.0, seed=(100.0,) * 50, **common)
    new = Rule(threshold=1.5, seed=(1.0,) * 50, **common)
    d = Decider(old, "s")
    for i in range(140):
        d.push(i, float(i), float(scores[i]))
    d.push(140, 140.0, 5000.0)  # opens an event
    assert d.event is not None and d.current_threshold() > 900
    d.adopt(new, same_scores=False)
    assert d.current_threshold() == Decider(new, "s").current_threshold() == 1.5
    assert d.event is not None
    assert d.push(141, 141.0, 1.0).resolved is None  # the new model's units: below its line
    v = d.push(142, 142.0, 1.0)  # resolve_after (2) quiet windows after the last trigger
    assert v.resolved is not None and v.resolved.start_seq == 140


@pytest.mark.parametrize("swap", [120, 141, 150])  # before, at and after an event opens
def test_a_decider_resumed_at_a_swap_point_decides_as_the_one_that_went_on(swap):
    """The state a model of other weights leaves a stream's decider in, through JSON and back
    (what a restart resumes from, kept in the learned-models topic): every later verdict, the
    event open then (its figures so far) and the raised flag, as the decider that went on."""
    rng = np.random.default_rng(7)
    scores = rng.lognormal(0, 0.3, 400)
    scores[140:170] = 40.0 * rng.lognormal(0, 0.3, 30)  # an event across the later swaps
    scores[300:] *= 500.0  # a change that stays: the threshold rises past RAISED times
    common = {"adaptive_window": 50, "adaptive_delay": 5, "open_after": 2}
    old = Rule(threshold=2.0, seed=tuple(rng.lognormal(0, 0.3, 50)), **common)
    new = Rule(threshold=0.02, seed=tuple(rng.lognormal(0, 0.3, 50) / 100), **common)
    went_on = Decider(old, "s")
    for i in range(swap):
        went_on.push(i, 60.0 * i, float(scores[i]))
    went_on.adopt(new, same_scores=False)
    state = orjson.loads(orjson.dumps(went_on.state()))
    resumed = Decider.resumed(new, "s", state)
    assert (resumed.event is None) == (swap <= 141)  # 140 and 141 above open it at 141

    def judged(d: Decider) -> list:
        out = []
        for i in range(swap, len(scores)):
            v = d.push(i, 60.0 * i, float(scores[i]) / 100)  # the new model's units
            ev = v.opened or v.resolved
            out.append((v.threshold, v.above, v.p, v.raised, ev and ev.to_dict()))
        return out

    mine, want = judged(resumed), judged(went_on)
    assert mine == want
    assert any(ev and ev["resolved_seq"] for *_, ev in want)
    assert resumed.raised and went_on.raised  # the change that stays, in both


def test_event_ids_are_deterministic_and_distinct():
    assert event_id("v1", "s", 9, 60.0) == event_id("v1", "s", 9, 60.0)
    ids = {
        event_id("v1", "s", 9, 60.0),
        event_id("v2", "s", 9, 60.0),
        event_id("v1", "t", 9, 60.0),
        event_id("v1", "s", 8, 60.0),
        event_id("v1", "s", 9, 61.5),  # the same seq later: a stream counting from 0 again
    }
    assert len(ids) == 5


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"threshold": float("nan")}, "threshold must be finite"),
        ({"threshold": 1.0, "open_after": 3, "within": 2}, "open_after"),
        ({"threshold": 1.0, "adaptive_quantile": 1.0}, "adaptive_quantile"),
        ({"threshold": 1.0, "resolve_after": 0}, "resolve_after"),
        ({"threshold": 1.0, "adaptive_delay": -1}, "adaptive_delay"),
    ],
)
def test_bad_rules_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        Rule(**kw)


def test_a_short_seed_fills_the_whole_history_so_one_burst_cannot_move_the_quantile():
    seed = (1.0, 1.1, 0.9)
    rule = Rule(
        threshold=0.01, adaptive_window=300, adaptive_quantile=0.99, adaptive_margin=0.0, seed=seed
    )
    d = Decider(rule, "s")
    assert d.current_threshold() == pytest.approx(1.1)  # 99% quantile of 300 cycled seeds
    for i in range(2):  # a burst of two huge windows: 2 of 300 is below 1%
        d.push(i, float(i), 1000.0)
    assert d.current_threshold() == pytest.approx(1.1)


def test_event_messages_carry_iso_times_beside_epoch_seconds():
    class Det:  # what event_record reads of a detector
        name, version = "m", "v1"

    rule = Rule(threshold=1.0, within=1, resolve_after=2)
    d = Decider(rule, "s")
    opened = d.push(0, 1_700_000_000.25, 5.0).opened
    d.push(1, 1_700_000_060.0, 0.1)
    resolved = d.push(2, 1_700_000_120.0, 0.1).resolved
    doc = event_record(opened, Det(), "open")
    assert doc["start_time"] == "2023-11-14T22:13:20.250000Z" and "resolved_time" not in doc
    doc = event_record(resolved, Det(), "resolved")
    assert doc["resolved_time"] == "2023-11-14T22:15:20.000000Z"
    assert doc["end_time"] == doc["start_time"] and doc["resolved_ts"] == 1_700_000_120.0
    assert "min_p" not in doc  # a fixed threshold has no score history to rank against


def test_an_event_carries_its_rarest_window_tail_probability():
    det = SimpleNamespace(name="m", version="v1", meta=None)  # what event_record reads
    rule = Rule(threshold=0.0, adaptive_window=9, within=1, resolve_after=1, seed=(1.0,) * 9)
    _, v = run(rule, [1.0, 50.0, 60.0, 1.0])
    assert [x.p for x in v] == [1.0, 0.1, 0.1, 1.0]
    doc = event_record(v[3].resolved, det, "resolved")  # type: ignore[arg-type]
    assert doc["min_p"] == 0.1 and ", p 0.1  " in tail_line(orjson.dumps(doc))


def test_an_event_names_the_metrics_that_moved_as_it_opened():
    rule = Rule(threshold=1.0, open_after=1, within=1, resolve_after=2)
    d = Decider(rule, "pump")
    rows = [(0.5, [0.4, 0.5, 0.6]), (2.0, [0.1, 5.0, 0.9]), (3.0, [4.0, 0.2, 4.8]), (0, [0, 0, 0])]
    verdicts = [d.push(i, float(i), s, c) for i, (s, c) in enumerate(rows + rows[-1:])]
    opened, resolved = verdicts[1].opened, verdicts[4].resolved
    assert opened is resolved and resolved.opening_channels == [0.1, 5.0, 0.9]  # window 1's
    names = SimpleNamespace(metric_names=["flow", "pressure", "temperature"])
    det = SimpleNamespace(name="m", version="v1", meta=names)  # what event_record reads
    doc = event_record(resolved, det, "resolved")  # type: ignore[arg-type]
    assert "opening_channels" not in doc and doc["peak_score"] == 3.0
    assert doc["top_metrics"] == [
        {"metric": "pressure", "share": 0.833},  # 5.0 of 6.0
        {"metric": "temperature", "share": 0.15},
        {"metric": "flow", "share": 0.017},
    ]
    text = tail_line(orjson.dumps(doc))  # as aemon tail prints it
    assert "moved: pressure 83%, temperature 15%, flow 2%" in text
    one = Decider(rule, "single")
    one.push(0, 0.0, 3.0)
    assert "top_metrics" not in event_record(one.event, det, "open")  # type: ignore[arg-type]


def test_a_record_s_stream_is_its_key_else_its_json_stream():
    """What ``aemon tail --stream`` filters on: the key the daemon sets, else the payload's."""
    assert stream_of(b"pump-1", b"not json") == "pump-1"
    assert stream_of(None, b'{"stream": "pump-2", "seq": 1}') == "pump-2"
    assert stream_of(None, b"not json") is None and stream_of(None, b"[1]") is None


def test_a_streams_end_resolves_its_open_event_at_its_last_window():
    class Det:  # what event_record reads of a detector
        name, version = "m", "v1"

    rule = Rule(threshold=1.0, within=1, resolve_after=5)
    d = Decider(rule, "s")
    for i, score in enumerate([0.1, 5.0, 5.0, 0.1]):
        d.push(i, 1_700_000_000.0 + 60 * i, score)
    ev = d.end()
    assert ev is not None and d.event is None and d.end() is None  # ended once
    assert (ev.start_seq, ev.end_seq, ev.resolved_seq) == (1, 2, 3)
    doc = event_record(ev, Det(), "resolved", ended=True)
    assert doc["ended"] is True and doc["resolved_ts"] == 1_700_000_180.0
    assert "ended" not in event_record(ev, Det(), "resolved")
    assert "(its stream ended)" in tail_line(orjson.dumps(doc))
    quiet = Decider(rule, "q")
    quiet.push(0, 0.0, 0.1)
    assert quiet.end() is None  # nothing open: nothing to resolve


def test_an_event_keeps_the_id_of_the_model_that_opened_it_when_another_resolves_it():
    """A model swapped in while an event is open (SIGHUP, a changed detector.json) resolves it
    under the id its open message had, so that downstream (aemon notify) matches the two."""
    rule = Rule(threshold=1.0, within=1, resolve_after=1)
    d = Decider(rule, "s")
    ev = d.push(0, 60.0, 5.0).opened
    assert ev is not None
    ev.opened_by = "v1"  # as the daemon notes it at the opening
    opened = event_record(ev, SimpleNamespace(name="m", version="v1", meta=None), "open")  # type: ignore[arg-type]
    resolved = d.push(1, 120.0, 0.1).resolved
    assert resolved is ev
    doc = event_record(ev, SimpleNamespace(name="m", version="v2", meta=None), "resolved")  # type: ignore[arg-type]
    assert doc["event_id"] == opened["event_id"] == event_id("v1", "s", 0, 60.0)
    assert doc["model_version"] == "v2" and "opened_by" not in doc
