"""The learners of :mod:`aemon.core.learning`: an update fine-tuned, a stream's learner (the
daemon's, one window at a time) and a stream's windows scored offline through the same learner."""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aemon.core.learning import Learning

if TYPE_CHECKING:
    from aemon.core.detector import Detector


def update_seed(seed: int, stream: str, update: int) -> int:
    raw = f"learn\x1f{seed}\x1f{stream}\x1f{update}".encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "little") >> 1


def fine_tuned(det: Detector, windows: np.ndarray, stream: str, update: int) -> Detector:
    """``det`` (the trained detector) fine-tuned on raw windows ``[n, *input_shape]`` (none:
    ``det`` itself), as update ``update`` of ``stream``; ``det`` is left unchanged.

    The update trains a float64 copy on the CPU, seeded by the stream and the update (its own
    generator, and the global one forked for families that sample with it), and keeps it as
    float32 on ``det``'s device. In float32 a small batch's gradient (the last of a pass)
    depends on the number of CPU threads and the weights drift apart; in float64 those sums
    differ at 1e-16, below what float32 keeps, so offline scoring and a daemon on any number of
    threads get the same weights. On the CPU whatever ``det``'s device: a GPU draws other
    random numbers from the same seed and sums in another order, and a daemon on a GPU would
    learn other weights than offline scoring, or a replica without one, under the same key."""
    import torch

    learning = det.learning
    if learning is None or not len(windows):
        return det
    recipe = det.meta.training.get("recipe", {}).get("fit", {})
    lr, batch = float(recipe.get("lr", 1e-3)), int(recipe.get("batch_size", 128))
    loss = str(recipe.get("loss", "l1"))
    seed = update_seed(int(det.meta.training.get("seed", 0)), stream, update)
    with torch.random.fork_rng([]), torch.inference_mode(False), torch.enable_grad():
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = copy.deepcopy(det.model).cpu().double()
        x = torch.from_numpy(det.inputs(windows)).double()
        opts = model.optimizers(lr, 0.0)
        model.train()
        for _ in range(learning.epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch):
                clean = x[perm[i : i + batch]]
                model.fit_step(clean, clean, loss, opts, gen)
    return det.learned(model.float().to(det.device).eval())


@dataclass(frozen=True)
class Update:
    """Update ``number`` of ``stream``'s model ``det``, fine-tuned on ``windows`` when called.

    Its weights are a function of :attr:`key` alone (the trained model's version, the stream,
    the update's number and a digest of the windows), so weights kept under that key (the
    daemon's learned-models topic) are the ones calling it would compute again."""

    det: Detector
    windows: np.ndarray
    stream: str
    number: int

    def __call__(self) -> Detector:
        return fine_tuned(self.det, self.windows, self.stream, self.number)

    @functools.cached_property
    def key(self) -> str:  # computed once: the store looks it up, then keeps under it
        digest = hashlib.sha256(np.ascontiguousarray(self.windows, dtype=np.float32).data)
        return f"{self.det.version}\x1f{self.stream}\x1f{self.number}\x1f{digest.hexdigest()}"


def learned_scores(
    det: Detector, stream: str, windows: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """A stream's raw windows ``[n, *input_shape]`` (window indices ``index``, increasing)
    scored each by the model in effect at it, as :meth:`Detector.score_series` returns them:
    the offline side of the daemon's :class:`StreamLearner`, through the same learner."""
    learning = det.learning
    if learning is None or not len(windows):
        return det.score_series(windows)
    learner = StreamLearner(det, stream, learning)
    models = [
        learner.push(int(i), w, lambda update: update()) or det
        for i, w in zip(index, windows, strict=True)
    ]
    scores = np.empty(len(windows), dtype=np.float32)
    channels = None
    starts = [0, *(i for i in range(1, len(models)) if models[i] is not models[i - 1])]
    for a, b in zip(starts, [*starts[1:], len(models)], strict=True):
        s, c = models[a].score_series(windows[a:b])
        scores[a:b] = s
        if c is not None:
            if channels is None:
                channels = np.empty((len(windows), c.shape[1]), dtype=np.float32)
            channels[a:b] = c
    return scores, channels


class StreamLearner:
    """One stream's learning in the daemon: keeps the samples its next updates train on (those of
    its last ``every + delay + span`` windows, in one preallocated ring: a sample once, not once
    per window holding it), starts each update (through ``start``, e.g. in a worker process) once
    its last training window is in hand, and says which update each window is scored by
    (:func:`learned_scores` offline)."""

    def __init__(self, det: Detector, stream: str, learning: Learning) -> None:
        self.det, self.stream, self.learning = det, stream, learning
        window = det.meta.window
        self.length, self.stride, self.shape = window.length, window.stride, det.input_shape
        size = learning.history * self.stride + self.length
        self.samples = np.empty((size, int(np.prod(self.shape)) // self.length), np.float32)
        # which of the samples that share a slot it holds: seq // size (-1: none yet)
        self.laps = np.full(size, -1, dtype=np.int32)
        self.updates: dict[int, Any] = {}  # update number -> what ``start`` returned

    def _slots(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ring's slots ``[n, length]`` of the samples of windows ``index`` and their laps."""
        seqs = index[:, None] * self.stride + np.arange(self.length)
        return np.divmod(seqs, len(self.laps))[::-1]

    def push(self, index: int, window: np.ndarray, start: Callable[[Update], Any]) -> Any | None:
        """Remember window ``index`` (a copy of its samples); return the handle of the update that
        scores it (None: the trained model). ``start(update)`` computes ``update`` (calls it, or
        finds its weights kept) and returns a handle to the result."""
        slots, laps = self._slots(np.array([index]))
        self.samples[slots[0]] = window.reshape(-1, self.length).T
        self.laps[slots[0]] = laps[0]
        now = self.learning.update_of(index)
        if now and now not in self.updates:  # a gap in the stream skipped its start
            self._start(now, start)
        if now + 1 not in self.updates and index + 1 >= self.learning.training_range(now + 1)[1]:
            self._start(now + 1, start)  # its last training window is here
        for old in [u for u in self.updates if u < now]:
            del self.updates[old]
        return self.updates[now] if now else None

    def _start(self, update: int, start: Callable[[Update], Any]) -> None:
        """Update ``update`` on the windows of its training range that came, in window order.
        Their samples are all still in the ring: an update starts at most ``every + delay +
        span`` windows after its first one (``delay`` after its last; after a gap, at the first
        window it scores), and the ring holds the samples of that many windows."""
        lo, hi = self.learning.training_range(update)
        if hi <= lo:  # nothing to train on yet (the first updates): the trained model
            self.updates[update] = None
            return
        slots, laps = self._slots(np.arange(lo, hi))
        came = (self.laps[slots] == laps).all(axis=1)  # every sample of the window is here
        train = self.samples[slots[came]].transpose(0, 2, 1).reshape(-1, *self.shape)
        self.updates[update] = start(Update(self.det, train, self.stream, update))
