import logging

from aemon.daemon.refusals import RefusalLog


def test_refusals_are_summarised_at_most_once_per_interval(caplog):
    now = [0.0]
    log = RefusalLog(every=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="aemon.serve"):
        log.note("wrong_length", "wrong_length: 2 values", "t/0@5")  # first: written at once
        for i in range(500):
            now[0] = 1 + i / 100
            log.note("wrong_length" if i % 5 else "no_model", "x", f"t/0@{i}")
        assert len(caplog.records) == 1
        now[0] = 12.0
        log.flush_if_due()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("dead-lettered 1 messages (wrong_length 1)")
    assert lines[1].startswith("dead-lettered 500 messages (wrong_length 400, no_model 100)")
    assert lines[1].endswith("latest: x (t/0@499)")
