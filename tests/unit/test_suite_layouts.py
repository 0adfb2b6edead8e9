"""The benchmark runners' data layouts: which folders of a directory become streams."""

from pathlib import Path

import pandas as pd

from aemon.tools import asd


def server(root: Path, name: str) -> None:
    (root / name).mkdir(parents=True)
    frame = pd.DataFrame({"timestamp": [1_700_000_000, 1_700_000_300], "m1": [1.0, 2.0]})
    frame.to_csv(root / name / "train.csv", index=False)
    frame.assign(label=[0, 1]).to_csv(root / name / "test.csv", index=False)


def test_asd_takes_every_server_folder_in_natural_order(tmp_path):
    """ASD's omi-N, or other machines in the same layout (SMD's machine-1-1 ..)."""
    for name in ("machine-1-10", "machine-2-1", "machine-1-2"):
        server(tmp_path / "data", name)
    (tmp_path / "data" / "notes").mkdir()  # no test.csv: not a server
    prepared = asd.prepare(tmp_path / "data", tmp_path / "out")
    assert list(prepared.stamps) == ["machine-1-2", "machine-1-10", "machine-2-1"]
    streams = pd.read_csv(prepared.rest)["stream"].tolist()
    assert streams == ["machine-1-2"] * 2 + ["machine-1-10"] * 2 + ["machine-2-1"] * 2
    assert pd.read_csv(prepared.labelled)["label"].tolist() == [0, 1] * 3
