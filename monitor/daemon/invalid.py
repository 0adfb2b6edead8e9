"""Why an input message is refused: its ``reason`` (a label of the invalid-message counter and
a dead letter's header) and a line of detail; and what a value must be."""

from __future__ import annotations

# Every reason a message can be refused for; the invalid-message counter is labelled with these.
REASONS = (
    "too_large",
    "not_json",
    "not_object",
    "bad_stream",
    "bad_seq",
    "bad_ts",
    "missing_values",
    "bad_values",
    "wrong_length",
    "non_finite",
    "bad_f32",
    "unknown_content_type",
    "late_sample",
    "no_model",
    "bad_end",
)


NUMBER_TYPES = {float, int}  # a JSON number's exact types: bool, a subclass of int, is refused


class Invalid(Exception):
    """A message we refuse; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
