"""The public API: what ``aemon`` exports, what importing it costs, and the README's examples."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aemon
from aemon.core.artifact import Meta
from aemon.core.detector import Detector
from tests.conftest import make_windows, samples_csv


def test_all_is_pinned_and_every_name_resolves():
    assert aemon.__all__ == [
        "AemonError",
        "ArtifactError",
        "ConfigError",
        "DataError",
        "Detector",
        "SeriesDetector",
        "Settings",
        "StageFailed",
        "__version__",
        "fit",
        "fit_series",
        "load",
        "read_prometheus",
        "serve",
    ]
    for name in aemon.__all__:
        assert getattr(aemon, name) is not None
    with pytest.raises(AttributeError):
        aemon.no_such_name  # noqa: B018


def _fresh(code: str, tmp_path: Path) -> str:
    """Run ``code`` in a new interpreter outside the repository (no checkout on sys.path)."""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_import_aemon_puts_no_bare_names_and_loads_nothing_heavy(tmp_path):
    out = _fresh(
        "import sys, importlib.util as u, aemon\n"
        "print(sorted(m for m in ('training', 'monitor', 'torch', 'numpy') if m in sys.modules))\n"
        "print(u.find_spec('training'), u.find_spec('monitor'))\n",
        tmp_path,
    )
    assert out.split("\n")[:2] == ["[]", "None None"]


def test_the_parser_imports_no_torch_numpy_pandas_or_aiokafka(tmp_path):
    out = _fresh(
        "import sys\nfrom aemon.cli.main import parser\nparser().format_help()\n"
        "heavy = ('torch', 'numpy', 'pandas', 'sklearn', 'matplotlib', 'aiokafka', 'scipy')\n"
        "print([m for m in heavy if m in sys.modules])\n",
        tmp_path,
    )
    assert out.strip() == "[]"


def test_fit_takes_a_dataframe_and_never_fits_labelled_rows():
    table = make_windows(200, 30)
    frame = pd.DataFrame(table.values, columns=[f"v{i}" for i in range(table.values.shape[1])])
    frame["label"] = table.label
    frame["stream"] = table.stream
    det = aemon.fit(frame, epochs=2)
    assert det.meta.training["windows_fitted"] + det.meta.training["windows_calibration"] == 200
    assert det.predict(frame).shape == (230,) and set(det.predict(frame)) <= {0, 1}


def test_fit_refuses_bad_input_with_the_errors_the_cli_prints():
    good = make_windows(40, 0).values
    with pytest.raises(aemon.DataError, match="NaN"):
        aemon.fit(np.where(np.arange(good.size).reshape(good.shape) == 5, np.nan, good))
    with pytest.raises(aemon.ConfigError, match="epochs must be a whole number >= 1"):
        aemon.fit(good, epochs=0)
    with pytest.raises(aemon.ConfigError, match="model must be one of"):
        aemon.fit(good, model="transformer")
    with pytest.raises(aemon.ConfigError, match="windows"):
        aemon.fit(np.zeros(10))
    with pytest.raises(aemon.DataError, match=r"^X: rows of different lengths"):
        aemon.fit([[0.0, 1.0, 2.0], [0.0, 1.0]] * 20)  # nested lists: numpy's ValueError before
    labelled = pd.DataFrame(good).assign(y=0)  # PyOD's name for labels, among the values
    with pytest.raises(aemon.DataError, match="column 'y' holds only 0 and 1, as labels do"):
        aemon.fit(labelled)
    with pytest.warns(UserWarning, match="rough guess"):  # too few windows to calibrate on
        det = aemon.fit(good, epochs=1)
    with pytest.raises(aemon.DataError, match="expected windows of shape"):
        det.score(np.zeros((3, 5)))
    with pytest.raises(aemon.DataError, match=r"^2 labels for 3 windows: give one label per"):
        det.evaluate(good[:3], [0, 1])  # scikit-learn's ValueError before
    with pytest.raises(aemon.DataError, match=r"^labels need the values they label$"):
        det.report("unused", labels=[0, 1])


def test_series_api_scores_and_events_equal_the_cli_on_the_saved_models(tmp_path, capsys):
    from aemon.cli import main
    from tests.conftest import samples_csv

    csv = samples_csv(tmp_path / "s.csv", n=160, streams=("a", "b"), spike_at=140)
    series = aemon.fit_series(csv, train_fraction=0.6, epochs=2)
    assert series.streams == ["a", "b"]
    windows = series.score(csv)
    assert list(windows.columns) == [
        "stream",
        "seq",
        "start",
        "end",
        "score",
        "threshold",
        "is_anomaly",
        "p",
    ]
    assert windows.p.between(0, 1, inclusive="right").all()
    assert str(windows.end.dt.tz) == "UTC" and set(windows.stream) == {"a", "b"}
    series.save(tmp_path / "m")
    out = tmp_path / "scores.csv"
    argv = ["score", "--model", str(tmp_path / "m"), "--input", str(csv), "--output", str(out)]
    assert main(argv) == 0
    cli = [json.loads(line) for line in out.with_suffix(".events.jsonl").read_text().splitlines()]
    assert cli == series.events(csv) and cli  # the spike opens events in both streams


def test_numpy_numbers_as_settings_are_stored_as_plain_json(tmp_path):
    x = make_windows(40, 0).values
    with pytest.warns(UserWarning, match="rough guess"):  # too few windows to calibrate on
        det = aemon.fit(
            x, epochs=np.int64(1), latent=np.int64(4), widths=[np.int32(16)], seed=np.int64(2)
        )
    det.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "detector.json").read_text())
    assert meta["hparams"]["latent"] == 4 and meta["hparams"]["widths"] == [16]
    assert meta["training"]["seed"] == 2 and meta["training"]["recipe"]["fit"]["epochs"] == 1
    with pytest.raises(aemon.ConfigError, match="lr must be a finite number > 0, got nan"):
        aemon.fit(x, lr=float("nan"))  # FitConfig's own check, for the CLI and the API alike


def test_bad_serve_settings_are_refused_before_torch_loads(tmp_path):
    """``aemon serve`` without a model answered after 4.4 s (torch loaded first); now at once."""
    code = (
        "import sys, aemon\n"
        "try:\n    aemon.serve(environ={})\n"
        "except aemon.ConfigError as exc:\n    print('torch' in sys.modules, exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.stdout.startswith("False invalid settings: model: required"), run.stderr


def test_the_threshold_is_the_users_to_set_and_the_artifact_records_it(tmp_path):
    table = make_windows(200, 30)
    det = aemon.fit(table.values, table.label, epochs=1)
    calibrated, version = det.threshold, det.version
    scores = det.score(table.values)
    low = float(np.quantile(scores, 0.5))
    assert det.predict(table.values, threshold=low).sum() == (scores > low).sum()
    assert det.threshold == calibrated  # predict(threshold=...) sets nothing
    det.threshold = low
    moved = det.version
    assert det.threshold == low and moved != version  # it decides otherwise: a new id
    assert (det.predict(table.values) == (scores > low)).all()
    loaded = aemon.load(det.save(tmp_path / "m"))
    assert loaded.threshold == low and loaded.version == det.version == moved
    assert loaded.meta.doc["threshold"]["calibrated_value"] == calibrated
    loaded.threshold = calibrated  # back to the calibrated value: back to the weights' id
    assert loaded.version == version and "calibrated_value" not in loaded.meta.doc["threshold"]
    for bad in (float("nan"), -1.0, "high"):
        with pytest.raises(aemon.ConfigError, match="threshold must be a finite number"):
            det.threshold = bad  # type: ignore[assignment]
    with pytest.raises(aemon.ConfigError, match="threshold must be a finite number"):
        det.predict(table.values, threshold=float("inf"))


def test_contamination_calibrates_the_share_of_normal_windows_flagged():
    table = make_windows(300, 0)
    det = aemon.fit(table.values, contamination=0.1, epochs=1)
    assert det.meta.threshold_spec == "quantile:0.9"
    with pytest.raises(aemon.ConfigError, match="not both"):
        aemon.fit(table.values, contamination=0.1, threshold="mad:3")
    with pytest.raises(aemon.ConfigError, match=r"contamination must be in \(0, 0.5\)"):
        aemon.fit(table.values, contamination=0.7)


def test_dataframes_as_people_have_them():
    """A datetime column beside the windows' values; for series a DatetimeIndex (whatever its
    name), a Series and a column named date; two time columns are ambiguous and refused."""
    rng = np.random.default_rng(0)
    windows = pd.DataFrame(rng.random((80, 8)), columns=[f"v{i}" for i in range(8)])
    windows["timestamp"] = pd.date_range("2026-01-01", periods=80, freq="min")
    with pytest.warns(UserWarning, match="rough guess"):  # too few windows to calibrate on
        assert aemon.fit(windows, epochs=1).input_shape == (8,)  # the dates are no values
    index = pd.date_range("2026-01-01", periods=300, freq="min")
    flow = pd.Series(np.sin(np.arange(300) / 6), index=index, name="flow")
    dated = flow.rename_axis("Date").to_frame()  # pd.read_csv(..., index_col="Date")
    for samples in (
        flow,
        flow.to_frame(),
        pd.DataFrame({"date": index, "flow": flow.values}),
        dated,
    ):
        series = aemon.fit_series(samples, epochs=1)
        assert series.streams == ["0"] and len(series.score(samples)) == 300 - 8 + 1
    both = pd.DataFrame({"date": index, "time": index, "flow": flow.values})
    with pytest.raises(aemon.DataError, match=r"several time columns \(time, date\); keep one"):
        aemon.fit_series(both, epochs=1)
    with pytest.raises(aemon.DataError, match="a Series needs its times as its index"):
        aemon.fit_series(flow.reset_index(drop=True), epochs=1)
    with pytest.raises(aemon.DataError, match="an array has no times"):
        aemon.fit_series(flow.to_numpy(), epochs=1)
    records = [{"timestamp": t.timestamp(), "flow": v} for t, v in flow.items()]  # has times
    assert aemon.fit_series(records, epochs=1).streams == ["0"]


def test_one_threshold_for_every_stream_is_refused_with_the_ways_that_exist():
    """Detector.threshold is one number; a SeriesDetector's are per stream, and an assignment
    that would silently do nothing is refused."""
    series = aemon.fit_series(samples_frame(), epochs=1)
    with pytest.raises(aemon.ConfigError, match=r"per stream: .*set_threshold\(stream, value\)"):
        series.threshold = 1.0
    assert not hasattr(series, "threshold") and list(series.thresholds) == ["0"]
    series.set_threshold("0", 1.5)
    assert series.thresholds == {"0": 1.5}


def test_notebook_reprs_are_one_short_line_and_a_thin_calibration_warns(tmp_path):
    with pytest.warns(UserWarning, match="calibrated on only 2 normal windows"):
        det = aemon.fit(make_windows(10, 0).values, epochs=1)
    text = repr(det)
    assert len(text) < 160 and "\n" not in text and det.version in text
    series = aemon.fit_series(samples_frame(), epochs=1)
    assert repr(series) == "SeriesDetector(1 stream: 0)"


def test_a_series_model_is_an_ensemble_of_three_unless_asked_otherwise():
    default = aemon.fit_series(samples_frame(), epochs=1).detectors["0"]
    assert default.meta.doc["hparams"]["members"] == 3
    one = aemon.fit_series(samples_frame(), epochs=1, members=1).detectors["0"]
    assert "members" not in one.meta.doc["hparams"]  # one model: the artifact as before
    with pytest.raises(aemon.ConfigError, match="members must be a whole number >= 1"):
        aemon.fit_series(samples_frame(), epochs=1, members=0)


def test_a_metric_that_never_changes_in_the_history_is_named_in_a_warning():
    """Its scale is the robust floor, so any later change in it scores as anomalous: say so."""
    idle = samples_frame().assign(errors=0.0, spare=2.5)
    with pytest.warns(UserWarning, match=r"errors \(0\), spare \(2.5\) never change in the"):
        aemon.fit_series(idle, epochs=1)
    busy = samples_frame().assign(errors=np.arange(200) % 3, spare=2.5)
    two = pd.concat([idle.assign(stream="a"), busy.assign(stream="b")])
    with pytest.warns(UserWarning) as said:
        aemon.fit_series(two, epochs=1)
    assert [str(w.message).split(" never")[0] for w in said] == [
        "stream 'a': errors (0), spare (2.5)",
        "stream 'b': spare (2.5)",
    ]
    with pytest.warns(UserWarning, match=r"^the any-stream model: spare \(2.5\) never changes"):
        aemon.fit_series(two, epochs=1, any_stream=True)  # one scaling: errors moves in 'b'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aemon.fit_series(samples_frame().assign(pressure=np.cos(np.arange(200) / 6)), epochs=1)


def test_samples_that_keep_their_time_are_named_in_a_warning_with_the_step_taken():
    """A model records its samples' step (false alarms a day and the daemon's step check rest
    on it): samples all stamped alike, or stamped to the minute at several a minute, give it
    none of their own, and training says so; a repeated time now and then does not."""
    frame = samples_frame()
    alike = frame.set_axis(pd.DatetimeIndex([frame.index[0]] * 200))
    with pytest.warns(UserWarning, match=r"^stream '0': 199 of its 199 training steps keep the"):
        series = aemon.fit_series(alike, epochs=1)
    assert series.summary()["sample_step_seconds"].item() == 1.0  # "1 s apart: none moves"
    coarse = frame.set_axis(frame.index.floor("4min"))  # four samples a stamp
    with pytest.warns(UserWarning, match=r"takes its samples as 4 min apart, from those that"):
        aemon.fit_series(coarse, epochs=1)
    times = frame.index.to_numpy().copy()
    times[1::50] = times[0::50]  # the same time as the sample before, now and then
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aemon.fit_series(frame.set_axis(pd.DatetimeIndex(times)), epochs=1)


def test_a_metric_that_only_rises_in_the_history_is_named_as_a_counter():
    """A counter (bytes sent so far, errors so far) leaves the range the model learned and
    scores as anomalous from then on: its rate is what to give. One reset is still a counter."""
    n = np.arange(200)
    sent = np.cumsum(100 + n % 7) - 5000 * (n >= 90)  # reset near the middle of the history
    frame = samples_frame().assign(bytes_total=sent, errors_total=n // 40)
    with pytest.warns(UserWarning) as said:
        aemon.fit_series(frame, epochs=1)
    (line,) = [str(w.message) for w in said if "only rise" in str(w.message)]
    assert line.startswith("stream '0': bytes_total (up at 131 of 132 steps), errors_total")
    assert line.endswith("give them as rates (the change per sample)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its rate moves both ways: nothing to say
        aemon.fit_series(samples_frame().assign(bytes_rate=100.0 + n % 7), epochs=1)


def test_a_steady_trend_is_named_with_when_it_will_score_as_anomalous():
    """A disk filling by a noise's width every 1.7 days (two days of history at 5 minutes)
    leaves the range its model learned before the model's first trained update: training says
    so, and when. A daily cycle with noise, or noise that wanders, is no drift."""
    t = pd.date_range("2026-01-05", periods=605, freq="5min")
    noise = np.random.default_rng(0).normal(0, 1, 605)
    disk = pd.DataFrame({"timestamp": t, "stream": "disk", "used": 0.002 * np.arange(605) + noise})
    with pytest.warns(UserWarning, match=r"^stream 'disk': used \(up by 0\.\d+ of its 5-95% ra"):
        aemon.fit_series(disk, epochs=1)
    with pytest.warns(UserWarning, match=r"learned before 2,000 windows into the stream and sc"):
        aemon.fit_series(disk, epochs=1, learn=False)
    hour = np.asarray(t.hour + t.minute / 60)
    cpu = disk.assign(stream="cpu", used=40 + 20 * np.sin(2 * np.pi * hour / 24) + 2 * noise)
    # Slow wander, no trend (each step 0.9 of the last plus noise): its quarters' medians step
    # one way and would leave the range in time at that rate, but its slope is within what such
    # wander gives (this draw is one that the quarters alone would name).
    shocks, wander = np.random.default_rng(16).normal(0, 1, 605), np.zeros(605)
    for i in range(1, 605):
        wander[i] = 0.9 * wander[i - 1] + shocks[i]
    queue = disk.assign(stream="queue", used=wander)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aemon.fit_series(cpu, epochs=1)
        aemon.fit_series(queue, epochs=1, time_of_day="off")


def test_a_level_that_steps_up_and_back_down_is_not_named_as_a_counter():
    """A queue's length climbing 0 -> 1 -> 2 and dropping back, now and then, rises at more
    than 1% of the steps and falls at less, but falls at more than half as many: not a counter."""
    n = np.arange(2000)
    queue = np.zeros(2000)
    for k, start in enumerate(range(60, 780, 60)):  # 12 excursions inside the fitted rows
        queue[start : start + 2] = 1
        queue[start + 2 : start + 4] = 2 if k < 8 else 1  # up twice, then down; or up, down
    frame = pd.DataFrame(
        {"flow": np.sin(n / 6), "queue": queue},
        index=pd.date_range("2026-01-01", periods=2000, freq="min"),
    )
    steps = np.diff(queue)
    assert (steps > 0).sum() == 20 and (steps < 0).sum() == 12  # both about 1% of ~1,400
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aemon.fit_series(frame, epochs=1)


def test_a_stream_is_scored_only_with_the_columns_its_model_was_trained_on():
    """A sample's values are taken by position, so a several-metric model refuses columns in
    another order, or too few, in one line instead of scoring the wrong metrics (or a traceback);
    one metric is taken whatever its name."""
    two = samples_frame().assign(pressure=np.cos(np.arange(200) / 6))
    series = aemon.fit_series(two, epochs=1)
    assert len(series.score(two)) == 200 - 8 + 1
    with pytest.raises(
        aemon.DataError,
        match=r"columns pressure, flow where .* flow, pressure, in that order .* column 1 is "
        r"'pressure', the model's 'flow'",
    ):
        series.score(two[["pressure", "flow"]])
    with pytest.raises(
        aemon.DataError,
        match=r"1 value column\(s\) where .* trained on 2 \(flow, pressure\): "
        r"missing pressure$",
    ):
        series.score(two[["flow"]])
    renamed = two.rename(columns={"pressure": "pressure_kpa"})
    with pytest.raises(
        aemon.DataError, match=r": missing pressure; not in the model pressure_kpa$"
    ):
        series.score(renamed)
    one = aemon.fit_series(samples_frame(), epochs=1)
    assert len(one.score(samples_frame().rename(columns={"flow": "rate"}))) == 200 - 8 + 1


def test_fit_series_takes_the_model_settings_fit_and_train_series_take():
    """``widths``, ``latent``, ``activation`` and the rest reach the streams' models (they were
    not keywords of ``fit_series``, only of ``aemon.fit`` and the CLI); checked as there."""
    series = aemon.fit_series(
        samples_frame(), epochs=1, widths=[16], latent=2, activation="elu", members=1
    )
    (det,) = series.detectors.values()
    hparams = det.model.hparams
    assert (hparams["widths"], hparams["latent"], hparams["activation"]) == ([16], 2, "elu")
    assert "members" not in hparams  # one autoencoder
    with pytest.raises(aemon.ConfigError, match=r"^latent 8 must be smaller than the input"):
        aemon.fit_series(samples_frame(), epochs=1, latent=8, time_of_day="off")


def test_a_machine_of_many_metrics_refused_names_the_few_that_differ_in_one_short_line():
    """Of a 9-metric machine's columns, the message names the one missing and shortens the
    model's list (a machine of 38 metrics would otherwise print all 76 names)."""
    nine = samples_frame().assign(**{f"m{k}": np.cos(np.arange(200) / (k + 2)) for k in range(8)})
    series = aemon.fit_series(nine, epochs=1)
    with pytest.raises(aemon.DataError) as refused:
        series.score(nine.drop(columns="m5"))
    assert str(refused.value).endswith(
        "8 value column(s) where its model in this SeriesDetector was trained on 9 "
        "(flow, m0, m1, m2, m3, m4, and 3 more): missing m5"
    )


