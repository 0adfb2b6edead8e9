"""Continual learning: when a stream's model is updated, on which windows, and that the daemon's
learner (one window at a time, updates on a worker thread) scores what offline scoring does."""

import asyncio
import json
import logging
import pickle
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import orjson
import pandas as pd
import pytest
import safetensors.torch
import torch

import aemon
from aemon.core import artifact
from aemon.core.detector import Detector
from aemon.core.errors import ArtifactError, ConfigError
from aemon.core.events import Rule
from aemon.core.learner import StreamLearner, Update, fine_tuned, learned_scores
from aemon.core.learning import Learning
from aemon.daemon.learned import LearnedStore, anchors_key, slot
from aemon.daemon.learning import REFUSED, Learners, _on_cpu, with_weights
from aemon.daemon.metrics import Metrics
from aemon.series_detector import as_samples
from aemon.training.datasets.cut import windows_of
from tests.unit.fakes import FakeProducer

EVERY, SPAN, DELAY = 100, 250, 30
OURS = {"group": "aemon", "input_topic": "telegraf"}  # whose anchors a store keeps
OUR_ANCHORS = anchors_key(**OURS)


def numbered(index: int) -> np.ndarray:
    """Window ``index`` of a stream whose every sample is its own seq (windows of 4, stride 1):
    what an update trained on can be read back."""
    return np.arange(index, index + 4, dtype=np.float32).reshape(1, 4)


def learner_of(learning: Learning) -> StreamLearner:
    """A learner of windows of 4 samples of one channel (``[1, 4]``), one every sample."""
    meta = SimpleNamespace(window=SimpleNamespace(length=4, stride=1))
    return StreamLearner(SimpleNamespace(input_shape=(1, 4), meta=meta), "s", learning)  # type: ignore[arg-type]


@pytest.mark.parametrize("delay", [DELAY, 0])
def test_each_update_trains_on_the_recent_past_but_the_newest_windows(delay):
    learning = Learning(every=EVERY, span=SPAN, delay=delay, epochs=1)
    jobs: dict[int, object] = {}
    learner = learner_of(learning)

    def start(update):
        jobs[update.number] = update
        return f"update {update.number}"

    indices = [*range(0, 450), *range(620, 1000)]  # a gap: windows 450-619 never came
    seen = {}
    for i in indices:
        seen[i] = learner.push(i, numbered(i), start)
        if i == 2 * EVERY - delay - 1:  # update 2 starts once its last window is in
            assert sorted(jobs) == [1, 2]
    assert seen[99] is None and seen[100] == "update 1" and seen[999] == "update 9"
    assert all(seen[i] == f"update {i // EVERY}" for i in indices if i >= EVERY)
    for update, job in jobs.items():
        lo, hi = learning.training_range(update)
        got = job.windows  # the windows as they came, rebuilt from the learner's samples
        assert np.array_equal(got, np.stack([numbered(i) for i in indices if lo <= i < hi]))
        got = got[:, 0, 0].astype(int).tolist()
        assert not got or max(got) < update * EVERY - delay  # the newest left out
    # 5 would score windows 500-599, which never came; 10 starts before its first window
    assert sorted(jobs) == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    # its memory, allocated once: the samples of every + delay + span windows (stride 1, length
    # 4), not the windows
    assert learner.samples.shape == ((EVERY + delay + SPAN) * 1 + 4, 1)


def test_an_update_with_nothing_to_train_on_is_the_trained_model_and_never_started():
    learning = Learning(every=100, span=250, delay=150, epochs=1)  # update 1 would end at -50
    started = []
    learner = learner_of(learning)
    handles = [
        learner.push(i, numbered(i), lambda job: started.append(job) or job) for i in range(300)
    ]
    assert handles[150] is None  # update 1: the trained model
    # update 2 (on windows 0-49) starts at window 49, update 3 (0-149) at 149
    assert [job.number for job in started] == [2, 3]
    assert handles[250] is started[0]


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="every must be a whole number >= 1"):
        Learning(every=0)
    with pytest.raises(ArtifactError, match="must name every, span, delay and epochs"):
        Learning.from_dict({"every": 10})
    assert Learning.from_dict(Learning(5, 6, 7, 8).to_dict()) == Learning(5, 6, 7, 8)
    assert Learning(every=100, span=250, delay=30).history == 380


