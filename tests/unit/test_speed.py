import numpy as np

from training import speed


def test_training_speed_comparison_reports_both_loops_in_one_run():
    x = np.random.default_rng(0).random((1024, 28, 28), dtype=np.float32)
    doc = speed.compare(x)
    assert doc["images"] == 1024
    for key in ("seed_style_batch64_s", "aemon_batch64_s", "aemon_batch256_s"):
        assert doc[key] > 0
    recomputed = doc["seed_style_batch64_s"] / doc["aemon_batch256_s"]
    assert abs(doc["ratio_batch256"] - recomputed) <= 0.005 * recomputed + 0.005