def test_samples_of_no_stream_the_models_serve_are_refused_not_scored_as_nothing():
    frame = samples_frame().assign(stream="pump-1")
    series = aemon.fit_series(frame, epochs=1)
    with pytest.raises(aemon.DataError, match=r"in this SeriesDetector: '0' \(samples without a"):
        series.score(samples_frame())  # the stream column forgotten
    with pytest.warns(UserWarning, match=r"^1 stream of the samples has no model in this Series"):
        both = series.score(pd.concat([frame, samples_frame().assign(stream="pump-2")]))
    assert len(both) == 193


def test_a_stream_with_too_short_a_history_is_told_how_many_samples_it_needs():
    with pytest.raises(
        aemon.ConfigError, match=r"'0': 28 training .* give it at least 29 training"
    ):
        aemon.fit_series(samples_frame()[:28], epochs=1)
    with pytest.warns(UserWarning, match="rough guess"):  # too few windows to calibrate on
        assert len(aemon.fit_series(samples_frame()[:29], epochs=1).detectors) == 1


def test_a_history_with_missing_values_is_refused_or_its_rows_left_out():
    """As ``aemon train series --missing``: NaN among a stream's values is refused naming its
    row, or with ``missing="skip"`` that row is left out (one warning), as the daemon leaves
    out such a sample."""
    gappy = samples_frame()
    gappy.iloc[[40, 90], 0] = np.nan
    with pytest.raises(aemon.DataError, match=r"^samples, row 40: column 'flow' is nan"):
        aemon.fit_series(gappy, epochs=1)
    with pytest.warns(UserWarning, match=r"^samples, row 40: left out 2 of 200 rows with a"):
        series = aemon.fit_series(gappy, epochs=1, missing="skip")
    assert series.detectors["0"].meta.doc["series"]["train_rows"] == 198
    with pytest.raises(aemon.ConfigError, match=r"^missing must be one of refuse, skip"):
        aemon.fit_series(gappy, missing="fill")


