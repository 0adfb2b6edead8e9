"""The daemon's log: text or JSON lines, aiokafka's routine INFO lines at DEBUG, and its repeated
complaints folded into one line per kind every ``every`` seconds (a broker outage made it write
about 85 ERROR lines a second)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO


class Fold(logging.Filter):
    """Pass an aiokafka record of a given logger and message template at most once per
    ``every`` seconds; the next one that passes says how many were folded into it."""

    def __init__(self, every: float = 30.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Unable connect"):
            # aemon's own lines say what it means (waiting for the broker, unreachable, not
            # ready): aiokafka's connection refusals are warnings beside them.
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            if logging.getLogger().getEffectiveLevel() > logging.WARNING:
                return False
        if record.levelno == logging.INFO:
            # routine (group joined, partitions assigned, coordinator found): aemon's own lines
            # say what matters, so these are debug lines
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().getEffectiveLevel() <= logging.DEBUG
        key = (record.name, record.msg)
        now = time.monotonic()
        last, folded = self._last.get(key, (float("-inf"), 0))
        if now - last < self.every:
            self._last[key] = (last, folded + 1)
            return False
        self._last[key] = (now, 0)
        if folded:
            record.msg = f"{record.msg} ({folded} more like it in {self.every:.0f} s)"
        return True


class Throttled:
    """A warning written at most once every ``every`` seconds (the rest are dropped: the next
    one that passes carries the current state)."""

    def __init__(self, log: logging.Logger, every: float = 10.0) -> None:
        self.log, self.every = log, every
        self._last = float("-inf")

    def warning(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log.warning("%s", text)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class Stderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when it writes, not the one it was made with
    (replaced since: by whoever embeds the daemon, or by pytest's capture per test, where the
    old one is closed and the lines would be lost)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def configure(level: str, fmt: str) -> None:
    """Root logging for ``aemon serve``: ``fmt`` 'text' or 'json'; aiokafka folded."""
    handler = Stderr()
    handler.setFormatter(
        JsonLines()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(Fold())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
