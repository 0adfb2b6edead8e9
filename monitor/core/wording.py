"""How aemon's messages say a count (``counted(3, "model")`` is "3 models", 1 is "1 model"), a
list that may be long (``listed(names)``: the first few and how many more) and what several
models have in common (``alike``)."""


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def listed(items: list[str], most: int = 6, sep: str = ", ") -> str:
    """``items`` joined by ``sep``; of more than ``most``, the first ``most`` and how many more
    (a machine of 38 metrics, a daemon of 1,000 models: one line, not a page)."""
    shown = sep.join(items[:most])
    return shown if len(items) <= most else f"{shown}{sep}and {len(items) - most} more"


def alike(values: list[str]) -> str:
    """The value when all of ``values`` are one, else each distinct one in order ("by model:
    a; b"): what a directory of models has in common, or how its models differ."""
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else "by model: " + "; ".join(distinct)
