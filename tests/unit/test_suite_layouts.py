"""The benchmark runners' data layouts: which folders of a directory become streams."""

from pathlib import Path

import pandas as pd
import pytest

from aemon.core.errors import DataError
from aemon.tools import asd, skab


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


def test_asd_servers_nobody_labelled_give_detections_only(tmp_path):
    for name in ("omi-1", "omi-2"):
        server(tmp_path / "data", name)
        test = tmp_path / "data" / name / "test.csv"
        pd.read_csv(test).drop(columns=["label"]).to_csv(test, index=False)
    prepared = asd.prepare(tmp_path / "data", tmp_path / "out")
    assert prepared.labelled is None and "label" not in pd.read_csv(prepared.rest).columns


def test_asd_refuses_labels_on_some_servers_only_and_files_without_times(tmp_path):
    for name in ("omi-1", "omi-2"):
        server(tmp_path / "data", name)
    test = tmp_path / "data" / "omi-2" / "test.csv"
    pd.read_csv(test).drop(columns=["label"]).to_csv(test, index=False)
    some = r"the 'label' column in some servers' test\.csv, not in omi-2$"
    with pytest.raises(DataError, match=some):
        asd.prepare(tmp_path / "data", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written
    pd.read_csv(test).drop(columns=["timestamp"]).to_csv(test, index=False)
    with pytest.raises(DataError, match=r"omi-2/test\.csv: no timestamp column"):
        asd.prepare(tmp_path / "data", tmp_path / "out")
    test.write_text("")
    with pytest.raises(DataError, match=r"omi-2/test\.csv: not a CSV of metrics"):
        asd.prepare(tmp_path / "data", tmp_path / "out")


def run(root: Path, name: str, labels: bool) -> None:
    """A SKAB run of 420 rows (the first 400 train), with or without SKAB's label columns."""
    frame = pd.DataFrame({"datetime": pd.date_range("2020-03-09", periods=420, freq="s")})
    frame["Pressure"] = 0.1
    if labels:
        frame["anomaly"], frame["changepoint"] = 0.0, 0.0
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / name, sep=";", index=False)


def test_skab_runs_nobody_labelled_give_detections_only(tmp_path):
    run(tmp_path / "data", "valve1/0.csv", labels=False)
    run(tmp_path / "data", "other/1.csv", labels=False)
    prepared = skab.prepare(tmp_path / "data", tmp_path / "out")
    assert prepared.labelled is None and list(prepared.stamps) == ["other/1.csv", "valve1/0.csv"]
    assert len(pd.read_csv(prepared.rest)) == 2 * 20  # the rows after each run's first 400
    run(tmp_path / "mixed", "valve1/0.csv", labels=True)
    run(tmp_path / "mixed", "valve1/1.csv", labels=False)
    some = r"the 'anomaly' column in some runs, not in valve1/1\.csv$"
    with pytest.raises(DataError, match=some):
        skab.prepare(tmp_path / "mixed", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()  # refused before anything is written
