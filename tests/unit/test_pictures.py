"""Timeline pictures: a value axis that a spike cannot flatten, and titles in English."""

import numpy as np

from aemon.training.report import events_title, symlog_range


def test_a_spike_far_outside_the_bulk_turns_the_value_axis_symlog():
    rng = np.random.default_rng(0)
    bulk = 2e5 + 5e4 * rng.random(3000)  # ec2_network_in_257a54: a bulk near 2e5 ...
    spiked = bulk.copy()
    spiked[1500] = 2.5e8  # ... and 2.5e8 at the incident
    assert symlog_range(bulk) is None  # plain data keeps its linear axis
    linear = symlog_range(spiked)
    assert linear is not None and 4e4 < linear < 5e4  # linear within the 5-95% range
    assert symlog_range(np.full(10, 3.0)) is None and symlog_range(np.array([])) is None
    assert symlog_range(1e6 + rng.random(100)) is None  # a high level is not a spike


def test_titles_count_events_in_english():
    assert events_title("s", 1, "v") == "s: 1 event (model version v)"
    assert events_title("s", 0, "v") == "s: 0 events (model version v)"
