"""How aemon's messages say a count: ``counted(3, "model")`` is "3 models", 1 is "1 model"."""


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