def test_streams_too_short_to_train_are_left_out_by_name_and_the_rest_trained():
    """One stream of 5 samples among many no longer stops the others' training: it is named in
    one warning and has no model; when every stream is that short, the refusal names the
    first and how many more."""
    long = samples_frame().assign(stream="pump-1")
    tiny = samples_frame()[:5].assign(stream="pump-2")
    tinier = samples_frame()[:3].assign(stream="pump-3")
    with pytest.warns(
        UserWarning,
        match=r"left out 2 streams with fewer than 29 training "
        r"samples \('pump-2': 5, 'pump-3': 3\), too few .* no_model\)$",
    ):
        series = aemon.fit_series(pd.concat([long, tiny, tinier]), epochs=1)
    assert list(series.detectors) == ["pump-1"]
    with pytest.warns(UserWarning, match=r"the any-stream model serves them, fitted without them$"):
        pooled = aemon.fit_series(pd.concat([long, tiny]), epochs=1, any_stream=True)
    assert len(pooled.score(samples_frame().assign(stream="pump-2"))) == 200 - 8 + 1
    with pytest.raises(
        aemon.ConfigError,
        match=r"^stream 'pump-2': 5 training samples .* "
        r"leave it out \(and 1 more stream as short\)$",
    ):
        aemon.fit_series(pd.concat([tiny, tinier]), epochs=1)


