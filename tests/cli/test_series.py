"""train series: time-ordered calibration, thresholds that cannot collapse, refusals before
training; offline scoring on the time axis; bad values and bad flags as one line and exit 2."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from aemon.cli import main
from aemon.core.artifact import read_meta
from aemon.core.catalog import catalog
from aemon.training.series import stream_dir
from tests.conftest import samples_csv, two_streams


def train(tmp_path, csv, *extra):
    out = tmp_path / "models"
    argv = ["train", "series", "--input", str(csv), "--out", str(out), "--epochs", "3"]
    return main([*argv, "--quiet", *extra]), out


def test_calibration_follows_fitting_in_time_and_the_artifact_says_what_to_expect(tmp_path):
    rc, out = train(tmp_path, samples_csv(tmp_path / "s.csv", streams=("a", "b/c")))
    assert rc == 0
    found = catalog(out)
    assert set(found) == {"a", "b/c"} and found["b/c"].name == stream_dir("b/c") != "b/c"
    meta = read_meta(found["a"]).doc
    facts = meta["series"]
    assert facts["fit_rows"] + facts["calibration_rows"] == facts["train_rows"] == 400
    assert facts["fit_rows"] == 280  # the earlier 70% fitted, the later 30% calibrates
    thr = meta["threshold"]
    assert thr["value"] >= max(thr["calibration_tail"])  # never below a calibration score
    assert 0 < thr["expected_false_alarms_per_day"] < 1440
    assert meta["events"]["adaptive_window"] == 2000 and meta["events"]["adaptive_delay"] == 300
    assert meta["input"] == {"kind": "series", "shape": [8], "window": {"length": 8, "stride": 1}}


def test_near_constant_series_cannot_collapse_the_threshold(tmp_path, capsys):
    csv = samples_csv(tmp_path / "flat.csv", flat=True)
    rc, out = train(tmp_path, csv, "--adaptive-window", "0")
    assert rc == 0
    meta = read_meta(catalog(out)["a"]).doc
    # mostly zeros with blips of 1e-4: scaled by the blips, whatever their units (as zeros with
    # blips of 1 would be by 1), not by a fixed floor; the threshold follows, not collapses
    assert meta["normaliser"]["scale"] == pytest.approx(1e-4)
    scores = tmp_path / "scores.csv"
    assert main(["score", "--model", str(out), "--input", str(csv), "--output", str(scores)]) == 0
    assert "0 events" in capsys.readouterr().err  # the data it was trained on raises nothing


def test_pot_on_a_small_calibration_set_is_refused_before_training(tmp_path, capsys):
    rc, out = train(tmp_path, samples_csv(tmp_path / "s.csv"), "--threshold", "pot:0.01")
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pot:0.01 needs >= 500 calibration windows, got 113" in err[0]


def test_score_writes_windows_on_the_time_axis_and_events(tmp_path, capsys):
    rc, out = train(tmp_path, samples_csv(tmp_path / "s.csv"))
    assert rc == 0
    capsys.readouterr()
    test = samples_csv(tmp_path / "t.csv", n=200, seed=1, spike_at=120)
    scores, report = tmp_path / "new" / "scores.csv", tmp_path / "report"
    argv = ["score", "--model", str(out), "--input", str(test), "--output", str(scores)]
    assert main([*argv, "--report", str(report), "--json"]) == 0
    said = capsys.readouterr()
    doc = json.loads(said.out)
    made = sorted(line for line in said.err.splitlines() if "created folder" in line)
    assert made == [f"aemon: created folder {tmp_path / 'new'}", f"aemon: created folder {report}"]
    lines = scores.read_text().splitlines()
    assert lines[0] == "stream,seq,start,end,score,threshold,is_anomaly,p"
    first = lines[1].split(",")
    assert first[:4] == ["a", "7", "2023-11-14T22:13:20.000000Z", "2023-11-14T22:20:20.000000Z"]
    events = [
        json.loads(x) for x in (scores.parent / "scores.events.jsonl").read_text().splitlines()
    ]
    opened = [e for e in events if e["state"] == "open"]
    assert opened[0]["start_time"].startswith("2023-11-1") and opened[0]["start_time"][-1] == "Z"
    assert doc["events"] == len(opened) >= 1
    assert any(120 <= e["start_seq"] <= 127 for e in opened)  # the spike opens an event
    assert (report / "a.png").stat().st_size > 10_000


def test_evaluate_reports_event_metrics_and_the_nab_score(tmp_path, capsys):
    rc, out = train(tmp_path, samples_csv(tmp_path / "s.csv"))
    assert rc == 0
    capsys.readouterr()
    test = samples_csv(tmp_path / "t.csv", n=200, seed=1, spike_at=120)
    text = test.read_text().splitlines()
    labelled = ["timestamp,stream,seq,value,label"] + [
        f"{line},{int(118 <= i <= 130)}" for i, line in enumerate(text[1:])
    ]
    test.write_text("\n".join(labelled) + "\n")
    assert main(["evaluate", "--model", str(out), "--input", str(test), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)["events"]
    assert ev["incidents"] == 1 and ev["incidents_detected"] == 1
    assert ev["event_recall"] == 1.0 and 0 < ev["nab_score"] <= 100
    assert ev["median_delay_seconds"] >= 0


def blank(csv, *rows: int):
    """Empty the last cell (the value) of data rows ``rows`` of ``csv``."""
    lines = csv.read_text().splitlines()
    for i in rows:
        lines[i + 1] = lines[i + 1].rsplit(",", 1)[0] + ","
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_rows_with_a_missing_value_are_left_out_by_every_command_when_asked(tmp_path, capsys):
    """``--missing skip`` on train series, score, evaluate and windows: each row with an empty
    value is left out with one warning, and where ``seq`` jumps over it the stream's windows
    start again, as in the daemon. Without it each command refuses the file at that line."""
    history = blank(samples_csv(tmp_path / "s.csv"), 100, 250)
    assert train(tmp_path, history)[0] == 2
    assert "s.csv:102: column 'value' is empty" in capsys.readouterr().err
    rc, out = train(tmp_path, history, "--missing", "skip")
    assert rc == 0
    assert "s.csv:102: left out 2 of 400 rows with a missing value" in capsys.readouterr().err
    test = blank(samples_csv(tmp_path / "t.csv", n=200, seed=1), 60)
    scores = tmp_path / "scores.csv"
    argv = ["score", "--model", str(out), "--input", str(test), "--output", str(scores)]
    assert main([*argv, "--json", "--missing", "skip"]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out)["windows"] == (60 - 7) + (200 - 61 - 7)  # starts again at 61
    assert "t.csv:62: left out 1 of 200 rows" in said.err
    assert main(["evaluate", "--model", str(out), "--input", str(test), "--missing", "skip"]) == 2
    assert "evaluate needs a 'label' column" in capsys.readouterr().err  # read, then refused
    windows = tmp_path / "w.csv"
    cut = ["windows", str(test), "--length", "8", "--output", str(windows), "--json"]
    assert main([*cut, "--missing", "skip"]) == 0
    # every 8th seq ends a window: 7, 15, .., 55, then 71, .., 199 (8 samples since the gap)
    assert json.loads(capsys.readouterr().out)["windows"] == 7 + 17


def test_a_column_that_is_no_metric_is_ignored_and_metrics_are_chosen_by_name(tmp_path, capsys):
    """``--ignore host`` on train series, score and windows reads the file as if it had no
    such column (the same scores); ``--metrics`` reads the columns it names, in its order, as
    the model then records them. Without either, the host's name is refused at its line."""
    frame = pd.read_csv(samples_csv(tmp_path / "s.csv"))
    frame["mem"] = 2 * frame["value"]
    plain = tmp_path / "plain.csv"
    frame.to_csv(plain, index=False)
    frame.insert(2, "host", "web-1")
    hosts = tmp_path / "hosts.csv"
    frame.to_csv(hosts, index=False)
    assert main(["windows", str(hosts), "--length", "8", "--output", str(tmp_path / "w.csv")]) == 2
    assert "hosts.csv:2: column 'host' holds 'web-1', text in every" in capsys.readouterr().err
    scored = []
    for csv, extra, where in ((plain, (), "p"), (hosts, ("--ignore", "host"), "h")):
        out = tmp_path / where
        argv = ["train", "series", "--input", str(csv), "--out", str(out), "--epochs", "3"]
        assert main([*argv, "--quiet", *extra]) == 0
        scores = tmp_path / f"{where}.csv"
        argv = ["score", "--model", str(out), "--input", str(csv), "--output", str(scores)]
        assert main([*argv, *extra]) == 0
        scored.append(pd.read_csv(scores))
        cut = ["windows", str(csv), "--length", "8", "--output", str(tmp_path / f"w{where}.csv")]
        assert main([*cut, *extra]) == 0
    pd.testing.assert_frame_equal(*scored)
    assert (tmp_path / "wp.csv").read_text() == (tmp_path / "wh.csv").read_text()
    rc, out = train(tmp_path, hosts, "--metrics", "mem,value")
    assert rc == 0 and read_meta(catalog(out)["a"]).recorded_metrics == ["mem", "value"]


