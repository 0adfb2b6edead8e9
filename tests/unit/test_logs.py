"""The daemon's log: aiokafka's repeats folded, JSON lines, the summary line."""

from __future__ import annotations

import io
import json
import logging
import sys

from aemon.daemon.logs import Fold, JsonLines, Stderr
from aemon.daemon.metrics import Metrics
from aemon.daemon.summary import Summary


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_aiokafka_repeats_are_folded_into_one_line_per_kind():
    fold = Fold(every=30)
    lines = [record("aiokafka", "Unable connect to node %s", i) for i in range(100)]
    passed = [r for r in lines if fold.filter(r)]
    assert len(passed) == 1  # within 30 s: one line
    other = record("aiokafka", "Unable to update metadata from %s", 1)
    assert fold.filter(other)  # another kind passes
    assert all(fold.filter(record("aemon.serve", "ours")) for _ in range(5))  # ours never folded
    fold.every = 0  # the period has passed: the next line says how many were folded
    late = record("aiokafka", "Unable connect to node %s", 7)
    assert fold.filter(late) and "(99 more like it" in late.getMessage()


def test_aiokafka_routine_info_lines_are_debug_lines():
    root = logging.getLogger()
    before = root.level
    try:
        root.setLevel(logging.INFO)
        joined = logging.LogRecord("aiokafka.consumer.group_coordinator", logging.INFO, "", 1,
                                   "Joined group %s", ("g",), None)  # fmt: skip
        assert not Fold().filter(joined)  # hidden at INFO (10 of the first 12 lines were these)
        root.setLevel(logging.DEBUG)
        assert Fold().filter(joined) and joined.levelname == "DEBUG"
        assert Fold().filter(record("aemon.serve", "ours"))  # aemon's own INFO lines stay
    finally:
        root.setLevel(before)


def test_aiokafka_connection_refusals_are_warnings_and_silent_at_error_level():
    root = logging.getLogger()
    before = root.level
    try:
        root.setLevel(logging.INFO)
        r = record("aiokafka.conn", "Unable connect to %s", "127.0.0.1:1")
        assert Fold().filter(r) and r.levelname == "WARNING" and r.levelno == logging.WARNING
        root.setLevel(logging.ERROR)  # aemon serve --log-level ERROR: aemon's own line says it
        assert not Fold().filter(record("aiokafka.conn", "Unable connect to %s", "x"))
        assert Fold().filter(record("aiokafka.conn", "Unexpected error %s", "x"))  # others stay
    finally:
        root.setLevel(before)


def test_json_lines_carry_the_message_and_the_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        r = logging.LogRecord(
            "aemon.serve", logging.ERROR, __file__, 1, "stage %s", ("x",), sys.exc_info()
        )
    doc = json.loads(JsonLines().format(r))
    assert doc["message"] == "stage x" and doc["level"] == "ERROR"
    assert "RuntimeError: boom" in doc["traceback"]


def test_the_summary_line_reports_the_interval():
    m = Metrics()
    now = [0.0]
    summary = Summary(m, 60, clock=lambda: now[0])
    m.windows_scored.inc(1200)
    m.anomalies.inc(3)
    m.invalid.labels("wrong_length").inc(5)
    m.consumer_lag.labels("in", "0").set(42)
    now[0] = 60.0

    class Det:
        name, version = "ecg5000", "abc"

    line = summary.line([Det()])  # type: ignore[list-item]
    assert line.startswith("last 60 s: 20.0 windows/s, 1200 decided, 3 anomalous, 0 alerts")
    assert "dead letters: wrong_length 5" in line and "lag 42" in line and "ecg5000 abc" in line
    assert "jumps" not in line  # only when a sample stream's seq jumped
    m.sample_gaps.inc(7)
    now[0] = 120.0
    line = summary.line([Det()])  # type: ignore[list-item]
    assert "0.0 windows/s" in line and "dead letters: none; 7 jumps in sample streams' seq;" in line
    m.off_step_streams.inc(2)
    now[0] = 180.0
    line = summary.line([Det()])  # type: ignore[list-item]
    assert "dead letters: none; 2 streams found at another step than their model's; lag" in line


def test_the_log_goes_to_the_stderr_of_the_moment(monkeypatch):
    """Where ``sys.stderr`` is replaced after set-up (and the first one closed, as pytest's
    capture does per test), the daemon's lines go to the new one, not lost."""
    first, later = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    handler = Stderr()
    first.close()
    monkeypatch.setattr(sys, "stderr", later)
    handler.handle(logging.LogRecord("aemon.serve", logging.INFO, "", 1, "still here", (), None))
    assert later.getvalue() == "still here\n"