def samples_frame() -> pd.DataFrame:
    index = pd.date_range("2026-01-01", periods=200, freq="min")
    return pd.DataFrame({"flow": np.sin(np.arange(200) / 6)}, index=index)


def test_series_predict_evaluate_and_summary_in_python():
    rng = np.random.default_rng(0)
    t = np.arange(600)
    frame = pd.DataFrame(
        {"timestamp": 1_700_000_000 + 60 * t, "value": np.sin(t / 10) + 0.05 * rng.normal(size=600)}
    )
    series = aemon.fit_series(frame.iloc[:300], epochs=10)  # three members: 5 epochs underfit
    later = frame.copy()
    later.loc[450:470, "value"] += 3.0
    later["label"] = ((t >= 450) & (t <= 470)).astype(int)
    flags = series.predict(later)
    assert flags.shape == (600,) and flags[450:471].mean() > 0.8 and flags[:440].sum() == 0
    ev = series.evaluate(later)
    assert ev["events"]["incidents_detected"] == 1 and ev["events"]["events"] == 1
    # PR-AUC ranks every row's window score: the windows that leave the shift (labelled normal,
    # their last rows back at the sine) score about as high as those inside it (0.95 with one
    # model, 0.62 with the default three); 21 of 600 rows, so chance is 0.035
    assert ev["pointwise"]["recall"] > 0.8 and ev["pointwise"]["pr_auc"] > 0.5
    table = series.summary()
    assert (
        list(table.index) == ["0"]
        and table.loc["0", "threshold"] == series.detectors["0"].threshold
    )
    assert (
        table.loc["0", "windows_fitted"] > 0
        and table.loc["0", "expected_false_alarms_per_day"] >= 0
        and table.loc["0", "members"] == 3
        and table.loc["0", "sample_step_seconds"] == 60.0  # the frame's samples, a minute apart
    )
    with pytest.raises(aemon.DataError, match="label"):
        series.evaluate(frame)


