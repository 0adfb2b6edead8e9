"""Named training recipes: the model, how to fit it and how to set its threshold."""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass, replace
from typing import Any


def _whole(value: object) -> bool:
    """A whole number >= 1 (numpy integers too; not a bool, which Python counts as one)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


@dataclass
class FitConfig:
    """How to train. ``patience`` epochs without a better validation loss stop the run."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    loss: str = "l1"
    weight_decay: float = 0.0
    cosine: bool = False
    patience: int | None = None
    seed: int = 0
    amp: bool = True

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not _whole(value):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
            setattr(self, name, int(value))  # numpy integers too, stored as plain ints
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        self.lr = float(lr)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"seed must be a whole number, got {self.seed!r}")
        self.seed = int(self.seed)


@dataclass(frozen=True)
class Recipe:
    """Everything about a run except the data.

    ``calibration_fraction`` of the normal training rows is held out of fitting and used for the
    threshold (and the validation curve); 0 calibrates on the fitted rows, as the tutorial does.
    """

    family: str
    hparams: dict[str, object]
    fit: FitConfig
    normaliser: str = "none"
    threshold: str = "mad:3"
    calibration_fraction: float = 0.2
    score: str = "mae"
    denoise: str = ""  # an aemon.training.noise spec: noisy inputs, clean targets
    notes: str = ""
    grows: bool = False  # widths and latent grow with the values per window (see ``sized``)

    def sized(self, size: int) -> dict[str, object]:
        """The architecture for windows of ``size`` values when the recipe ``grows``: the first
        hidden layer at least half the values, the latent at least a sixteenth, so that a
        window of many metrics is not squeezed through the bottleneck sized for one metric
        (8 values keep 32 and 4)."""
        widths = [int(w) for w in self.hparams["widths"]]  # type: ignore[attr-defined]
        latent = int(self.hparams["latent"])  # type: ignore[call-overload]
        first = max(widths[0], size // 2) if widths else None
        return {
            "widths": [first, *widths[1:]] if first else [],
            "latent": max(latent, size // 16),
        }

    def customise(self, size: int, flag: str = "", **changes: object) -> Recipe:
        """This recipe with the settings a user gave (None: the recipe's own), each checked:
        the one place the CLI's flags and :func:`aemon.fit`'s keywords are validated beyond
        their types. ``widths``, ``latent``, ``activation`` and ``members`` go into the model's
        hyper-parameters. Errors name each setting as ``{flag}{name}`` (``--latent`` on the
        command line); ``size`` is the number of values per window, which the latent dimension
        must stay below."""
        from aemon.core.errors import ConfigError
        from aemon.core.families import FAMILIES
        from aemon.core.specs import parse_denoise, parse_threshold

        for key, parse in (("threshold", parse_threshold), ("denoise", parse_denoise)):
            spec = changes.get(key)
            if spec is not None:
                try:
                    parse(str(spec))
                except ValueError as exc:
                    raise ConfigError(f"{flag}{key}: {exc}") from None
        arch = {k: changes.pop(k, None) for k in ("widths", "latent", "activation", "members")}
        arch = {k: v for k, v in arch.items() if v is not None}
        if self.grows:  # what the user gave wins
            arch = {**self.sized(size), **arch}
        accepted = inspect.signature(FAMILIES[self.family]).parameters
        for key in arch:
            if key not in accepted:
                raise ConfigError(f"{flag}{key} does not apply to the {self.family} family")
        for key in ("latent", "members"):
            if arch.get(key) is not None:
                if not _whole(arch[key]):
                    raise ConfigError(f"{flag}{key} must be a whole number >= 1, got {arch[key]!r}")
                arch[key] = int(arch[key])  # numpy integers too: the artifact holds plain JSON
        latent = arch.get("latent")
        if latent is not None and latent >= size:
            raise ConfigError(
                f"{flag}latent {latent} must be smaller than the input ({size} values), or "
                "the model can copy its input and no window looks anomalous"
            )
        widths: Any = arch.get("widths")
        if widths is not None:
            if not all(_whole(w) for w in widths):
                raise ConfigError(f"{flag}widths must all be whole numbers >= 1, got {widths!r}")
            arch["widths"] = [int(w) for w in widths]
        try:
            return self.with_overrides(hparams={**self.hparams, **arch}, **changes)
        except ValueError as exc:  # FitConfig's checks, which name the setting first
            raise ConfigError(f"{flag}{exc}") from None

    def with_overrides(self, **changes: object) -> Recipe:
        fit_keys = {k: v for k, v in changes.items() if k in FitConfig.__dataclass_fields__}
        own = {k: v for k, v in changes.items() if k not in fit_keys and v is not None}
        fit = replace(self.fit, **{k: v for k, v in fit_keys.items() if v is not None})
        return replace(self, fit=fit, **own)


ECG_PRESETS: dict[str, Recipe] = {
    # The TensorFlow "Intro to Autoencoders" ECG detector, exactly.
    "tutorial": Recipe(
        family="dense",
        hparams={"widths": [32, 16], "latent": 8, "activation": "relu", "output": "sigmoid"},
        fit=FitConfig(epochs=20, batch_size=512, lr=1e-3, loss="l1"),
        normaliser="minmax",
        threshold="mean-std:1",
        calibration_fraction=0.0,
        notes="TensorFlow tutorial: 140-32-16-8 / 16-32-140 sigmoid, MAE, 20 epochs, batch 512",
    ),
    # Chosen by measurement on validation data carved from the training rows (README, "ECG").
    "default": Recipe(
        family="dense",
        hparams={"widths": [64, 32], "latent": 16, "activation": "relu", "output": "linear"},
        fit=FitConfig(epochs=200, batch_size=128, lr=3e-3, loss="l1", cosine=True),
        normaliser="none",
        threshold="mad:3.5",
        calibration_fraction=0.2,
        notes="wider dense AE on the UCR z-normalised beats; robust threshold on held-out normals",
    ),
}

_WINDOW_FIT = FitConfig(epochs=100, batch_size=128, lr=3e-3, loss="l1", cosine=True, patience=20)

# ``aemon train windows --model NAME``: one recipe per family, z-scored windows, robust threshold.
WINDOW_PRESETS: dict[str, Recipe] = {
    "dense": Recipe(
        "dense",
        {"widths": [64, 32], "latent": 16, "activation": "relu", "output": "linear"},
        _WINDOW_FIT,
        normaliser="zscore",
    ),
    "conv1d": Recipe(
        "conv1d", {"widths": [16, 32], "kernel": 5, "latent": 8}, _WINDOW_FIT, normaliser="zscore"
    ),
    "vae": Recipe(
        "vae",
        {"widths": [64, 32], "latent": 8, "activation": "relu", "output": "linear"},
        replace(_WINDOW_FIT, loss="l2"),
        normaliser="zscore",
        score="elbo",
    ),
    "aae": Recipe(
        "aae",
        {"widths": [64, 32], "latent": 8, "activation": "relu", "output": "linear"},
        _WINDOW_FIT,
        normaliser="zscore",
    ),
}

_IMAGE_FIT = FitConfig(epochs=10, batch_size=32, lr=1e-3, loss="l2", cosine=True)
# Epochs by data set where the recipe's are too few: 10 epochs of the 1,437 8x8 digits left the
# dense AE blurry (test MSE 0.029) and VAE samples one blob; 150 give 0.0027 and digit-like
# samples in 8 s (dense) and 20 s (VAE) on 2 CPU cores. MNIST-sized sets keep the recipe's 10.
IMAGE_EPOCHS = {"digits": 150}
_IMAGE = {"normaliser": "none", "score": "mse", "calibration_fraction": 0.1}

# ``aemon train image --model NAME``: pixels in [0, 1], sigmoid outputs, MSE as in the tutorial.
IMAGE_PRESETS: dict[str, Recipe] = {
    "dense": Recipe(
        "dense",
        {"widths": [], "latent": 64, "activation": "relu", "output": "sigmoid", "init": "glorot"},
        _IMAGE_FIT,
        **_IMAGE,
    ),
    "conv2d": Recipe(
        "conv2d",
        {"widths": [16, 8], "kernel": 3, "output": "sigmoid", "init": "glorot"},
        _IMAGE_FIT,
        **_IMAGE,
    ),
    "vae": Recipe(
        "vae",
        {"widths": [256], "latent": 16, "activation": "relu", "output": "sigmoid", "recon": "bce"},
        _IMAGE_FIT,
        **_IMAGE,
    ),
    "aae": Recipe(
        "aae",
        {"widths": [256], "latent": 16, "activation": "relu", "output": "sigmoid"},
        _IMAGE_FIT,
        **_IMAGE,
    ),
}


# ``aemon train series``: short windows of one telemetry stream, robust scaling fitted on the
# stream's own history, a threshold at the expected largest calibration score of a robust
# log-normal fit (never below the largest score itself, see aemon.training.series); three
# autoencoders side by side, a window's error their mean, so that retraining with another seed
# moves the scores less. Chosen on NAB's development files (README, "Telemetry").
_SERIES_FIT = FitConfig(epochs=60, batch_size=64, lr=3e-3, loss="l1")
_SERIES = {"normaliser": "robust", "threshold": "fitted-max:1", "calibration_fraction": 0.3}
SERIES_PRESETS: dict[str, Recipe] = {
    "dense": Recipe(
        "dense",
        {"widths": [32], "latent": 4, "activation": "relu", "output": "linear", "members": 3},
        _SERIES_FIT,
        **_SERIES,
        grows=True,
    ),
    "conv1d": Recipe(
        "conv1d",
        {"widths": [16, 32], "kernel": 3, "latent": 4},
        _SERIES_FIT,
        **_SERIES,
        grows=True,
    ),
    "vae": Recipe(
        "vae",
        {"widths": [32], "latent": 4, "activation": "relu", "output": "linear"},
        replace(_SERIES_FIT, loss="l2"),
        score="elbo",
        **_SERIES,
    ),
    "aae": Recipe(
        "aae",
        {"widths": [32], "latent": 4, "activation": "relu", "output": "linear"},
        _SERIES_FIT,
        **_SERIES,
    ),
}