def shifted_stream(rows: int, shift_at: int | None) -> pd.DataFrame:
    """A noisy sine at one sample a minute; from ``shift_at`` on its level is 4 higher."""
    rng = np.random.default_rng(3)
    t = np.arange(rows)
    x = np.sin(2 * np.pi * t / 40) + 0.05 * rng.standard_normal(rows)
    if shift_at is not None:
        x[shift_at:] += 4.0
    ts = pd.to_datetime(1_700_000_000 + 60 * t, unit="s", utc=True)
    return pd.DataFrame({"timestamp": ts, "value": x})


@pytest.fixture(scope="module")
def learning_model():
    """One stream's model that keeps learning (every 100 windows, on 250, the newest 30 out)."""
    history = shifted_stream(500, None)
    fitted = aemon.fit_series(
        history,
        epochs=20,
        learn_delay=DELAY,
        learn_every=EVERY,
        learn_span=SPAN,
        learn_epochs=30,
    )
    ((stream, det),) = fitted.detectors.items()
    return stream, det


def stream_windows(det: Detector, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The stream's windows as the daemon cuts them, and their indices."""
    cut = windows_of(as_samples(frame), 8, 1, det.meta.clock)
    return cut.table.values.reshape(len(cut.table), *det.input_shape), cut.table.seq - 7


def test_a_level_shift_is_learned_and_the_trained_model_never_would(learning_model):
    stream, det = learning_model
    windows, index = stream_windows(det, shifted_stream(1500, 300))
    learned, _ = learned_scores(det, stream, windows, index)
    trained = det.score(windows)
    before = np.median(trained[:290])
    assert np.median(trained[600:]) > 10 * before  # the trained model: high for good
    assert np.median(learned[600:]) < 3 * before  # learned within three updates
    np.testing.assert_array_equal(learned[:EVERY], trained[:EVERY])  # the trained model first
    again, _ = learned_scores(det, stream, windows[:450], index[:450])
    np.testing.assert_array_equal(again, learned[:450])  # deterministic


def test_the_daemons_learner_scores_what_offline_scoring_does(learning_model):
    stream, det = learning_model
    windows, index = stream_windows(det, shifted_stream(600, 300))
    offline, _ = learned_scores(det, stream, windows, index)
    learner = StreamLearner(det, stream, det.learning)
    with ThreadPoolExecutor(1) as pool:  # as the daemon: updates on a thread, read later
        pairs = zip(index.tolist(), windows, strict=True)
        handles = [learner.push(i, w, pool.submit) for i, w in pairs]
        models = [det if h is None else h.result() for h in handles]
    online = np.array([m.score(w[None])[0] for m, w in zip(models, windows, strict=True)])
    np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-6)
    assert len({id(m) for m in models}) == index[-1] // EVERY + 1  # the trained one, 5 updates
    assert not np.allclose(online, det.score(windows))  # the updates changed the scores


def lives(frame: pd.DataFrame, end_at: int, seq_again: bool) -> pd.DataFrame:
    """``frame`` as one stream whose end marker follows row ``end_at``; after it the stream
    counts its seq from 0 again (``seq_again``) or goes on."""
    seq = np.arange(len(frame))
    if seq_again:
        seq[end_at + 1 :] -= end_at + 1
    end = (np.arange(len(frame)) == end_at).astype(int)
    return frame.assign(stream="a", seq=seq, end=end)


