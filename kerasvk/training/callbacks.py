"""Training callbacks shared by the recipes: a wall-time budget with a time-based LR schedule, and
sample grids of a generative model during training.

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

__all__ = ["TimeBudget", "SampleGridCallback"]

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
        image_grid(self._images(), path, cols=self.cols, title=f"{self.model.name} {tag}")
        self.paths.append(path)
        return path

    def on_train_begin(self, logs=None):
        if not self.paths:
            self.save("epoch000")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.save(f"epoch{epoch + 1:03d}")


class EpochHistory(keras.callbacks.Callback):
    """Writes the run's ``history.json`` after every epoch (atomically), continuing ``prior``.

    A killed run so keeps the record of its completed epochs, and the rerun that resumes it (keras'
    ``BackupAndRestore``) appends to that record instead of starting a new one.
    """

    def __init__(self, path, prior=None):
        super().__init__()
        self.path = path
        self.history = {k: list(v) for k, v in (prior or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        from kerasvk.io import write_json

        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        write_json(self.history, self.path)