def test_series_thresholds_per_stream_and_for_a_target_rate(tmp_path):
    csv = samples_csv(tmp_path / "s.csv", n=300, streams=("a", "b"))
    series = aemon.fit_series(csv, epochs=2, false_alarms_per_day=3.0)
    for det in series.detectors.values():
        thr = det.meta.doc["threshold"]
        assert thr["method"] == "false_alarms_per_day" and thr["param"] == 3.0
        assert thr["expected_false_alarms_per_day"] == pytest.approx(3.0, rel=1e-6)
    before = {s: d.version for s, d in series.detectors.items()}
    series.set_false_alarms_per_day(0.5)  # fewer alarms: higher thresholds, new versions
    for s, det in series.detectors.items():
        assert det.meta.doc["threshold"]["expected_false_alarms_per_day"] == pytest.approx(0.5)
        assert det.version != before[s]
    series.set_threshold("a", 123.0)
    assert series.thresholds["a"] == 123.0 and series.thresholds["b"] != 123.0
    with pytest.raises(aemon.ConfigError, match="no model for stream 'c'"):
        series.set_threshold("c", 1.0)
    with pytest.raises(aemon.ConfigError, match="a number > 0"):
        series.set_false_alarms_per_day(0)


def test_streams_without_a_model_are_named_in_one_warning_and_the_rest_scored():
    series = aemon.fit_series(samples_frame().assign(stream="a"), epochs=1, members=1)
    strangers = [samples_frame().assign(stream=f"new-{k}") for k in range(8)]
    both = pd.concat([samples_frame().assign(stream="a"), *strangers])
    with pytest.warns(UserWarning) as said:
        windows = series.score(both)
    (line,) = [str(w.message) for w in said if "no model" in str(w.message)]
    assert line.startswith("8 streams of the samples have no model in this SeriesDetector and")
    assert line.endswith("'new-4', 'new-5', and 2 more")
    assert set(windows.stream) == {"a"}