def test_after_an_end_a_stream_is_scored_learned_and_decided_afresh(learning_model):
    """A sample CSV's ``end``: its stream's first life is scored as if alone, its open event
    resolved at its last window (``ended``), and its second life as a new stream: windows,
    learning and decisions from the start, as the daemon takes an end marker."""
    _, det = learning_model
    one = aemon.SeriesDetector({"": det})
    frame = shifted_stream(900, 300)  # an incident from row 300, still on at the end (row 340)
    t = one.timeline(lives(frame, 340, seq_again=True))
    first = one.timeline(frame.iloc[:341].assign(stream="a"))
    second = one.timeline(frame.iloc[341:].assign(stream="a"))
    assert t.score == first.score + second.score and t.seq == first.seq + second.seq
    (last,) = [e for e in first.events if e["state"] == "open"]  # open when the stream ends
    ended = [e for e in t.events if e.get("ended")]
    assert [(e["event_id"], e["resolved_seq"]) for e in ended] == [(last["event_id"], 340)]
    assert t.events == [*first.events, *ended, *second.events] and second.events
    assert not [e for e in t.events[len(first.events) + 1 :] if e.get("ended")]
    # the same rows without the end: one stream, learned across, another second half
    whole = one.timeline(frame.assign(stream="a"))
    assert whole.score[: len(first)] == first.score and whole.score[len(first) :] != second.score
    # a seq that goes on after the end: a stream met in the middle, which the daemon warms up
    # on its first windows (more here than it has): scored, but no event of it reported
    middle = one.timeline(lives(frame, 340, seq_again=False))
    assert len(middle) == len(t) and middle.events == [*first.events, *ended]
    assert det.meta.window.length == 8 and Rule.from_meta(det.meta).warmup(det.learning) > 900


def test_the_artifact_keeps_the_learning_and_refuses_a_corrupt_one(learning_model, tmp_path):
    out = learning_model[1].save(tmp_path / "m")
    assert Detector.load(out).learning == Learning(EVERY, SPAN, DELAY, 30)
    doc = json.loads((out / artifact.META_FILE).read_text())
    for bad, message in [
        ({"every": 0, "span": 1, "delay": 0, "epochs": 1}, "every must be a whole number"),
        ({"every": 10}, "must name every, span, delay and epochs"),
        ("often", "must name every"),
    ]:
        (out / artifact.META_FILE).write_text(json.dumps({**doc, "learning": bad}))
        with pytest.raises(ArtifactError, match=message):
            Detector.load(out)


