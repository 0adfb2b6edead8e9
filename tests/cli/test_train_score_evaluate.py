"""A small end-to-end run of the CLI on synthetic windows: train -> score -> evaluate."""

import contextlib
import csv
import io
import json

import numpy as np
import pytest

import aemon
from aemon.cli import main
from aemon.daemon.routing import Models


@pytest.fixture(scope="module")
def trained(window_csv, tmp_path_factory):
    """A detector trained by the CLI, with the JSON it printed."""
    out = tmp_path_factory.mktemp("art") / "det"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(
            [
                "train",
                "windows",
                "--input",
                str(window_csv),
                "--out",
                str(out),
                "--epochs",
                "40",
                "--json",
                "--quiet",
            ]
        )
    assert rc == 0
    return out, json.loads(printed.getvalue())


def run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_train_score_evaluate_agree(window_csv, trained, capsys, tmp_path):
    trained, doc = trained
    for key in (
        "roc_auc",
        "pr_auc",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "threshold",
        "threshold_method",
        "fit_seconds",
        "artifact",
    ):
        assert key in doc
    assert doc["roc_auc"] > 0.95, doc
    assert doc["threshold_method"] == "mad:3"
    for png in ("loss.png", "errors.png", "roc_pr.png", "reconstructions.png"):
        assert (trained / "report" / png).stat().st_size > 1000

    scores_csv = tmp_path / "scores.csv"
    assert (
        main(
            [
                "score",
                "--model",
                str(trained),
                "--input",
                str(window_csv),
                "--output",
                str(scores_csv),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(scores_csv.open()))
    assert len(rows) == 460
    assert set(rows[0]) == {"stream", "seq", "label", "score", "threshold", "is_anomaly"}
    flagged = sum(int(r["is_anomaly"]) for r in rows)
    assert all(
        (float(r["score"]) > float(r["threshold"])) == (r["is_anomaly"] == "1") for r in rows
    )

    ev = run_json(
        capsys, ["evaluate", "--model", str(trained), "--input", str(window_csv), "--json"]
    )
    assert ev["confusion"]["tp"] + ev["confusion"]["fp"] == flagged
    assert ev["n"] == 460 and ev["n_anomalies"] == 60
    labels = np.array([int(r["label"]) for r in rows])
    flags = np.array([int(r["is_anomaly"]) for r in rows])
    assert ev["confusion"]["tp"] == int((labels & flags).sum())
    assert ev["threshold"] == pytest.approx(doc["threshold"])


def test_cli_errors_are_one_line_not_tracebacks(tmp_path, capsys, window_csv):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,nope\n")
    assert main(["train", "windows", "--input", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"aemon: error: {bad}:3: column 'b' holds 'nope', not a number"
    assert (
        main(
            [
                "score",
                "--model",
                str(tmp_path),
                "--input",
                str(window_csv),
                "--output",
                str(tmp_path / "o.csv"),
            ]
        )
        == 2
    )
    assert "no detector.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "windows", "--input", str(window_csv), "--threshold", "quantile:7"])
    assert exc.value.code == 2
    assert "probability in (0, 1)" in capsys.readouterr().err


def test_score_refuses_windows_of_the_wrong_length(tmp_path, trained, capsys):
    trained, _ = trained
    short = tmp_path / "short.csv"
    short.write_text("a,b,c\n1,2,3\n")
    assert (
        main(
            [
                "score",
                "--model",
                str(trained),
                "--input",
                str(short),
                "--output",
                str(tmp_path / "o.csv"),
            ]
        )
        == 2
    )
    assert "windows of 3 values; the model expects 32" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["dense", "conv1d", "vae", "aae"])
def test_train_windows_offers_every_window_family(family, window_csv, tmp_path, capsys):
    out = tmp_path / family
    argv = [
        "train",
        "windows",
        "--input",
        str(window_csv),
        "--model",
        family,
        "--epochs",
        "3",
        "--denoise",
        "mask:0.1",
        "--json",
        "--quiet",
        "--out",
        str(out),
    ]
    doc = run_json(capsys, argv)
    meta = json.loads((out / "detector.json").read_text())
    assert meta["family"] == family and doc["artifact"] == str(out)
    assert meta["training"]["recipe"]["denoise"] == "mask:0.1"
    assert meta["score"] == ("elbo" if family == "vae" else "mae")


def test_architecture_flags_a_family_does_not_take_are_refused(window_csv, tmp_path, capsys):
    argv = [
        "train",
        "windows",
        "--input",
        str(window_csv),
        "--model",
        "conv1d",
        "--activation",
        "tanh",
        "--out",
        str(tmp_path / "x"),
    ]
    assert main(argv) == 2
    assert (
        capsys.readouterr().err.strip()
        == "aemon: error: --activation does not apply to the conv1d family"
    )


def test_train_ecg_takes_the_window_families_through_its_protocol(tmp_path, capsys):
    out = tmp_path / "conv"
    argv = ["train", "ecg", "--model", "conv1d", "--epochs", "2", "--json", "--quiet"]
    doc = run_json(capsys, [*argv, "--out", str(out)])
    meta = json.loads((out / "detector.json").read_text())
    assert meta["family"] == "conv1d" and meta["training"]["recipe"]["hparams"]["latent"] == 8
    assert meta["training"]["preset"] == "windows conv1d"
    assert doc["n"] == 1000 and doc["n_anomalies"] == 425  # the tutorial's test split


def test_the_window_stride_for_sample_streams_is_recorded(window_csv, tmp_path, capsys):
    out = tmp_path / "strided"
    run_json(
        capsys,
        [
            "train",
            "windows",
            "--input",
            str(window_csv),
            "--epochs",
            "2",
            "--stride",
            "8",
            "--json",
            "--quiet",
            "--out",
            str(out),
        ],
    )
    meta = json.loads((out / "detector.json").read_text())
    assert meta["input"]["window"] == {"length": 32, "stride": 8}
    models = Models(str(out), device="cpu")
    windower = models.windower("samples")  # what `serve --input-kind samples` uses
    assert (windower.length, windower.stride) == (32, 8)
    argv = ["train", "windows", "--input", str(window_csv), "--stride", "33", "--out", str(out)]
    assert main(argv) == 2
    assert "--stride must be between 1 and the window length 32" in capsys.readouterr().err


def test_ctrl_c_during_training_says_so_and_exits_130(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from aemon.core.table import write_windows
    from tests.conftest import make_windows

    # Enough windows that even the earliest stop (20 epochs without progress) takes seconds:
    # the interrupt must find the run still fitting, however busy the machine.
    big = tmp_path / "big.csv"
    write_windows(big, make_windows(4000, 0))
    aemon = str(Path(sys.executable).parent / "aemon")
    argv = [aemon, "train", "windows", "--input", str(big), "--out", str(tmp_path / "m")]
    # A suite started in the background (`cmd &`) inherits SIGINT ignored; a user's terminal
    # delivers it: the child gets the default handling, as there.
    proc = subprocess.Popen(
        [*argv, "--epochs", "100000"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # SIGINT once fitting has started (100,000 epochs to go)
        if ": fitting " in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(30) == 130
    assert rest.strip().splitlines()[-1] == "aemon: train interrupted (Ctrl-C)"
    assert "Traceback" not in rest and not (tmp_path / "m").exists()


def test_score_and_evaluate_decide_at_the_threshold_given(window_csv, trained, capsys, tmp_path):
    model, _ = trained
    out = tmp_path / "scores.csv"
    argv = ["score", "--model", str(model), "--input", str(window_csv), "--output", str(out)]
    assert main([*argv, "--threshold", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["anomalies"] == 460  # every window scores > 0
    rows = list(csv.DictReader(out.open()))
    assert {r["threshold"] for r in rows} == {"0.0"} and {r["is_anomaly"] for r in rows} == {"1"}
    ev = ["evaluate", "--model", str(model), "--input", str(window_csv), "--json"]
    assert main([*ev, "--threshold", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["recall"] == 1.0
    assert main([*ev]) == 0  # the artifact on disk is unchanged
    assert json.loads(capsys.readouterr().out)["threshold"] > 0


def test_a_warning_is_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from aemon.core.table import write_windows
    from tests.conftest import make_windows

    write_windows(tmp_path / "few.csv", make_windows(12, 0))
    aemon = str(Path(sys.executable).parent / "aemon")
    argv = [aemon, "train", "windows", "--input", str(tmp_path / "few.csv"), "--quiet"]
    argv += ["--split", "random", "--epochs", "1", "--out", str(tmp_path / "m")]
    run = subprocess.run(argv, text=True, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    warned = [ln for ln in run.stderr.splitlines() if "aemon: warning" in ln]
    assert len(warned) == 1 and warned[0].startswith("aemon: warning: ")
    assert run.stderr.splitlines()[-1] == f"aemon: created folder {tmp_path / 'm'}"
    assert "calibrated on only" in warned[0] and "Traceback" not in run.stderr


def test_windows_of_several_metrics_are_scaled_metric_by_metric(tmp_path, capsys):
    """`aemon windows` names a multi-metric CSV's value columns METRIC@T; `train windows` then
    takes windows [metrics, steps] and scales each metric apart, so a CPU rise beside a memory
    metric of 1e9 counts (one scaling for both: ROC-AUC 0.72 and no alert on such data)."""
    rng = np.random.default_rng(0)
    n, lines = 1600, ["timestamp,stream,cpu,mem,label"]
    cpu, mem = 50 + rng.normal(0, 1, n), 1e9 + 1e7 * rng.normal(size=n)
    cpu[1400:1440] += 15  # the incident: CPU only
    for i in range(n):
        hit = int(1400 <= i < 1440)
        lines.append(f"{1_700_000_000 + 300 * i},h,{float(cpu[i])!r},{float(mem[i])!r},{hit}")
    samples, windows = tmp_path / "s.csv", tmp_path / "w.csv"
    samples.write_text("\n".join(lines) + "\n")
    assert main(["windows", str(samples), "--length", "8", "--output", str(windows)]) == 0
    said = capsys.readouterr().err
    assert said.startswith("200 windows of 8 samples of 2 metrics (cpu, mem) -> "), said
    header = windows.read_text().splitlines()[0].split(",")
    assert header[-16:] == [f"cpu@{t}" for t in range(8)] + [f"mem@{t}" for t in range(8)]
    out = tmp_path / "m"
    argv = ["train", "windows", "--input", str(windows), "--out", str(out), "--epochs", "30"]
    doc = run_json(capsys, [*argv, "--json", "--quiet"])
    meta = json.loads((out / "detector.json").read_text())
    assert meta["input"]["shape"] == [2, 8] and len(meta["normaliser"]["shift"]) == 2
    assert doc["roc_auc"] > 0.95 and doc["recall"] > 0.5, doc
    scored = run_json(capsys, ["evaluate", "--model", str(out), "--input", str(windows), "--json"])
    assert scored["roc_auc"] > 0.95, scored  # the flat CSV read back into [2, 8] windows


def test_info_says_what_an_artifact_holds_and_a_threshold_set_by_hand(trained, capsys, tmp_path):
    """``aemon info``: the artifact's facts as training wrote them; after a threshold is set by
    hand (``aemon.load``, ``det.threshold = x``, save), the calibrated one beside it."""
    model, summary = trained
    doc = run_json(capsys, ["info", str(model), "--json"])
    (facts,) = doc["streams"]
    assert doc["kind"] == "window" and doc["serve"] == f"aemon serve --model {model}"
    assert facts["threshold"] == facts["calibrated_threshold"] == summary["threshold"]
    assert facts["model_version"] == summary["model_version"] and facts["input"] == "32 values"
    assert facts["evaluation"]["roc_auc"] == summary["roc_auc"]
    det = aemon.load(model)
    det.threshold = 2 * det.threshold
    det.save(tmp_path / "raised")
    assert main(["info", str(tmp_path / "raised")]) == 0
    said = capsys.readouterr().out
    assert f"{2 * summary['threshold']:.6g} (set by hand; calibrated" in said
    assert f"version {det.version}" in said and det.version != summary["model_version"]
