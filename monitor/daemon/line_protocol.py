"""InfluxDB line protocol, one line a message, as Telegraf's Kafka output writes it by default
(``data_format = "influx"``): ``cpu,host=web-1,cpu=cpu-total usage_user=1.5,usage_idle=98i
1700000060000000000``.

A line is a measurement with its tags, its fields and an optional timestamp in nanoseconds,
separated by spaces; commas separate tags and fields; a backslash escapes a comma, space or
equals sign in names and tag values; a string field is in double quotes (``\\"`` and ``\\\\``
escaped inside). Field values: floats, integers (``1i``), unsigned integers (``1u``), booleans
and strings.
"""

from __future__ import annotations

from typing import NamedTuple

BOOLEANS = frozenset({"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})
INT64 = range(-(2**63), 2**63)  # timestamps and `i` integers; `u` integers are below 2^64


class Line(NamedTuple):
    measurement: str
    tags: dict[str, str]
    numbers: dict[str, float]  # the fields that are numbers, in the line's order
    ns: int | None  # the timestamp, nanoseconds since the epoch


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at each ``sep`` that is neither escaped nor inside a quoted string;
    escapes are kept (:func:`_unescape` removes them)."""
    parts, start, quoted, i = [], 0, False, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ValueError("a string field is not closed")
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def _pair(text: str, what: str) -> tuple[str, str]:
    pair = _split(text, "=")
    if len(pair) < 2 or not pair[0]:
        raise ValueError(f"{what} {text[:40]!r} is not KEY=VALUE")
    return _unescape(pair[0]), "=".join(pair[1:])


def _number(raw: str) -> float | None:
    """A field's value as a number; None for a string or boolean (no metric)."""
    if raw.startswith('"') or raw in BOOLEANS:
        return None
    if raw[-1:] in ("i", "u"):
        number = int(raw[:-1])
        if number not in (INT64 if raw[-1] == "i" else range(2**64)):
            raise ValueError(f"{raw[:40]!r} is out of range")
        return float(number)
    return float(raw)


def parse_line(text: str) -> Line:
    """One line of line protocol (a trailing newline allowed); ValueError says what is wrong."""
    text = text.removesuffix("\n").removesuffix("\r")
    if "\n" in text:
        raise ValueError("several lines in one message: send one metric a message")
    sections = _split(text, " ")
    if len(sections) not in (2, 3) or not all(sections):
        raise ValueError("not MEASUREMENT[,TAGS] FIELDS [TIMESTAMP]")
    key, *tags = _split(sections[0], ",")
    measurement = _unescape(key)
    if not measurement:
        raise ValueError("no measurement")
    numbers: dict[str, float] = {}
    for field in _split(sections[1], ","):
        name, raw = _pair(field, "field")
        try:
            value = _number(raw)
        except ValueError:
            raise ValueError(f"field {name!r}: {raw[:40]!r} is no value") from None
        if value is not None:
            numbers[name] = value
    try:
        ns = int(sections[2]) if len(sections) == 3 else None
    except ValueError:
        raise ValueError(f"timestamp {sections[2][:40]!r} is not an integer") from None
    if ns is not None and ns not in INT64:
        raise ValueError(f"timestamp {sections[2][:40]!r} is beyond 64 bits of nanoseconds")
    pairs = (_pair(t, "tag") for t in tags)
    return Line(measurement, {k: _unescape(v) for k, v in pairs}, numbers, ns)