def test_an_update_trains_the_same_weights_on_any_number_of_threads():
    """The daemon trains updates in its learning processes on one thread each, offline
    scoring on the caller's thread with torch's default. In float32 a small batch's gradient
    (1 or 4-13 windows, the last of a pass) follows the threads, and the weights differed (most
    of 109,460 on an ASD model, and here); in float64 none do."""
    rng = np.random.default_rng(0)
    t = np.arange(3000)
    wave = np.sin(2 * np.pi * t / 50)[:, None] * rng.uniform(0.5, 5, 19)
    values = np.exp(wave + 0.3 * rng.standard_normal((3000, 19))) * 10.0 ** rng.integers(-2, 5, 19)
    frame = pd.DataFrame(values, columns=[f"m{k}" for k in range(19)])
    frame.insert(0, "timestamp", 1_700_000_000 + 60 * t)
    fitted = aemon.fit_series(frame.iloc[:1600], epochs=1, learn_epochs=2)
    ((stream, det),) = fitted.detectors.items()
    assert det.model_shape == (40, 8)  # 19 values, their distances from the profile, the hour
    windows, _ = stream_windows(det, frame.iloc[1600:])
    windows = windows[: 4 * 128 + 5]  # a last batch of 5: small batches' sums follow threads
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        here = fine_tuned(det, windows, stream, 1)
        torch.set_num_threads(1)
        with ThreadPoolExecutor(1) as pool:
            there = pool.submit(fine_tuned, det, windows, stream, 1).result()
    finally:
        torch.set_num_threads(threads)
    mine, theirs = here.model.state_dict(), there.model.state_dict()
    assert sum(v.numel() for v in mine.values()) > 50_000
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert not all(torch.equal(mine[k], v) for k, v in det.model.state_dict().items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_an_update_learns_on_the_cpu_whatever_the_models_device(learning_model, tmp_path):
    """A daemon scoring on a GPU learns the weights that offline scoring on the CPU does (a GPU
    draws other numbers from the same seed: its daemon once decided other events), and its
    learning processes get the model on the CPU."""
    stream, det = learning_model
    path = det.save(tmp_path / "m")
    cpu, gpu = Detector.load(path, device="cpu"), Detector.load(path, device="cuda")
    windows, _ = stream_windows(det, shifted_stream(600, 300))
    here, there = (
        fine_tuned(cpu, windows[:SPAN], stream, 1),
        fine_tuned(gpu, windows[:SPAN], stream, 1),
    )
    assert there.device.type == "cuda" and next(there.model.parameters()).is_cuda
    mine, theirs = here.model.state_dict(), there.model.state_dict()
    assert all(torch.equal(mine[k], theirs[k].cpu()) for k in mine)
    shipped = pickle.loads(pickle.dumps(_on_cpu(Update(gpu, windows[:SPAN], stream, 1))))
    assert shipped.det.device.type == "cpu"
    assert not any(p.is_cuda for p in shipped.det.model.parameters())


class Kept:
    """A learned-models store that holds one update's weights."""

    def __init__(self, weights: bytes) -> None:
        self.weights = weights

    async def get(self, update: Update, partition: int) -> bytes:
        return self.weights


async def test_an_update_kept_in_the_store_is_used_and_not_trained_again(learning_model):
    stream, det = learning_model
    windows, _ = stream_windows(det, shifted_stream(600, 300))
    update = Update(det, windows[:SPAN], stream, 1)
    fresh = update()
    metrics = Metrics()
    learners = Learners(metrics)
    learners.store = Kept(safetensors.torch.save(fresh.model.state_dict()))  # type: ignore[assignment]
    try:
        restored = await learners._start(det, 0, update)
    finally:
        learners.close()
    get = metrics.registry.get_sample_value
    assert get("aemon_model_updates_restored_total") == 1
    assert get("aemon_model_updates_total") == 0  # no learning process was ever asked
    np.testing.assert_array_equal(restored.score(windows), fresh.score(windows))
    assert not np.array_equal(restored.score(windows), det.score(windows))
    # the key names what the weights are a function of: another window, another key
    assert update.key != Update(det, windows[1 : SPAN + 1], stream, 1).key


async def test_the_store_holds_and_waits_for_only_the_partitions_of_the_input_it_owns(
    learning_model, caplog
):
    """Updates of input partition p live in the topic's partition p mod 2 (here); an update
    wanted before its partition is read waits for it; a partition given up is forgotten, and an
    update waiting for it is trained, not left waiting."""
    stream, det = learning_model
    windows, _ = stream_windows(det, shifted_stream(600, 300))
    update = Update(det, windows[:SPAN], stream, 1)
    history = SimpleNamespace(history=det.learning.history)
    metrics = Metrics()
    store = LearnedStore("learned", None, None, history, metrics, 30, **OURS)  # type: ignore[arg-type]
    store.partitions = 2
    with caplog.at_level(logging.WARNING, logger="aemon.serve"):
        store.own([0, 3])  # input partitions 0 and 3: the topic's 0 and 1
    assert set(store.read) == {0, 1}
    assert "fewer than the input" in caplog.text  # input partition 3 shares the topic's 1
    store.put(update, b"weights", 3)
    assert store.pending[0][0] == 1  # sent to partition 3 mod 2
    held = lambda: metrics.registry.get_sample_value("aemon_learned_models_bytes")  # noqa: E731
    assert held() == len(b"weights")
    waiting = asyncio.ensure_future(store.get(update, 5))  # partition 1: not read yet
    await asyncio.sleep(0)
    assert not waiting.done()
    store.read[1].set()  # read to its end
    assert await waiting == b"weights"
    assert await store.get(Update(det, windows[1 : SPAN + 1], stream, 1), 5) is None
    waiting = asyncio.ensure_future(store.get(update, 2))  # partition 0, not read yet
    await asyncio.sleep(0)
    store.put(Update(det, windows[:SPAN], stream, 2), b"more", 0)  # the topic's partition 0
    assert held() == len(b"weights") + len(b"more")
    store.own([1])  # after a rebalance: input 1 only, the topic's partition 1
    assert await asyncio.wait_for(waiting, 1) is None  # given up: trained, not waited for
    assert set(store.read) == {1} and 0 not in store.kept
    assert held() == len(b"weights")  # what partition 0 held is let go
    assert await store.get(update, 0) is None  # not this daemon's any more


async def test_only_updates_of_the_models_served_are_held(learning_model):
    """The topic also keeps updates of models replaced since, and of another deployment's
    models where one shares it: none is ever looked up here, so none is held in memory, and a
    model replaced while the daemon runs lets go of its updates held, those it trains after
    the swap included."""
    stream, det = learning_model
    windows, _ = stream_windows(det, shifted_stream(600, 300))
    update = Update(det, windows[:SPAN], stream, 1)
    metrics = Metrics()
    models = SimpleNamespace(history=det.learning.history, versions={det.version})
    store = LearnedStore("learned", None, None, models, metrics, 30, **OURS)  # type: ignore[arg-type]
    store.partitions = 1
    store.own([0])
    ours = slot(update, models.history)
    replaced = ours.replace(det.version.encode(), b"0123456789ab", 1)
    headers = [("update", update.key.encode())]
    served = {v.encode() for v in models.versions}
    store._take(0, replaced, b"old weights, 4 times as long" * 4, headers, served)
    store._take(0, ours, b"weights", headers, served)
    store.read[0].set()
    assert await store.get(update, 0) == b"weights"
    assert list(store.kept[0]) == [ours]
    held = lambda: metrics.registry.get_sample_value("aemon_learned_models_bytes")  # noqa: E731
    assert held() == len(b"weights")
    store._serving(served)  # the next read, nothing replaced: all stays
    assert list(store.kept[0]) == [ours]
    now = store._serving({b"0123456789ab"})  # the model replaced while the daemon runs: let go
    assert store.kept[0] == {} and held() == 0
    store.put(update, b"late weights", 0)  # an update of the replaced model done after the swap
    assert list(store.kept[0]) == [ours]  # held at once, as every update this daemon trains
    store._take(0, ours, b"late weights", headers, now)  # read back: let go
    assert store.kept[0] == {} and held() == 0


def test_weights_that_are_not_the_models_are_refused(learning_model):
    _, det = learning_model
    other = torch.nn.Linear(2, 2).state_dict()
    for weights in (b"not safetensors", safetensors.torch.save(other)):
        with pytest.raises(REFUSED):
            with_weights(det, weights)


async def test_the_store_holds_the_newest_anchors_of_each_input_partition():
    """Anchors read back from the topic after this daemon kept newer ones (its reader lags its
    producer) never replace them; an unreadable record is left out."""
    store = LearnedStore("learned", None, None, None, Metrics(), 30, **OURS)  # type: ignore[arg-type]
    store.partitions = 2
    store.own([3])  # the topic's partition 1
    store._anchored(3, 500, {"cpu": (480, 120)})  # kept by this daemon for commit 500
    store._read_anchors(
        OUR_ANCHORS + b"3", orjson.dumps({"commit": 400, "anchors": {"cpu": [390, 98]}})
    )
    store._read_anchors(OUR_ANCHORS + b"3", b"not json")
    store.read[1].set()
    assert await store.anchors_of(3) == {"cpu": (480, 120)}
    store._read_anchors(
        OUR_ANCHORS + b"3", orjson.dumps({"commit": 600, "anchors": {"cpu": [590, 150]}})
    )
    assert await store.anchors_of(3) == {"cpu": (590, 150)}  # a newer one (another replica's)
    assert await store.anchors_of(1) == {}  # none kept


async def test_anchors_of_another_group_or_input_in_the_same_topic_are_not_read():
    """Each group numbers its streams from where it first read them: daemons of two groups (or
    two inputs whose streams share names) that share the learned-models topic keep their
    anchors under their own keys, and each reads only its own."""
    producer = FakeProducer()
    theirs = {"group": "aemon-canary", "input_topic": "telegraf"}
    others = LearnedStore("learned", producer, None, None, Metrics(), 30, **theirs)  # type: ignore[arg-type]
    other_input = LearnedStore(
        "learned",
        producer,
        None,
        None,
        Metrics(),
        30,
        group="aemon",
        input_topic="pumps",  # type: ignore[arg-type]
    )
    ours = LearnedStore("learned", producer, None, None, Metrics(), 30, **OURS)  # type: ignore[arg-type]
    for store in (others, other_input, ours):
        store.partitions = 2
        store.own([3])
    assert await others.keep_anchors(3, 900, {"cpu": (880, 12)})  # counted from a later start
    assert await other_input.keep_anchors(3, 700, {"cpu": (690, 345)})
    assert await ours.keep_anchors(3, 500, {"cpu": (480, 120)})
    again = LearnedStore("learned", None, None, None, Metrics(), 30, **OURS)  # type: ignore[arg-type]
    again.partitions = 2
    again.own([3])
    for record in producer.acked["learned"]:  # the topic's partition 1, as a restart reads it
        again._read_anchors(record["key"], record["value"])
    again.read[1].set()
    assert len({r["key"] for r in producer.acked["learned"]}) == 3
    assert await again.anchors_of(3) == {"cpu": (480, 120)}  # not the newer commits of others


async def test_the_store_lets_go_of_anchors_its_partition_no_longer_keeps():
    """Once this daemon keeps a partition's anchors for a commit past an anchor that they no
    longer name (an ended stream's, or one read back from before its end), it holds that
    anchor no more: what it holds does not grow with every stream that ever ended."""
    store = LearnedStore("learned", FakeProducer(), None, None, Metrics(), 30, **OURS)  # type: ignore[arg-type]
    store.partitions = 2
    store.own([3])
    store._read_anchors(
        OUR_ANCHORS + b"3", orjson.dumps({"commit": 90, "anchors": {"old": [95, 7], "q": [300, 9]}})
    )
    assert await store.keep_anchors(3, 100, {"a": (100, 5), "ended": (121, 0)})
    assert await store.keep_anchors(3, 130, {"a": (130, 6)})
    store.read[1].set()
    assert await store.anchors_of(3) == {"a": (130, 6), "q": (300, 9)}  # q: not passed yet


async def test_many_anchors_are_kept_in_records_of_bounded_size_and_read_back_whole():
    """A partition of thousands of streams without seq (a Telegraf fleet) keeps its anchors in
    several records, none over the limit (Kafka refuses records over 1 MB by default, and a
    partition whose anchors are refused is never committed); a daemon reading them back holds
    every stream's. A newer commit whose parts were not all kept leaves the others' older
    anchors in place, each still true of its stream."""
    producer = FakeProducer()
    store = LearnedStore(
        "learned",
        producer,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Metrics(),
        30,
        part_bytes=4096,
        **OURS,
    )
    store.partitions = 2
    store.own([3])
    anchors = {f"host-{i:04d}.example.com cpu_usage_user": (10 * i, i) for i in range(500)}
    anchors |= {"\x01" * 100 + str(i): (10 * i + 5, i) for i in range(50)}  # JSON: 6 bytes each
    assert await store.keep_anchors(3, 7000, anchors)
    records = producer.acked["learned"]
    assert len(records) > 5 and all(len(r["value"]) <= 4096 for r in records)
    assert len({r["key"] for r in records}) == len(records)
    assert records[0]["key"] == OUR_ANCHORS + b"3" and records[1]["key"] == OUR_ANCHORS + b"3\x1f1"
    again = LearnedStore("learned", None, None, None, Metrics(), 30, **OURS)  # type: ignore[arg-type]
    again.partitions = 2
    again.own([3])
    newer = {s: (o + 5, q + 1) for s, (o, q) in anchors.items()}
    newer_records = store._anchor_records(3, 9000, newer)
    for key, value in [(r["key"], r["value"]) for r in records] + newer_records[:2]:
        again._read_anchors(key, value)  # the newer commit's other parts never kept
    again.read[1].set()
    kept_newer = set().union(*(orjson.loads(v)["anchors"] for _, v in newer_records[:2]))
    assert 0 < len(kept_newer) < len(anchors)
    assert await again.anchors_of(3) == {
        s: newer[s] if s in kept_newer else at for s, at in anchors.items()
    }
