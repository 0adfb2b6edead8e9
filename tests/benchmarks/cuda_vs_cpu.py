"""One training of each model family on the CPU and on CUDA: the same seed and data, through
``aemon train`` as a user runs it; seconds per epoch and the metrics of each (README, "On a GPU").

ECG5000 (the ``data`` extra's copy) for the dense, denoising, 1-D convolutional, VAE and AAE
models (the last three through ``train windows`` on all 5,000 beats, a random split); MNIST
(the four IDX files under ``--mnist``) for the 2-D convolutional, VAE and AAE image models.
``python -m tests.benchmarks.cuda_vs_cpu [--mnist DIR] [--image-epochs 1] [--json]``; on a
machine without CUDA, one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from aemon.core.table import WindowTable, write_windows
from aemon.training.datasets import ecg5000

METRICS = ("roc_auc", "f1", "test_mse")
AEMON = shutil.which("aemon", path=str(Path(sys.executable).parent)) or "aemon"


def runs(ecg_csv: Path, mnist: Path, image_epochs: int) -> dict[str, list[str]]:
    beats = ["windows", "--input", str(ecg_csv), "--split", "random", "--model"]
    images = ["image", "--dataset", "mnist", "--data-root", str(mnist)]
    images += ["--epochs", str(image_epochs), "--model"]
    return {
        "dense (ECG5000)": ["ecg"],
        "dense, denoising gaussian:0.1 (ECG5000)": ["ecg", "--denoise", "gaussian:0.1"],
        "conv1d (ECG5000 beats)": [*beats, "conv1d"],
        "vae (ECG5000 beats)": [*beats, "vae"],
        "aae (ECG5000 beats)": [*beats, "aae"],
        "conv2d (MNIST)": [*images, "conv"],
        "vae (MNIST)": [*images, "vae"],
        "aae (MNIST)": [*images, "aae"],
    }


def trained(argv: list[str], device: str, out: Path) -> dict[str, object]:
    """One ``aemon train`` run: its seconds per epoch and metrics, or its error's last line."""
    cmd = [AEMON, "train", *argv, "--seed", "0", "--device", device, "--json", "--quiet"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(done.stdout.splitlines()[0])
    training = json.loads((out / "detector.json").read_text())["training"]
    epochs = int(training["epochs_run"])
    return {
        "epochs": epochs,
        "s_per_epoch": round(training["fit_seconds"] / epochs, 4),
        **{k: round(result[k], 4) for k in METRICS if k in result},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", type=Path, default=Path("../shared/data/mnist"), help="MNIST IDX dir")
    p.add_argument("--image-epochs", type=int, default=1, help="epochs of the MNIST runs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("cuda_vs_cpu: this machine has no CUDA device", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        d = ecg5000.load()
        n = len(d.values)
        ecg_csv = work / "ecg5000.csv"
        names = np.array(["ecg"] * n)
        write_windows(ecg_csv, WindowTable(d.values, names, np.arange(n), label=d.label))
        for name, argv in runs(ecg_csv, args.mnist, args.image_epochs).items():
            row: dict[str, object] = {"run": name}
            for device in ("cpu", "cuda"):
                row[device] = trained(argv, device, work / f"{len(rows)}-{device}")
            rows.append(row)
            if not args.json:
                print(line(row), flush=True)
    if args.json:
        print(json.dumps({"device": torch.cuda.get_device_name(0), "rows": rows}))
    return 0


def line(row: dict) -> str:
    """``run: cpu ... -> cuda ...``, each side its seconds per epoch and metrics, or its error."""
    sides = []
    for device in ("cpu", "cuda"):
        r = row[device]
        if "error" in r:
            sides.append(f"{device} {r['error']}")
        else:
            metrics = " ".join(f"{k} {r[k]}" for k in METRICS if k in r)
            sides.append(f"{device} {r['s_per_epoch']} s/epoch x {r['epochs']}, {metrics}")
    return f"{row['run']}: " + " -> ".join(sides)


if __name__ == "__main__":
    sys.exit(main())
