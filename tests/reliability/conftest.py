"""The reliability suite (``make reliability``): the daemon as real processes against the real
embedded broker, broken on purpose. Each scenario adds a row of figures; the table is printed at
the end of the run and written to ``runs/reliability.md``."""

from __future__ import annotations

from pathlib import Path

import pytest

ROWS: list[tuple[str, dict[str, object]]] = []
TABLE = Path("runs/reliability.md")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in item.nodeid and "soak" not in item.keywords:
            item.add_marker(pytest.mark.reliability)


class Table:
    def row(self, scenario: str, **figures: object) -> None:
        ROWS.append((scenario, figures))


@pytest.fixture(scope="session")
def table() -> Table:
    return Table()


def render() -> str:
    lines = ["| scenario | figures |", "| --- | --- |"]
    for scenario, figures in ROWS:
        text = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures.items())
        lines.append(f"| {scenario} | {text} |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter) -> None:
    if not ROWS:
        return
    text = render()
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(text)
    terminalreporter.write_sep("=", "reliability")
    terminalreporter.write(text)
    terminalreporter.write_line(f"(written to {TABLE})")
