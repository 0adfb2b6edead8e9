"""``aemon nab``, ``aemon skab`` and ``aemon asd`` as a user runs them, on small data in each
benchmark's own layout: one-metric series and multichannel streams (8 sensors; 38 metrics whose
scales differ by 10^8) trained, streamed through the real broker into one daemon, decided exactly
as offline, scored."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

AEMON = str(Path(sys.executable).parent / "aemon")


def skab_like(root: Path) -> None:
    """Two runs of 8 sensors at 1 s, SKAB's columns and separator; a valve fault (a level
    shift on three sensors) from row 500 to 599."""
    rng = np.random.default_rng(0)
    names = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature"]
    names += ["Thermocouple", "Voltage", "Volume Flow RateRMS"]
    for folder, k in (("valve1", 0), ("other", 1)):
        t = np.arange(700)
        x = 1 + 0.05 * rng.standard_normal((700, 8)) + 0.3 * np.sin(2 * np.pi * t / 60)[:, None]
        x *= np.array([0.03, 0.04, 1.3, 0.5, 80, 26, 230, 32])
        anomaly = ((t >= 500) & (t < 600)).astype(float)
        x[500:600, [2, 3, 7]] *= 1.5
        frame = pd.DataFrame(x, columns=names)
        frame.insert(0, "datetime", pd.date_range("2020-03-09 10:14:33", periods=700, freq="s"))
        frame["anomaly"], frame["changepoint"] = anomaly, 0.0
        (root / folder).mkdir(parents=True)
        frame.to_csv(root / folder / f"{k}.csv", sep=";", index=False)
    (root / "anomaly-free").mkdir()  # not scored, as in SKAB


def asd_like(root: Path, metrics: int = 38) -> None:
    """Two servers of ``metrics`` metrics at 5 min whose scales run from 10^-3 to 10^5; the
    test part has one incident (rows 200-229: a quarter of the metrics jump)."""
    rng = np.random.default_rng(1)
    scales = np.logspace(-3, 5, metrics)
    for n in (1, 2):
        t = np.arange(900)
        daily = np.sin(2 * np.pi * t / 288)[:, None]
        x = scales * (2 + daily + 0.1 * rng.standard_normal((900, metrics)))
        train, test = x[:600], x[600:].copy()
        test[200:230, : metrics // 4] += 3 * scales[: metrics // 4]
        cols = [f"m{k + 1}" for k in range(metrics)]
        (root / f"omi-{n}").mkdir(parents=True)
        tr = pd.DataFrame(train, columns=cols)
        tr.insert(0, "timestamp", 1_580_428_800 - 300 * (600 - np.arange(600)))
        tr.to_csv(root / f"omi-{n}" / "train.csv", index=False)
        te = pd.DataFrame(test, columns=cols)
        te.insert(0, "timestamp", 1_580_428_800 + 300 * np.arange(300))
        te["label"] = ((np.arange(300) >= 200) & (np.arange(300) < 230)).astype(int)
        te.to_csv(root / f"omi-{n}" / "test.csv", index=False)


def nab_like(root: Path, labels: bool = True) -> dict[str, int]:
    """NAB's layout: a file at 5 min with a daily cycle and a 10-sample jump from row 1,500, and
    one of noise alone; with NAB's label windows (``labels/combined_windows.json``) or without,
    as files nobody labelled. Returns each file's row count."""
    rng = np.random.default_rng(2)
    stamps = pd.date_range("2015-01-01", periods=2000, freq="5min")
    hours = (np.arange(2000) / 12) % 24
    spiky = 50 + 10 * np.sin(2 * np.pi * hours / 24) + rng.standard_normal(2000)
    spiky[1500:1510] += 25
    files = {"realSome/spiky.csv": spiky, "artificialNoAnomaly/flat.csv": rng.normal(5, 1, 1000)}
    for name, values in files.items():
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"timestamp": stamps[: len(values)], "value": values.round(3)})
        frame.to_csv(root / "data" / name, index=False)
    if labels:
        (root / "labels").mkdir()
        window = [[f"{stamps[1450]}.000000", f"{stamps[1560]}.000000"]]
        doc = {"realSome/spiky.csv": window, "artificialNoAnomaly/flat.csv": []}
        (root / "labels" / "combined_windows.json").write_text(json.dumps(doc))
    return {name: len(values) for name, values in files.items()}


def moved(out: Path) -> list[str]:
    """The metrics that moved most as the strongest event opened, as the daemon published it;
    offline scoring must name the same ones for every event."""
    events = {}
    for side in ("daemon", "offline"):
        lines = (out / f"events-{side}.jsonl").read_text().splitlines()
        events[side] = {(e["event_id"], e["state"]): e for e in map(json.loads, lines)}
    for key, e in events["daemon"].items():
        names = [m["metric"] for m in e["top_metrics"]]
        assert names == [m["metric"] for m in events["offline"][key]["top_metrics"]]
    strongest = max(events["daemon"].values(), key=lambda e: e["peak_score"])
    return [m["metric"] for m in strongest["top_metrics"]]


