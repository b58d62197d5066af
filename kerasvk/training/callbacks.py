"""Training callbacks: the run folder's fault-tolerance set (backup with RNG state, finite-only
checkpoints, a non-finite-loss stop that says where), a wall-time budget with a time-based LR schedule,
and sample grids of a generative model during training.

``RunBackup`` is keras' ``BackupAndRestore`` made whole for bit-exact resumes: besides the weights and
optimizer state (which ``save_weights`` covers) it records every ``keras.random.SeedGenerator`` state of
the model (dropout, VAE sampling, GAN noise — ``save_weights`` leaves those out) and the global seed
generator, the state of the callbacks that have one (``ResumableEarlyStopping``: patience counter, best
value and weights), whether training had been told to stop, and the training seconds of every attempt so
far; it writes atomically (the weights file first, under a new name, then the metadata that names it), so
a kill at any moment leaves a consistent backup. ``FiniteCheckpoint`` keeps the best (or
last) epoch whose losses and weights are finite, written through ``kerasvk.io``. ``StopOnNonFinite``
stops at the first batch whose loss (any ``*loss`` key, so GANs too) is NaN/Inf and remembers the epoch
and step.

``TimeBudget`` stops training after ``seconds`` of wall time and, optionally (``peak_lr``), lays a linear
warm-up + cosine learning rate over that *time* budget (the number of steps that fit depends on the
machine's load, so a step-count schedule would end early or late). Its clock is injectable, so tests
drive it without sleeping.

``SampleGridCallback`` saves a grid of images from fixed noise every few epochs (figures through
``kerasvk.plots``, written atomically).
"""

from __future__ import annotations

import math
import os
import time

import keras
import numpy as np
from keras import ops

__all__ = [
    "TimeBudget",
    "SampleGridCallback",
    "EpochHistory",
    "csv_log_text",
    "RunBackup",
    "ResumableEarlyStopping",
    "FiniteCheckpoint",
    "StopOnNonFinite",
    "KillAfterSteps",
    "seed_generator_states",
    "KILL_ENV",
]

# Test-only fault injection: ``KERASVK_TEST_SIGKILL_AFTER_STEPS=N`` makes ``kerasvk.training.train`` SIGKILL
# its own process after the N-th training batch of this process (how the resume tests kill a run mid-epoch
# at a deterministic point, without sleeps or timing races).
KILL_ENV = "KERASVK_TEST_SIGKILL_AFTER_STEPS"

STOP_CHECKS = ("batch", "epoch")


