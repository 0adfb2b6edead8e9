"""The series preset's model grows with the values per window; what a user gives wins."""

import numpy as np
import pytest

from aemon.core.errors import ConfigError
from aemon.training.presets import SERIES_PRESETS

DENSE = SERIES_PRESETS["dense"]


@pytest.mark.parametrize(
    ("size", "widths", "latent"),
    [
        (8, [32], 4),  # one metric, 8 samples: the preset as chosen on NAB
        (64, [32], 4),  # SKAB's 8 sensors
        (152, [76], 9),  # ASD's 19 metrics
        (304, [152], 19),  # 38 metrics
    ],
)
def test_the_model_grows_with_the_values_per_window(size, widths, latent):
    hp = DENSE.customise(size).hparams
    assert (hp["widths"], hp["latent"]) == (widths, latent)


def test_what_the_user_gives_wins_and_is_still_checked():
    hp = DENSE.customise(152, latent=5).hparams
    assert (hp["widths"], hp["latent"], hp["activation"]) == ([76], 5, "relu")
    assert DENSE.customise(152, widths=[16, 8]).hparams["widths"] == [16, 8]
    with pytest.raises(ConfigError, match="latent 152 must be smaller"):
        DENSE.customise(152, latent=152)
    assert SERIES_PRESETS["vae"].customise(152).hparams == SERIES_PRESETS["vae"].hparams
    conv = SERIES_PRESETS["conv1d"].customise(152).hparams  # its bottleneck grows as the dense one
    assert (conv["widths"], conv["latent"]) == ([76, 32], 9)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"latent": True}, "latent must be a whole number >= 1, got True"),
        ({"latent": 2.5}, "latent must be a whole number >= 1, got 2.5"),
        ({"members": False}, "members must be a whole number >= 1, got False"),
        ({"widths": [16, True]}, r"widths must all be whole numbers >= 1, got \[16, True\]"),
    ],
)
def test_booleans_are_no_sizes(setting, message):
    """Python counts True as 1: a flag's value in the wrong place must not become a layer."""
    with pytest.raises(ConfigError, match=message):
        DENSE.customise(152, **setting)
    assert DENSE.customise(152, latent=np.int64(5)).hparams["latent"] == 5
