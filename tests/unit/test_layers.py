"""The import rule (README, "Architecture"): the core imports only itself; training and the
daemon import the core and never each other; the API sits on those three; the tools on the
API; the CLI on everything. And no module-level import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
TREES = {"aemon": ROOT / "monitor", "aemon.training": ROOT / "training"}

ALLOWED = {
    "core": {"core"},
    "daemon": {"core", "daemon"},
    "training": {"core", "training"},
    "api": {"core", "daemon", "training", "api"},
    "tools": {"core", "daemon", "training", "api", "tools"},
    "cli": {"core", "daemon", "training", "api", "tools", "cli"},
}


def modules() -> dict[str, Path]:
    out = {}
    for package, tree in TREES.items():
        for path in tree.rglob("*.py"):
            parts = list(path.relative_to(tree).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "aemon" and parts[:1] == ["training"]:
                continue
            out[name] = path
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["aemon", "training"]:
        return "training"
    if len(parts) > 1 and parts[1] in ("core", "daemon", "cli", "tools"):
        return parts[1]
    return "api"  # aemon itself, aemon.api, aemon.series_detector


def imports(path: Path, top_only: bool = False) -> set[str]:
    """The aemon modules ``path`` imports (``from aemon.x import y`` counts as aemon.x.y where
    that is a module, else aemon.x)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("aemon")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aemon"):
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module or ""}
    known = modules()
    return {m for m in found if m in known}


def test_every_import_follows_the_layers():
    wrong = []
    for module, path in sorted(modules().items()):
        for target in sorted(imports(path)):
            if layer(target) not in ALLOWED[layer(module)]:
                wrong.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    assert not wrong, "\n".join(wrong)


def test_no_module_level_import_cycle():
    graph = {m: imports(p, top_only=True) - {m} for m, p in modules().items()}
    cycles = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in done:
                visit(nxt, [*stack, nxt], done)
        done.add(node)

    done: set[str] = set()
    for m in sorted(graph):
        if m not in done:
            visit(m, [m], done)
    assert not cycles, "\n".join(sorted(set(cycles)))


def test_the_rule_catches_a_daemon_module_that_imports_training(tmp_path):
    source = "from aemon.training import pipeline\n"
    path = tmp_path / "bad.py"
    path.write_text(source)
    targets = imports(path)
    assert "aemon.training.pipeline" in targets
    assert layer("aemon.training.pipeline") not in ALLOWED[layer("aemon.daemon.bad")]


IMAGE = """
import importlib.abc, sys
class NoTools(importlib.abc.MetaPathFinder):  # this checkout's editable install maps them back
    def find_spec(self, name, path, target=None):
        if name == "aemon.tools" or name.startswith("aemon.tools."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTools())
sys.path.insert(0, sys.argv[1])
import aemon
assert aemon.__file__.startswith(sys.argv[1]), aemon.__file__
import aemon.cli.commands, aemon.daemon.service, aemon.training.pipeline
from aemon.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def image_site(tmp_path_factory) -> Path:
    """The package as the container image installs it: ``aemon`` without ``aemon/tools``."""
    import shutil

    site = tmp_path_factory.mktemp("image") / "site"
    package = site / "aemon"
    shutil.copytree(ROOT / "monitor", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        ROOT / "training", package / "training", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.rmtree(package / "tools")
    return site


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["bench", "--json"], 2, "aemon bench is a development tool, not in this installation"),
        (["nab", "data"], 2, "aemon nab is a development tool, not in this installation"),
        (  # replay is no tool: the compose stack's replay job runs it in the image
            ["replay", "windows.csv", "--topic", "t", "--bootstrap-servers", "127.0.0.1:1"],
            2,
            "127.0.0.1:1",
        ),
        (["serve", "--help"], 0, "usage: aemon serve"),
        (["nab", "--help"], 0, "usage: aemon nab"),
    ],
)
def test_the_daemon_and_the_cli_work_without_the_tools(image_site, tmp_path, argv, code, says):
    """As in the container image, whose build deletes ``aemon/tools``: everything else imports
    and parses, and a tool's command says in one line that it is not there."""
    import subprocess
    import sys

    (tmp_path / "windows.csv").write_text("stream,v0\ns,1.0\n")
    run = subprocess.run(
        [sys.executable, "-c", IMAGE, str(image_site), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == code, run.stderr
    if code == 0:
        assert says in run.stdout and not run.stderr, run.stderr
        return
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], run.stderr