def test_overflowing_values_are_refused_and_artifacts_stay_finite(tmp_path, capsys):
    big = samples_csv(tmp_path / "big.csv")
    text = big.read_text().replace(",0.0", ",1e300", 1)
    big.write_text(text)
    rc, _ = train(tmp_path, big)
    assert rc == 2
    assert "not a finite float32 number" in capsys.readouterr().err
    # A window CSV with one huge-but-float32 value: the artifact is written with finite numbers.
    rows = ["a,b,c,d"] + [f"{i % 7},{i % 5},{i % 3},{1e30 if i == 9 else i % 2}" for i in range(60)]
    (tmp_path / "w.csv").write_text("\n".join(rows) + "\n")
    argv = ["train", "windows", "--input", str(tmp_path / "w.csv"), "--epochs", "2", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "w")]) == 0
    text = (tmp_path / "w" / "detector.json").read_text()
    assert "Infinity" not in text and "NaN" not in text


def test_several_value_columns_train_score_and_evaluate(tmp_path, capsys):
    """Two value columns: windows of [2, length], and score and evaluate read them (they ended
    in a reshape traceback when the artifact recorded length x channels as the length)."""
    lines = ["timestamp,stream,flow,pressure,label"]
    for i in range(600):
        shift = 4.0 if 450 <= i < 470 else 0.0
        flow, pressure = math.sin(i / 6), 3 * math.cos(i / 6) + shift
        lines.append(f"{1_700_000_000 + 60 * i},pump,{flow:.5f},{pressure:.5f},{int(shift > 0)}")
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    rc, out = train(tmp_path, tmp_path / "s.csv", "--train-fraction", "0.6")
    assert rc == 0
    meta = read_meta(catalog(out)["pump"])
    assert meta.shape == (2, 8) and meta.window.length == 8 and meta.channels == 2
    scores = tmp_path / "scores.csv"
    argv = ["score", "--model", str(out), "--input", str(tmp_path / "s.csv"), "--output"]
    assert main([*argv, str(scores)]) == 0
    assert len(scores.read_text().splitlines()) == 1 + 600 - 8 + 1  # one window per sample
    capsys.readouterr()
    assert (
        main(["evaluate", "--model", str(out), "--input", str(tmp_path / "s.csv"), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["events"]["incidents"] == 1


def test_models_trained_apart_into_one_directory_and_what_one_daemon_serves(tmp_path, capsys):
    """Streams of one and of two metrics trained apart into one directory: one daemon serves
    both. One trained on windows of another length cannot share it: training says so at once
    and ``serve`` refuses with the same line instead of failing later."""
    one = samples_csv(tmp_path / "one.csv", n=200, streams=("web",))
    lines = ["timestamp,stream,flow,pressure"]
    lines += [f"{1_700_000_000 + 60 * i},pump,{math.sin(i / 6):.5f},{i % 7}" for i in range(200)]
    (tmp_path / "two.csv").write_text("\n".join(lines) + "\n")
    assert train(tmp_path, one)[0] == 0
    capsys.readouterr()
    rc, out = train(tmp_path, tmp_path / "two.csv")
    said = capsys.readouterr()
    assert rc == 0 and sorted(catalog(out)) == ["pump", "web"] and "warning" not in said.err
    assert said.out.strip() == f"1 model in {out} (2 there in all)"
    assert main(["info", str(out), "--json"]) == 0  # what `aemon info` says of them
    doc = json.loads(capsys.readouterr().out)
    rows = {row["stream"]: row for row in doc["streams"]}
    assert doc["kind"] == "series" and doc["models"] == 2 and sorted(rows) == ["pump", "web"]
    assert rows["pump"]["metrics"] == ["flow", "pressure"] and rows["web"]["metrics"] == ["value"]
    assert rows["pump"]["threshold"] == read_meta(catalog(out)["pump"]).threshold
    assert rows["web"]["sample_step_seconds"] == 60.0 and rows["web"]["learns_every"] == 1000
    assert doc["windows"] == "by model: 8 samples of 2 metrics; 8 samples of 1 metric"
    assert main(["info", str(out), "--stream", "pmp"]) == 2
    hint = f"aemon: error: --stream 'pmp': no model in {out} serves it; did you mean 'pump'?"
    assert capsys.readouterr().err.strip() == hint
    assert main(["info", str(out), "--stream", "pump"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert (
        table[0] == f"{out}: 2 series models, one per stream; `aemon serve --model {out}` "
        "serves them all"
    )
    assert table[-1].split()[:3] == [
        "pump",
        rows["pump"]["model_version"],
        f"{rows['pump']['threshold']:.4g}",
    ]
    fan = samples_csv(tmp_path / "fan.csv", n=200, streams=("fan",))
    assert train(tmp_path, fan, "--length", "6")[0] == 0
    said = capsys.readouterr()
    shapes = (
        "models take different windows (fan: 6 samples of 1 metric; pump: 8 samples of 2 "
        "metrics); one daemon serves windows of one length and stride (of one shape for window "
        "models): give each its own models directory, input topic and daemon"
    )
    assert f"aemon: warning: {out}: {shapes}" in said.err
    assert main(["serve", "--model", str(out), "--bootstrap-servers", "127.0.0.1:9"]) == 2
    assert capsys.readouterr().err.strip() == f"aemon: error: {shapes}"
    assert main(["info", str(out)]) == 2  # info refuses what serve refuses, in the same line
    assert capsys.readouterr().err.strip() == f"aemon: error: {shapes}"


def test_one_file_of_streams_with_different_metrics_trains_and_scores(tmp_path, capsys):
    """A host with cpu only beside a pump with cpu and flow (its rows leave flow empty): one
    command trains each with its own metrics, score reads the same file back; one model for
    both (--shared) is refused with one line."""
    lines = ["timestamp,stream,cpu,flow"]
    for i in range(300):
        lines.append(f"{1_700_000_000 + 60 * i},host,{math.sin(i / 6):.5f},")
        lines.append(f"{1_700_000_000 + 60 * i},pump,{math.cos(i / 6):.5f},{i % 7}")
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    rc, out = train(tmp_path, tmp_path / "s.csv", "--train-fraction", "0.6")
    assert rc == 0
    metas = {s: read_meta(p) for s, p in catalog(out).items()}
    assert {s: m.shape for s, m in metas.items()} == {"host": (8,), "pump": (2, 8)}
    assert metas["pump"].doc["training"]["metrics"] == ["cpu", "flow"]
    scores = tmp_path / "scores.csv"
    argv = ["score", "--model", str(out), "--input", str(tmp_path / "s.csv"), "--output"]
    assert main([*argv, str(scores)]) == 0
    scored = pd.read_csv(scores)
    assert scored.groupby("stream").size().to_dict() == {"host": 293, "pump": 293}
    capsys.readouterr()
    assert train(tmp_path, tmp_path / "s.csv", "--shared")[0] == 2
    assert "these streams have 2 sets (cpu; cpu, flow)" in capsys.readouterr().err


def test_progress_lines_name_the_stream_they_fit(tmp_path, capsys):
    csv = samples_csv(tmp_path / "s.csv", n=200, streams=("pump-a", "pump-b"))
    argv = ["train", "series", "--input", str(csv), "--out", str(tmp_path / "m"), "--epochs", "1"]
    assert main(argv) == 0
    fitting = [ln for ln in capsys.readouterr().err.splitlines() if ": fitting " in ln]
    assert [ln.split(":")[1].strip() for ln in fitting] == ["pump-a", "pump-b"]


def test_one_threshold_for_every_stream_of_series_models_is_refused(tmp_path, capsys):
    rc, out = train(tmp_path, samples_csv(tmp_path / "s.csv", streams=("a", "b")))
    assert rc == 0
    capsys.readouterr()
    argv = ["score", "--model", str(out), "--input", str(tmp_path / "s.csv")]
    assert main([*argv, "--output", str(tmp_path / "o.csv"), "--threshold", "1"]) == 2
    assert "series models decide with a threshold per stream" in capsys.readouterr().err


def test_the_training_summary_says_which_streams_see_the_time_of_day(tmp_path, capsys):
    """Stream a (three days of history) sees the hour; b (five hours) gets a blank clock beside
    it; both said on the summary lines and in --json, with the ensemble's size."""
    two_streams(5).to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "m"
    argv = ["train", "series", "--input", str(tmp_path / "s.csv"), "--out", str(out)]
    assert main([*argv, "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    learns = ", keeps learning every 1,000 windows ->"
    seen = ", 3 autoencoders averaged, sees the time of day and its daily profile"
    assert "a: threshold" in err and f"{seen}{learns}" in err
    assert f", 3 autoencoders averaged, blank clock (history under a day){learns}" in err
    assert ", samples 10 min apart, 3 autoencoders" in err  # what each stream must keep
    assert main([*argv, "--epochs", "1", "--time-of-day", "off", "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {s: v["clock"] for s, v in doc["streams"].items()} == {"a": None, "b": None}
    assert {s: v["sample_step_seconds"] for s, v in doc["streams"].items()} == {"a": 600, "b": 60}
    assert {s: v["members"] for s, v in doc["streams"].items()} == {"a": 3, "b": 3}
    assert main([*argv, "--epochs", "1", "--members", "1"]) == 0
    err = capsys.readouterr().err
    assert "a: threshold" in err and "autoencoders averaged" not in err
    assert main([*argv, "--epochs", "1", "--daily-profile", "off", "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)["streams"]
    assert doc["a"]["clock"] == "time_of_day" and doc["a"]["daily_profile"] is False
    # the week forced on three days of history: said, and warned of for each stream
    assert main([*argv, "--epochs", "1", "--time-of-day", "week"]) == 0
    err = capsys.readouterr().err
    assert ", sees the time of week and its weekly profile" in err
    assert err.count("--time-of-day week, but its history does not span two weeks") == 2


def test_models_that_keep_learning_say_so_and_score_with_their_updates(tmp_path, capsys):
    """The same training with and without learning: the summary and --json say which learns,
    and ``aemon score`` scores the first 50 windows alike and the later ones by the updates."""
    csv = samples_csv(tmp_path / "s.csv", n=400, streams=("a", "b"))
    base = ["train", "series", "--input", str(csv), "--epochs", "2", "--adaptive-delay", "10"]
    learn = ["--learn", "on", "--learn-every", "50", "--learn-span", "100", "--learn-delay", "5"]
    assert main([*base, "--out", str(tmp_path / "learns"), *learn]) == 0
    assert ", keeps learning every 50 windows ->" in capsys.readouterr().err
    learning = read_meta(tmp_path / "learns" / stream_dir("a")).doc["learning"]
    assert learning == {"every": 50, "span": 100, "delay": 5, "epochs": 5}
    assert (
        main([*base, "--out", str(tmp_path / "fixed"), "--learn", "off", "--json", "--quiet"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["streams"]["a"]["learning"] is None
    scores = {}
    for name in ("learns", "fixed"):
        out = tmp_path / f"{name}.csv"
        argv = ["score", "--model", str(tmp_path / name), "--input", str(csv), "--output"]
        assert main([*argv, str(out)]) == 0
        scores[name] = pd.read_csv(out).sort_values(["stream", "seq"]).score.to_numpy()
    per_stream = 400 - 7
    first = np.r_[np.arange(50), per_stream + np.arange(50)]
    np.testing.assert_allclose(scores["learns"][first], scores["fixed"][first], rtol=1e-6)
    assert not np.allclose(scores["learns"], scores["fixed"])


def test_a_stream_too_short_to_train_is_left_out_and_listed_in_json(tmp_path, capsys):
    """Beside a stream with history, one of 5 samples: the others train, --json lists it under
    ``left_out`` and the one warning line names it."""
    rows = pd.read_csv(samples_csv(tmp_path / "one.csv", n=300, streams=("long",)))
    short = rows[:5].assign(stream="short")
    pd.concat([rows, short]).to_csv(tmp_path / "s.csv", index=False)
    code, out = train(tmp_path, tmp_path / "s.csv", "--json")
    assert code == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert list(doc["streams"]) == ["long"] and doc["left_out"] == ["short"]
    assert "left out 1 stream with fewer than 29 training samples ('short': 5)" in captured.err
    assert [p.name for p in out.iterdir()] == ["long"]


def test_tables_go_to_standard_output_for_a_dash(tmp_path, capsys, monkeypatch):
    """``--output -`` writes the table to standard output (its summary stays on stderr), no file
    named ``-``; a series model's events then go only where ``--events`` says."""
    monkeypatch.chdir(tmp_path)  # where a file named "-" would be written
    rc, out = train(tmp_path, samples_csv(tmp_path / "s.csv"))
    assert rc == 0
    capsys.readouterr()
    test = samples_csv(tmp_path / "t.csv", n=200, seed=1, spike_at=120)
    events = tmp_path / "events.jsonl"
    argv = ["score", "--model", str(out), "--input", str(test), "--output", "-"]
    assert main([*argv, "--events", str(events)]) == 0
    said = capsys.readouterr()
    rows = said.out.splitlines()
    assert rows[0] == "stream,seq,start,end,score,threshold,is_anomaly,p" and len(rows) == 194
    assert "-> -, " in said.err and events.read_text().count('"state": "open"') >= 1
    assert main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 194
    assert main(["windows", str(test), "--length", "8", "--output", "-"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("stream,seq,ts,start,")
    assert not (tmp_path / "-").exists() and not list(tmp_path.glob("-*"))
