"""Event-level metrics and the NAB score, against values worked out by hand from NAB's rules."""

import math

import numpy as np
import pytest

from aemon.training.incidents import nab_raw, pointwise, runs, stream_result, summarise, tail_shares


def sig(x):
    return 1 / (1 + math.exp(-x))


MAX_TP = 2 * sig(5.0) - 1  # NAB's scaledSigmoid(-1)


def test_runs_of_labelled_samples_are_incidents():
    assert runs(np.array([0, 1, 1, 0, 0, 1, 0, 1])) == [(1, 2), (5, 5), (7, 7)]
    assert runs(np.zeros(4)) == []


@pytest.mark.parametrize(
    "detections, raw",
    [
        ([], -1.0),  # a missed incident costs 1
        ([10], 1.0),  # the first row of the window earns the full reward
        ([19], (2 * sig(0.5) - 1) / MAX_TP),  # its last row: scaledSigmoid(-1/10)
        ([12, 19], (2 * sig(4.0) - 1) / MAX_TP),  # only the earliest counts: -(19-12+1)/10
        ([3], -1.0 - 0.11),  # a false alarm before any incident costs 0.11
        ([10, 20], 1.0 + 0.11 * (2 * sig(-5 / 9) - 1)),  # right after one: almost free
    ],
)
def test_nab_raw_score_by_hand(detections, raw):
    assert nab_raw([(10, 19)], detections) == pytest.approx(raw, rel=1e-12)


def test_event_metrics_delay_false_alarms_and_normalised_score():
    ts = np.arange(0, 86400 * 2, 3600.0)  # two days, hourly
    label = np.zeros(len(ts), dtype=np.int8)
    label[10:20] = 1
    label[30:35] = 1
    r = stream_result(ts, label, [12, 40])  # the first incident at +2 h, a false alarm
    assert (r.incidents, r.detected, r.events, r.true_events) == (2, 1, 2, 1)
    assert r.delays == [7200.0]
    doc = summarise([r])
    assert doc["event_precision"] == 0.5 and doc["event_recall"] == 0.5
    assert doc["false_alarms_per_day"] == pytest.approx(1 / (47 / 24))
    assert doc["nab_score"] == pytest.approx(100 * (r.raw - r.null) / (r.perfect - r.null))
    assert 0 < doc["nab_score"] < 50


def test_pointwise_figures_pool_counts_over_streams():
    day = np.arange(0, 86400, 3600.0)  # 24 hourly samples
    y1 = np.zeros(24, dtype=np.int8)
    y1[5:10] = 1
    f1 = np.zeros(24, dtype=np.int8)
    f1[7:12] = 1  # 3 hits, 2 misses, 2 false (one run, touching the segment)
    f1[20] = 1  # a false alarm run
    s1 = np.where(y1 == 1, 2.0, 0.0) + np.linspace(0, 0.1, 24)
    y2 = np.zeros(24, dtype=np.int8)  # no anomaly: no average precision of its own
    f2 = np.zeros(24, dtype=np.int8)
    f2[0] = 1
    out = pointwise([(day, y1, f1, s1), (day, y2, f2, np.full(24, np.nan))])
    tp, fp, fn, tn = 3, 4, 2, 48 - 9
    assert out["precision"] == tp / (tp + fp)
    assert out["recall"] == tp / (tp + fn)
    assert out["f1"] == 2 * tp / (2 * tp + fp + fn)
    assert out["far_percent"] == 100 * fp / (fp + tn)
    assert out["mar_percent"] == 100 * fn / (fn + tp)
    assert out["segments"] == 1 and out["segment_recall"] == 1.0
    assert out["false_alarms_per_day"] == pytest.approx(2 / (2 * 23 / 24))
    assert out["pr_auc"] == pytest.approx(1.0)  # the scores rank every anomaly first


def test_tail_shares_compare_one_cut_off_on_p_with_one_on_raw_scores():
    rng = np.random.default_rng(0)
    n = 1000
    p = (np.arange(n) + 1) / n  # each stream: p spread evenly over (0, 1]
    quiet = (np.zeros(n), rng.permutation(p) * 1e-3, rng.permutation(p))
    loud = (np.zeros(n), rng.permutation(p) * 1e3, rng.permutation(p))
    labels = np.r_[np.zeros(70), np.ones(50)]  # labelled windows are left out: 70 remain
    short = (labels, np.ones(120), np.full(120, 1e-4))  # too few to judge a share by
    got = tail_shares([quiet, loud, short], cut=0.01)
    assert got["streams"] == 2 and got["pooled"] == 0.01
    assert got["streams_p10"] == got["streams_p90"] == 0.01 and got["streams_none"] == 0
    assert got["raw_streams_none"] == 1 and got["raw_streams_p90"] > 0.015  # the loud one only