def run(suite: str, data: Path, out: Path, bootstrap: str, *flags: str) -> dict:
    argv = [AEMON, suite, str(data), "--out", str(out), "--bootstrap-servers", bootstrap, "--json"]
    done = subprocess.run(
        [*argv, *flags],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_nab_files_decide_like_offline_and_labels_change_no_detection(bootstrap, tmp_path):
    rows = nab_like(tmp_path / "nab")
    s = run("nab", tmp_path / "nab", tmp_path / "out", bootstrap)
    assert s["daemon_equals_offline"] is True and s["differences"] == []
    probation = {name: min(int(0.15 * n), 750) for name, n in rows.items()}  # NAB's, unscored
    windows = sum(n - probation[name] - 7 for name, n in rows.items())
    assert s["windows_daemon"] == s["windows"] == windows
    lines = (tmp_path / "out" / "events-daemon.jsonl").read_text().splitlines()
    opened = [e for e in map(json.loads, lines) if e["state"] == "open"]
    detections = {}
    for name in rows:
        det = pd.read_csv(tmp_path / "out" / "detections" / name)
        data = pd.read_csv(tmp_path / "nab" / "data" / name)
        assert list(det.columns) == ["timestamp", "is_anomaly"]  # NAB's scorer reads it
        assert det["timestamp"].tolist() == data["timestamp"].tolist()  # every row, in order
        assert det["is_anomaly"][: probation[name]].sum() == 0
        detections[name] = np.flatnonzero(det["is_anomaly"].to_numpy())
        # a detection is the row of the last sample of the window that opened an event (the
        # event's start): never a row before the samples that opened it
        starts = [pd.Timestamp(e["start_ts"], unit="s") for e in opened if e["stream"] == name]
        assert pd.to_datetime(det["timestamp"][detections[name]]).tolist() == sorted(starts)
    jump = detections["realSome/spiky.csv"]
    assert ((jump >= 1500) & (jump < 1510)).any()  # soon after the jump begins
    assert s["events"]["incidents_detected"] == 1
    assert len(list((tmp_path / "out" / "report").glob("*.png"))) == 2

    nab_like(tmp_path / "unlabelled", labels=False)  # the same files, as nobody labelled them
    u = run("nab", tmp_path / "unlabelled", tmp_path / "out2", bootstrap, "--offline-only")
    assert "events" not in u and u["events_offline"] == s["events_offline"]
    assert len(list((tmp_path / "out2" / "report").glob("*.png"))) == 2  # pictures all the same
    for name in rows:
        again = pd.read_csv(tmp_path / "out2" / "detections" / name)["is_anomaly"].to_numpy()
        assert np.array_equal(np.flatnonzero(again), detections[name])


def test_skab_runs_decide_like_offline_and_find_the_fault(bootstrap, tmp_path):
    skab_like(tmp_path / "skab")
    s = run("skab", tmp_path / "skab", tmp_path / "out", bootstrap)
    assert s["daemon_equals_offline"] is True and s["differences"] == []
    assert s["streams"] == 2 and s["windows_daemon"] == s["windows"] == 2 * (300 - 7)
    assert s["pointwise"]["segment_recall"] == 1.0 and s["pointwise"]["pr_auc"] > 0.9
    det = pd.read_csv(tmp_path / "out" / "detections" / "valve1" / "0.csv")
    assert len(det) == 700 and det["is_anomaly"][:400].sum() == 0  # SKAB's layout, every row
    flags = det["is_anomaly"].to_numpy()
    assert flags[500:600].mean() > 0.8  # flagged while the fault lasts (adaptive_delay)
    assert flags[500:600].sum() > 2 * (flags[400:500].sum() + flags[600:].sum())
    assert len(list((tmp_path / "out" / "report").glob("*.png"))) == 2
    assert set(moved(tmp_path / "out")) == {"Current", "Pressure", "Volume Flow RateRMS"}


def test_one_autoencoder_a_stream_decides_through_the_daemon_as_offline(bootstrap, tmp_path):
    """The default is an ensemble of three (the other runs here); one model, asked for."""
    skab_like(tmp_path / "skab")
    s = run("skab", tmp_path / "skab", tmp_path / "out", bootstrap, "--members", "1")
    assert s["daemon_equals_offline"] is True and s["differences"] == []
    assert s["events_daemon"] == s["events_offline"] >= 2  # the fault, on both streams
    metas = [json.loads(p.read_text()) for p in (tmp_path / "out" / "models").glob("*/*.json")]
    assert [m["hparams"].get("members") for m in metas if "hparams" in m] == [None, None]


def test_asd_servers_of_38_metrics_far_apart_in_scale_decide_like_offline(bootstrap, tmp_path):
    asd_like(tmp_path / "asd")
    s = run("asd", tmp_path / "asd", tmp_path / "out", bootstrap)
    assert s["daemon_equals_offline"] is True and s["differences"] == []
    assert s["windows_daemon"] == s["windows"] == 2 * (300 - 7)
    p = s["pointwise"]
    assert p["segment_recall"] == 1.0 and p["pr_auc"] > 0.8  # the small metrics count too
    det = pd.read_csv(tmp_path / "out" / "detections" / "omi-1" / "test.csv")
    assert list(det.columns) == ["timestamp", "is_anomaly", "anomaly_score"]
    assert det["anomaly_score"][:7].isna().all() and det["anomaly_score"][7:].notna().all()
    names, jumped = moved(tmp_path / "out"), {f"m{k + 1}" for k in range(38 // 4)}
    assert set(names) <= jumped