def test_one_detector_for_any_stream_serves_streams_it_never_saw(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(400)

    def machine(name: str, level: float) -> pd.DataFrame:
        wave = level + np.sin(t / 10) + 0.05 * rng.normal(size=len(t))
        return pd.DataFrame({"timestamp": 1_700_000_000 + 60 * t, "stream": name, "value": wave})

    fleet = aemon.fit_series(pd.concat([machine("a", 0), machine("b", 0.2)]), any_stream=True)
    assert repr(fleet) == "SeriesDetector(one model for any stream)" and fleet.streams == []
    det = fleet.detector_for("never-seen")
    assert det is not None and det.meta.doc["series"]["fit_rows"] > 400  # both machines fitted
    fleet.save(tmp_path / "models")
    back = aemon.load(tmp_path / "models")
    new = machine("c", 0.1)
    new.loc[300:310, "value"] += 4.0  # a fault on a machine the model never saw
    scored = back.score(new)
    assert set(scored["stream"]) == {"c"} and scored["is_anomaly"].iloc[292:303].any()
    assert scored["is_anomaly"].iloc[:280].sum() == 0
    with pytest.raises(aemon.ConfigError, match="exclude each other"):
        aemon.fit_series(machine("a", 0), shared=True, any_stream=True)


def test_a_metric_reconstructed_loosely_does_not_drown_one_reconstructed_tightly():
    rng = np.random.default_rng(0)
    t = np.arange(1400)
    frame = pd.DataFrame(
        {
            "timestamp": 1_700_000_000 + 60 * t,
            "noisy": rng.normal(size=len(t)),  # no model reconstructs white noise
            "smooth": np.sin(t / 10) + 0.01 * rng.normal(size=len(t)),
        }
    )
    series = aemon.fit_series(frame.iloc[:1000], epochs=20)
    det = series.detectors["0"]
    noisy, smooth = det.meta.channel_scale
    assert noisy > 5 * smooth  # each metric's error on normal data, from calibration
    later = frame.copy()
    later.loc[1200:1220, "smooth"] += 0.6  # small against the noise, large for a sine
    shifted, normal = slice(1193, 1221), slice(1000, 1190)  # windows of 8 touching it, or not
    scores = series.score(later)["score"].to_numpy()
    assert scores[shifted].max() > 1.2 * scores[normal].max()
    opened = [e for e in series.events(later) if e["start_seq"] >= 1193 - 7]
    assert opened and opened[0]["top_metrics"][0]["metric"] == "smooth"
    # the same model averaging raw errors: the shift hides under the noisy metric's error
    doc = {k: v for k, v in det.meta.doc.items() if k != "channel_scale"}
    raw = aemon.SeriesDetector({"0": Detector(det.model, Meta(doc), det.normaliser, det.device)})
    raw_scores = raw.score(later)["score"].to_numpy()
    assert raw_scores[shifted].max() < 1.2 * raw_scores[normal].max()


def test_a_frame_of_metric_at_step_columns_is_windows_of_several_metrics(tmp_path):
    """A window CSV of several metrics read with pandas (columns METRIC@T, as `aemon windows`
    writes them): windows [metrics, steps], each metric scaled apart, not an image."""
    rng = np.random.default_rng(0)
    cpu, mem = 50 + rng.normal(0, 1, (200, 4)), 1e9 + 1e7 * rng.normal(size=(200, 4))
    frame = pd.DataFrame(
        np.c_[cpu, mem], columns=[f"{m}@{t}" for m in ("cpu", "mem") for t in range(4)]
    )
    det = aemon.fit(frame, epochs=1)
    assert det.input_shape == (2, 4) and len(det.meta.normaliser["shift"]) == 2
    assert det.score(frame.iloc[:3]).shape == (3,)
    with pytest.warns(UserWarning, match="differ"):  # the same values, columns not so named
        aemon.fit(frame.set_axis([f"v{i}" for i in range(8)], axis=1), epochs=1)


def test_an_incident_inside_the_history_is_left_out_of_the_threshold():
    """A spike in the calibration stretch (the history's last 30%) that the fitted stretch never
    shows is an incident, not how the stream behaves: it sets neither the threshold nor the
    adaptive history, so the same spike after training opens an event. A stream whose fitted
    stretch spikes as high has such spikes routinely, and keeps them."""
    rng = np.random.default_rng(0)
    t = np.arange(600)
    frame = pd.DataFrame(
        {"timestamp": 1_700_000_000 + 60 * t, "value": np.sin(t / 10) + 0.05 * rng.normal(size=600)}
    )
    spiked = frame.copy()
    spiked.loc[260:265, "value"] += 3.0  # in the calibration stretch of the first 300 rows
    with pytest.warns(UserWarning, match=r"^stream '0': \d+ of its \d+ calibration windows score"):
        series = aemon.fit_series(spiked.iloc[:300], epochs=10)
    det = series.detectors["0"]
    assert series.summary().loc["0", "history_incident_windows"] > 0
    later = spiked.copy()
    later.loc[450:455, "value"] += 3.0
    flags = series.predict(later)
    assert flags[450:462].sum() >= 4 and flags[300:440].sum() == 0  # events open on 2 of 6
    assert det.threshold < series.score(later)["score"].max() / 2

    routine = spiked.copy()
    routine.loc[100:105, "value"] += 3.0  # the fitted stretch spikes as high
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing is left out
        kept = aemon.fit_series(routine.iloc[:300], epochs=10)
    assert kept.summary().loc["0", "history_incident_windows"] == 0
    assert kept.detectors["0"].threshold > det.threshold


def test_a_large_metric_flat_in_its_history_still_sees_a_step_afterwards():
    """A metric near 1e9 that never moved in training: its distance from the daily profile is
    scaled like the value (0.1% of 1e9), not by 0.001, which put every later wobble at the
    clip and hid a step 50 times the wobble."""
    rng = np.random.default_rng(0)
    value = np.full(1080, 1e9)  # 10-minute samples: three flat days to train on
    value[432:] += rng.normal(0, 1e6, 648)
    value[900:930] += 5e7
    frame = pd.DataFrame(
        {"value": value}, index=pd.date_range("2026-01-01", periods=1080, freq="10min")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it never changes in the fitted history: said
        series = aemon.fit_series(frame, train_fraction=0.4, epochs=2)
    score = series.score(frame).score.to_numpy()  # window k ends at row k + 7
    wobble = np.quantile(score[440 - 7 : 890 - 7], 0.99)
    assert score[900 - 7 : 930 - 7].max() > 10 * wobble


def test_a_step_is_found_alike_whatever_the_metrics_units():
    """The same series in units 10^8 apart (a ratio near 1e-6, a count near 100): a step of 20
    times its noise stands out of its scores alike; a fixed floor of 0.001 on the scale hid it in
    the small units."""
    rng = np.random.default_rng(0)
    shape = 1 + 0.1 * rng.normal(size=1080)
    shape[900:930] += 2
    index = pd.date_range("2026-01-01", periods=1080, freq="10min")
    ratios = []
    for level in (1e-6, 100.0):
        frame = pd.DataFrame({"value": level * shape}, index=index)
        series = aemon.fit_series(frame, train_fraction=0.4, epochs=5)
        score = series.score(frame).score.to_numpy()  # window k ends at row k + 7
        ratios.append(score[893:923].max() / np.quantile(score[433:883], 0.99))
    assert min(ratios) > 5
