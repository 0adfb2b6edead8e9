"""``KIND:NUMBER`` option values, as ``--threshold`` and ``--denoise`` take them."""

from __future__ import annotations


def split_spec(spec: str, kinds: tuple[str, ...], usage: str, number: str) -> tuple[str, float]:
    """``"quantile:0.99"`` -> ``("quantile", 0.99)``, the kind one of ``kinds``.

    Errors read ``"{usage} {kinds}"`` and ``"{number} 'x' is not a number"``.
    """
    kind, _, raw = spec.partition(":")
    if kind not in kinds or not raw:
        raise ValueError(f"{usage} {', '.join(kinds)}")
    try:
        return kind, float(raw)
    except ValueError:
        raise ValueError(f"{number} {raw!r} is not a number") from None
