import numpy as np
import torch

from aemon.training import speed


def test_per_sample_images_convert_as_to_tensor_does():
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    item = speed.PerSampleImages(pixels)[1]
    assert item.shape == (1, 28, 28) and item.dtype == torch.float32
    np.testing.assert_allclose(item[0].numpy(), pixels[1] / 255.0, rtol=1e-6)


def test_training_speed_comparison_reports_every_loop_in_one_run():
    x = np.random.default_rng(0).random((1024, 28, 28), dtype=np.float32)
    doc = speed.compare(x, rounds=1)
    assert doc["images"] == 1024
    for b in speed.AEMON_BATCHES:
        assert doc[f"aemon_batch{b}_s"] > 0
        for base, key in (("seed_style", ""), ("tensor_dataset", "_vs_tensor_dataset")):
            theirs, ours = doc[f"{base}_batch64_s"], doc[f"aemon_batch{b}_s"]
            recomputed = theirs / ours
            # the ratio is rounded to 0.01, each time to 1e-4 s (on a fast machine a few ms: a
            # relative error of a few parts in a thousand each)
            slack = 0.005 + recomputed * (5e-5 / theirs + 5e-5 / ours) * 1.01
            assert abs(doc[f"ratio_batch{b}{key}"] - recomputed) <= slack
