"""How long ``aemon --help`` and ``aemon --version`` take: the median of N runs of each.

Each run is a fresh process of the installed console script (what a user types), timed from
spawn to exit; the first run of each command is a warm-up and is not counted (it pays for the
file cache). ``python -m tests.benchmarks.cli_startup [--runs 10] [--aemon PATH] [--json]``
prints one line per command, or one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["--version"], ["train", "ecg", "--help"], ["serve", "--help"])


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(aemon: str, runs: int) -> dict[str, dict[str, float]]:
    out = {}
    for args in COMMANDS:
        argv = [aemon, *args]
        timed(argv)
        times = [timed(argv) for _ in range(runs)]
        out[" ".join(args)] = {
            "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3),
            "max_s": round(max(times), 3),
        }
    return out


def main() -> int:
    here = Path(sys.executable).parent / "aemon"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="timed runs per command (default 10)")
    p.add_argument(
        "--aemon",
        default=str(here) if here.exists() else shutil.which("aemon"),
        help="the console script to time (default: the one beside this python)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    result = measure(args.aemon, args.runs)
    if args.json:
        print(json.dumps({"runs": args.runs, "commands": result}))
    else:
        for cmd, r in result.items():
            print(
                f"aemon {cmd:<18} median {r['median_s']:.3f} s"
                f"  (min {r['min_s']:.3f}, max {r['max_s']:.3f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
