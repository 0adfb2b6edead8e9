"""What ``aemon windows`` does, in a module of its own: it needs pandas, not torch, so a bad
CSV is refused in well under a second."""

from __future__ import annotations

import argparse
import json
import sys

from aemon.core.table import write_windows
from aemon.core.windowing import check_stride
from aemon.training.datasets.cut import cut


def cut_windows(args: argparse.Namespace) -> int:
    check_stride(args.stride, args.length, f"--length {args.length}")
    table = cut(args.csv, args.length, args.stride, args.missing, args.metrics, args.ignore)
    write_windows(args.output, table)
    doc = {"windows": len(table), "length": args.length, "output": str(args.output)}
    metrics = ""
    if table.channels:  # written metric by metric, columns METRIC@T
        doc["metrics"] = list(table.channels)
        metrics = f" of {len(table.channels)} metrics ({', '.join(table.channels)})"
    if args.json:
        print(json.dumps(doc))
    else:
        print(
            f"{len(table)} windows of {args.length} samples{metrics} -> {args.output}",
            file=sys.stderr,
        )
    return 0
