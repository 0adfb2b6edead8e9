"""The ``aemon`` console script: one parser, subcommands from training and monitor."""

from __future__ import annotations

import argparse
import sys

from aemon import __version__, commands
from aemon.training import cli as training_cli
from aemon.training.errors import AemonError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aemon",
        description="Autoencoder anomaly monitor: train detectors offline, score streams online.",
    )
    p.add_argument("--version", action="version", version=f"aemon {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training_cli.register(sub)
    commands.register(sub)
    commands.register_tools(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AemonError as exc:
        print(f"aemon: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