class TimeBudget(keras.callbacks.Callback):
    """Stop training after ``seconds`` of wall time; with ``peak_lr``, warm-up + cosine LR over that time.

    - ``peak_lr=None``: the learning rate is left alone (only the budget is enforced).
    - ``peak_lr`` set: before each batch the rate is ``peak_lr · min(1, (steps + 1) / warmup_steps) ·
      (alpha + (1 - alpha) · ½(1 + cos(π·f)))`` with ``f = min(1, elapsed / seconds)``, so it always ends
      near ``alpha · peak_lr`` when time is up. ``lr`` and ``steps`` are added to the epoch logs (history).
    - ``check="batch"`` stops after the first batch past the budget; ``"epoch"`` only at an epoch end
      (so every epoch is complete and validated).
    - ``clock``: a function returning seconds (default ``time.perf_counter``); tests pass a fake one.

    ``steps`` counts the training batches run; ``elapsed()`` is the time since training began.
    """

    def __init__(self, seconds, peak_lr=None, warmup_steps=50, alpha=0.05, *, check="batch", clock=None):
        super().__init__()
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"seconds must be a number > 0. Received: seconds={seconds!r}")
        if peak_lr is not None and not (isinstance(peak_lr, (int, float)) and peak_lr > 0):
            raise ValueError(f"peak_lr must be None (no schedule) or a number > 0. Received: peak_lr={peak_lr!r}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"warmup_steps must be an integer >= 1. Received: warmup_steps={warmup_steps!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha!r}")
        if check not in STOP_CHECKS:
            raise ValueError(f"check must be one of {', '.join(STOP_CHECKS)}. Received: check={check!r}")
        self.seconds, self.peak_lr = float(seconds), peak_lr
        self.warmup_steps, self.alpha, self.check = warmup_steps, float(alpha), check
        self.clock = clock or time.perf_counter
        self.start, self.steps = None, 0

    def elapsed(self) -> float:
        return 0.0 if self.start is None else self.clock() - self.start

    def learning_rate(self, steps, elapsed) -> float:
        """The scheduled rate before batch number ``steps`` (0-based) at ``elapsed`` seconds."""
        f = min(1.0, elapsed / self.seconds)
        cosine = self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + math.cos(math.pi * f))
        return self.peak_lr * min(1.0, (steps + 1) / self.warmup_steps) * cosine

    def on_train_begin(self, logs=None):
        self.start = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        if self.peak_lr is not None:
            self.model.optimizer.learning_rate.assign(self.learning_rate(self.steps, self.elapsed()))

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.check == "batch" and self.elapsed() > self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.peak_lr is not None and logs is not None:
            logs["lr"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs["steps"] = self.steps
        if self.check == "epoch" and self.elapsed() > self.seconds:
            self.model.stop_training = True


def mosaic(images, cols=8, gap=1):
    """``(N, H, W, C)`` images in [0, 1] (or uint8) → one ``(rows·(H+gap)-gap, cols·(W+gap)-gap, C)`` image,
    row-major, with ``gap`` pixels of white between cells (unused cells white too)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    images = images.astype("float32") / (255.0 if images.dtype == np.uint8 else 1.0)
    n, h, w, c = images.shape
    cols = max(1, min(int(cols), n))
    rows = -(-n // cols)
    out = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, c), "float32")
    for i, img in enumerate(np.clip(images, 0.0, 1.0)):
        r, k = divmod(i, cols)
        out[r * (h + gap): r * (h + gap) + h, k * (w + gap): k * (w + gap) + w] = img
    return out


class SampleGridCallback(keras.callbacks.Callback):
    """Save a grid of images from the same fixed noise every ``every`` epochs: ``folder/prefix_epochNNN.png``.

    Works with any model that has ``generate(noise)`` (GAN) or ``decode(z)`` (VAE). Files are written
    atomically (``kerasvk.plots.image_grid``), so a run folder shows training progress.
    """

    def __init__(self, folder, num_images=64, every=1, seed=0, prefix="samples", cols=8):
        super().__init__()
        if int(every) < 1 or int(num_images) < 1:
            raise ValueError(
                f"every and num_images must be >= 1. Received: every={every}, num_images={num_images}"
            )
        self.folder, self.num_images, self.every, self.seed = (
            str(folder),
            int(num_images),
            int(every),
            int(seed),
        )
        self.prefix, self.cols = prefix, int(cols)
        self.noise = None
        self.paths = []

    def _images(self):
        fn = self.model.generate if hasattr(self.model, "generate") else self.model.decode
        if self.noise is None:
            rng = np.random.default_rng(self.seed)
            self.noise = rng.standard_normal((self.num_images, self.model.latent_dim)).astype("float32")
        return np.asarray(ops.convert_to_numpy(fn(self.noise)))

    def save(self, tag):
        from kerasvk.plots import image_grid

        path = os.path.join(self.folder, f"{self.prefix}_{tag}.png")
        # one tiled image in one axes: drawing 64 matplotlib axes per epoch cost seconds, this milliseconds
        image_grid([mosaic(self._images(), self.cols)], path, cols=1, title=f"{self.model.name} {tag}",
                   cell=max(1.4, 0.5 * self.cols))
        self.paths.append(path)
        return path

    def on_train_begin(self, logs=None):
        # a resumed run (BackupAndRestore restored trained weights) keeps the untrained grid it already has
        if not self.paths and not os.path.exists(os.path.join(self.folder, f"{self.prefix}_epoch000.png")):
            self.save("epoch000")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.save(f"epoch{epoch + 1:03d}")


def csv_log_text(history) -> str:
    """``training_log.csv``'s text (``CSVLogger``'s layout: ``epoch``, then the sorted keys) of a whole history."""
    keys = sorted(history)
    n = max((len(v) for v in history.values()), default=0)
    rows = [",".join(["epoch", *keys])]
    rows += [",".join([str(e), *(repr(history[k][e]) if e < len(history[k]) else "" for k in keys)]) for e in range(n)]
    return "\n".join(rows) + "\n"


class EpochHistory(keras.callbacks.Callback):
    """Writes the run's ``history.json`` (and, with ``csv_path``, ``training_log.csv``) after every epoch,
    atomically, continuing ``prior``.

    A killed run so keeps the record of its completed epochs, and the rerun that resumes it (keras'
    ``BackupAndRestore``) appends to that record instead of starting a new one. The CSV is rewritten
    whole from the record each epoch (temporary file, then ``os.replace``), where keras' ``CSVLogger``
    appends to the file in place: a kill mid-line left half a row, and a symlink at that path was followed.
    """

    def __init__(self, path, prior=None, csv_path=None):
        super().__init__()
        self.path, self.csv_path = path, csv_path
        self.history = {k: list(v) for k, v in (prior or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        from kerasvk.io import write_json, write_text

        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        write_json(self.history, self.path)
        if self.csv_path is not None:
            write_text(self.csv_path, csv_log_text(self.history))


# ------------------------------------------------------------------------------------ fault tolerance
def _is_finite(value) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype="float64"))))
    except (TypeError, ValueError):
        return True  # not a number (e.g. a string): nothing to check


def _loss_keys(logs):
    return [k for k in (logs or {}) if "loss" in k]


def weights_are_finite(model) -> bool:
    return all(np.all(np.isfinite(np.asarray(ops.convert_to_numpy(w)))) for w in model.weights)


def _seed_generators(model):
    """Every ``SeedGenerator`` of ``model`` (its layers', nested models' and its own, and those of the
    augmentation layers its train step runs: ``--augment-on device``), in a stable order."""
    from kerasvk.training.device_input import step_layers

    found, seen = [], set()
    extra = [inner for layer in step_layers(model) for inner in layer._flatten_layers(include_self=True)]
    for layer in [*model._flatten_layers(include_self=True, recursive=True), *extra]:
        for sg in getattr(layer, "_seed_generators", ()):
            if id(sg) not in seen:
                seen.add(id(sg))
                found.append(sg)
    from keras.src.backend.common import global_state

    g = global_state.get_global_attribute("global_seed_generator")
    if g is not None and id(g) not in seen:
        found.append(g)
    return found


def seed_generator_states(model) -> list:
    """``[(state variable path, [ints])]`` of every seed generator of ``model`` (see ``_seed_generators``)."""
    return [(sg.state.path, [int(v) for v in np.asarray(ops.convert_to_numpy(sg.state)).ravel()])
            for sg in _seed_generators(model)]


def restore_seed_generator_states(model, states) -> None:
    """Assign states recorded by ``seed_generator_states`` (same model: same generators in the same order)."""
    gens = _seed_generators(model)
    if len(gens) != len(states):
        raise ValueError(
            f"The backup records {len(states)} random-seed generators but the model has {len(gens)}: it was "
            "made by a different model or configuration. Delete the run's backup/ folder to start over."
        )
    for sg, (_, values) in zip(gens, states):
        sg.state.assign(np.asarray(values, dtype=np.asarray(ops.convert_to_numpy(sg.state)).dtype).reshape(sg.state.shape))


class RunBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` (end of every epoch) that also restores RNG and callback state and never half-writes.

    ``backup/training_metadata.json`` holds ``{"epoch", "batch", "weights", "seed_states", "stopped",
    "callbacks", "attempts"}``; ``weights`` names the file (``epochNNNN.weights.h5``: model weights and
    optimizer state) written, atomically, *before* the metadata, and older weight files are removed only
    after. A kill during a backup so leaves the previous complete backup in force. The data position is not
    stored here: the trainer makes epoch ``e``'s batches a function of (seed, e) and skips to them on resume.

    - ``stateful``: callbacks whose state is part of the run (``backup_name``, ``backup_state()`` →
      ``(JSON-able dict, list of arrays or None)``, ``restore_backup_state(state, arrays)``), e.g.
      ``ResumableEarlyStopping``. They must come *before* this callback in the list, so the state backed up
      after epoch ``e`` is the one after they saw epoch ``e``; their arrays go to ``epochNNNN.NAME.npz``.
    - ``stopped``: a callback had set ``model.stop_training`` by the backup (early stopping): a resume runs no
      further epoch (``_initial_epoch`` = the run's ``epochs``), so it ends where the uninterrupted run ended.
    - ``attempts``: ``[{"resumed_after_epoch", "train_seconds"}]``, one per process that trained this run,
      the seconds up to its last backup (``attempts()`` adds this one, up to now): the trainer's
      ``train_seconds`` is their sum, so a resumed run reports its whole training time.

    Backups are per epoch only. keras' ``BackupAndRestore(save_freq=N)`` also saves mid-epoch, but a resume
    restarts the interrupted epoch at its first batch (keras 3's ``fit`` has an ``initial_epoch``, no initial
    step: the batches before the backup are applied twice) and the epoch's metric accumulators are not in
    ``save_weights``, so its logged loss would differ: not bit-exact.
    """

    def __init__(self, backup_dir, stateful=()):
        # kept after fit: the trainer removes it once model.keras and metrics.json are written, so a kill
        # during those final writes still resumes (with nothing left to train) instead of starting over
        super().__init__(str(backup_dir), save_freq="epoch", double_checkpoint=False, delete_checkpoint=False)
        self.stateful = tuple(stateful)
        self.restored_epoch = 0
        self.prior_attempts = []
        self._start = None

    def read_metadata(self):
        import json

        if not os.path.isfile(self._training_metadata_path):
            return None
        try:
            with open(self._training_metadata_path) as f:
                meta = json.load(f)
            int(meta["epoch"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"The backup {self._training_metadata_path} is unreadable ({type(e).__name__}); delete "
                f"{self.backup_dir} to start the run over."
            ) from None
        return meta

    def elapsed(self) -> float:
        """Seconds since this process began training (``on_train_begin``)."""
        return 0.0 if self._start is None else time.perf_counter() - self._start

    def attempts(self) -> list:
        """Every attempt at this run: the earlier ones (as of the restored backup), then this one so far."""
        return [*self.prior_attempts, {"resumed_after_epoch": self.restored_epoch, "train_seconds": round(self.elapsed(), 2)}]

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._load_model()

    def _load_model(self):
        meta = self.read_metadata()
        if meta is None:
            return
        weights = os.path.join(self.backup_dir, meta.get("weights", "latest.weights.h5"))
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        if "seed_states" in meta:
            restore_seed_generator_states(self.model, meta["seed_states"])
        states = meta.get("callbacks", {})
        for cb in self.stateful:
            state = states.get(cb.backup_name)
            if state is not None:
                arrays = None
                if state.get("arrays"):
                    with np.load(os.path.join(self.backup_dir, state["arrays"])) as f:
                        arrays = [f[f"arr_{i}"] for i in range(len(f.files))]
                cb.restore_backup_state(state, arrays)
        self.prior_attempts = list(meta.get("attempts", []))
        self.restored_epoch = int(meta["epoch"])
        self.model._initial_epoch = self.restored_epoch
        if meta.get("stopped"):  # training had ended (early stopping): no further epoch
            self.model._initial_epoch = max(self.restored_epoch, int(self.params.get("epochs") or 0))

    def on_epoch_end(self, epoch, logs=None):
        losses = [(logs or {})[k] for k in _loss_keys(logs)]
        if all(_is_finite(v) for v in losses) and weights_are_finite(self.model):
            super().on_epoch_end(epoch, logs)  # a diverged epoch is never backed up

    def _save_model(self):
        from kerasvk.io import atomic_path, write_json

        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch{self._current_epoch:04d}.weights.h5"
        with atomic_path(os.path.join(self.backup_dir, name), suffix=".weights.h5") as tmp:
            self.model.save_weights(str(tmp), overwrite=True)
        keep, states = {name}, {}
        for cb in self.stateful:
            state, arrays = cb.backup_state()
            if arrays is not None:
                file = f"epoch{self._current_epoch:04d}.{cb.backup_name}.npz"
                with atomic_path(os.path.join(self.backup_dir, file), suffix=".npz") as tmp:
                    np.savez(str(tmp), *arrays)
                state = {**state, "arrays": file}
                keep.add(file)
            states[cb.backup_name] = state
        write_json(
            {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name,
             "seed_states": seed_generator_states(self.model), "stopped": bool(self.model.stop_training),
             "callbacks": states, "attempts": self.attempts()},
            self._training_metadata_path,
        )
        for f in os.listdir(self.backup_dir):
            if f.endswith((".weights.h5", ".npz")) and f not in keep and not f.startswith("."):
                os.remove(os.path.join(self.backup_dir, f))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """keras' ``EarlyStopping`` whose state survives a kill: ``RunBackup(stateful=[this])`` backs up its
    patience counter (``wait``), ``best`` value and epoch, ``stopped_epoch`` and ``best_weights`` after every
    epoch and restores them on resume (keras' own resets them in ``on_train_begin``, so a resumed run counted
    patience from zero, took its first epoch as the best and restored that epoch's weights at the end).
    """

    backup_name = "early_stopping"

    def backup_state(self):
        best = getattr(self, "best", None)
        state = {"wait": int(self.wait), "stopped_epoch": int(self.stopped_epoch),
                 "best": None if best is None else float(best), "best_epoch": int(getattr(self, "best_epoch", 0)),
                 "has_best_weights": self.best_weights is not None}
        return state, (list(self.best_weights) if self.best_weights is not None else None)

    def restore_backup_state(self, state, arrays):
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.best_weights = list(arrays) if state.get("has_best_weights") and arrays is not None else None


class StopOnNonFinite(keras.callbacks.Callback):
    """``TerminateOnNaN`` for every ``*loss`` key (GANs log ``d_loss``/``g_loss``), remembering where.

    ``where``: ``(epoch, step, key, value)`` of the first non-finite batch loss (1-based epoch and step),
    or None.
    """

    def __init__(self):
        super().__init__()
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for key in _loss_keys(logs):
            if not _is_finite(logs[key]):
                if self.where is None:
                    self.where = (self._epoch + 1, batch + 1, key, float(np.asarray(logs[key])))
                self.model.stop_training = True
                return


class FiniteCheckpoint(keras.callbacks.Callback):
    """Keep the best epoch by ``monitor`` (lower is better), or with ``monitor=None`` the last, as a
    ``.keras`` file — only epochs whose losses and weights are all finite, written atomically.

    ``best``: a resumed run's best ``monitor`` value so far (the new checkpoint must beat it).
    ``saved_epoch``: the 1-based epoch the file holds (None: none written by this callback).
    """

    def __init__(self, path, monitor="val_loss", best=None, saved_epoch=None):
        super().__init__()
        self.path, self.monitor = str(path), monitor
        self.best = float("inf") if best is None else float(best)
        self.saved_epoch = saved_epoch

    def on_epoch_end(self, epoch, logs=None):
        from kerasvk.io import save_model

        logs = logs or {}
        if not all(_is_finite(logs[k]) for k in _loss_keys(logs)) or not weights_are_finite(self.model):
            return
        if self.monitor is not None:
            value = logs.get(self.monitor)
            if value is None or not _is_finite(value) or not float(value) < self.best:
                return
            self.best = float(value)
        save_model(self.model, self.path)
        self.saved_epoch = epoch + 1


class KillAfterSteps(keras.callbacks.Callback):
    """Test-only: SIGKILL this process after its ``steps``-th training batch (see ``KILL_ENV``)."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen = int(steps), 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen >= self.steps:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
