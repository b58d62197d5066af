"""Learning-rate schedules with linear warm-up: per step (LearningRateSchedule) or per epoch (callback).

Formulas, with ``t`` counted *after* the warm-up (``t = step − warmup``):

    step         lr₀ · γ^⌊t/s⌋                                  keras ExponentialDecay(staircase=True)
    cosine       lr_min + ½(lr₀ − lr_min)(1 + cos(π·min(t, T)/T))  keras CosineDecay (alpha = lr_min/lr₀)
    exponential  lr₀ · e^(−k·t)                                   keras ExponentialDecay(e^−k per step)
    constant     lr₀

Warm-up (``warmup`` steps/epochs ``w``): ``lr = lr₀ · t'/w`` for ``t' < w`` (linear from 0), then the
schedule. Cosine uses keras' own warm-up (``warmup_target``/``warmup_steps``); the others are wrapped
in :class:`LinearWarmup`, which follows the same convention.

``make_schedule(...)`` is counted in optimizer steps; ``schedule_callback(...)`` evaluates the same
schedule at the epoch index and sets the optimizer's rate at each epoch start. :class:`LearningRateLogger`
writes the rate into ``logs`` (so into History, CSVLogger and TensorBoard) each epoch — put it before
those callbacks. ``keras.callbacks.ReduceLROnPlateau`` is re-exported as :func:`reduce_on_plateau`.
"""

from __future__ import annotations

import math

import keras

SCHEDULES = ("constant", "step", "cosine", "exponential")


@keras.saving.register_keras_serializable(package="kerasvk")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """``start + (schedule(0) − start)·t/w`` for ``t < w``, then ``schedule(t − w)``."""

    def __init__(self, schedule, warmup_steps, start_lr=0.0):
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0. Received: {warmup_steps!r}")
        self.schedule = schedule
        self.warmup_steps = warmup_steps
        self.start_lr = float(start_lr)

    def _inner(self, step):
        s = self.schedule
        if isinstance(s, keras.optimizers.schedules.LearningRateSchedule):
            return s(step)
        return keras.ops.convert_to_tensor(float(s), "float32")

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        if self.warmup_steps == 0:
            return self._inner(step)
        w = float(self.warmup_steps)
        peak = ops.cast(self._inner(ops.convert_to_tensor(0.0)), "float32")
        warm = self.start_lr + (peak - self.start_lr) * step / w
        after = ops.cast(self._inner(ops.maximum(step - w, 0.0)), "float32")
        return ops.where(step < w, warm, after)

    def get_config(self):
        s = self.schedule
        return {
            "schedule": (
                keras.optimizers.schedules.serialize(s)
                if isinstance(s, keras.optimizers.schedules.LearningRateSchedule)
                else float(s)
            ),
            "warmup_steps": self.warmup_steps,
            "start_lr": self.start_lr,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(**config)


def _check(name, lr, total, warmup, kw):
    if name not in SCHEDULES:
        import difflib

        close = difflib.get_close_matches(str(name), SCHEDULES, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ValueError(f"Unknown schedule {name!r}.{hint} Allowed: {', '.join(SCHEDULES)}.")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0:
        raise ValueError(f"Learning rate must be a positive number. Received: lr={lr!r}")
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0. Received: warmup={warmup!r}")
    if name == "cosine" and (not isinstance(total, int) or total <= warmup):
        raise ValueError(
            "cosine needs total steps/epochs T greater than the warm-up. "
            f"Received: total={total!r}, warmup={warmup}"
        )
    allowed = {"step": {"gamma", "step_size"}, "cosine": {"min_lr"}, "exponential": {"k"}, "constant": set()}[
        name
    ]
    extra = set(kw) - allowed
    if extra:
        raise ValueError(
            f"Schedule {name!r} takes {', '.join(sorted(allowed)) or 'no options'}; "
            f"received {', '.join(sorted(extra))}."
        )
    for key in ("gamma", "k", "step_size", "min_lr"):
        v = kw.get(key)
        if v is not None and (
            not isinstance(v, (int, float)) or v < 0 or (key in ("gamma", "step_size") and v <= 0)
        ):
            raise ValueError(
                f"{key} must be {'> 0' if key in ('gamma', 'step_size') else '>= 0'}. Received: {key}={v!r}"
            )
    if name == "cosine" and kw.get("min_lr", 0.0) > lr:
        raise ValueError(f"min_lr must be <= lr. Received: min_lr={kw['min_lr']!r}, lr={lr!r}")


def make_schedule(
    name="cosine", lr=1e-3, total=None, *, warmup=0, gamma=0.1, step_size=None, min_lr=0.0, k=None
):
    """A ``LearningRateSchedule`` (``total``, ``warmup``, ``step_size`` in the same unit: steps or epochs).

    - step: ``gamma`` (γ), ``step_size`` (s; default ``total // 3``)
    - cosine: ``total`` (T, warm-up included: decay lasts ``total − warmup``), ``min_lr``
    - exponential: ``k`` (default ``ln(100)/(total − warmup)``: the rate falls 100× by the end)
    """
    kw = {
        "step": {"gamma": gamma, "step_size": step_size},
        "cosine": {"min_lr": min_lr},
        "exponential": {"k": k},
    }.get(name, {})
    _check(name, lr, total, warmup, kw)
    sch = keras.optimizers.schedules
    lr = float(lr)
    if name == "cosine":
        decay = total - warmup
        alpha = float(min_lr) / lr
        if warmup:
            return sch.CosineDecay(0.0, decay, alpha=alpha, warmup_target=lr, warmup_steps=warmup)
        return sch.CosineDecay(lr, decay, alpha=alpha)
    if name == "step":
        if step_size is None:
            if not isinstance(total, int) or total - warmup < 3:
                raise ValueError(
                    "step schedule needs step_size=... (or total >= warmup + 3 to default to a third)."
                )
            step_size = (total - warmup) // 3
        inner = sch.ExponentialDecay(lr, int(step_size), float(gamma), staircase=True)
    elif name == "exponential":
        if k is None:
            if not isinstance(total, int) or total <= warmup:
                raise ValueError(
                    "exponential schedule needs k=... (or total > warmup to default to a 100× decay)."
                )
            k = math.log(100.0) / (total - warmup)
        inner = sch.ExponentialDecay(lr, 1, math.exp(-float(k)))
    else:
        inner = lr
    return (
        LinearWarmup(inner, warmup)
        if warmup
        else (inner if not isinstance(inner, float) else LinearWarmup(inner, 0))
    )


def schedule_values(schedule, total):
    """The schedule at t = 0..total−1 as Python floats (for plots and tests)."""
    return [float(keras.ops.convert_to_numpy(schedule(t))) for t in range(int(total))]


class LearningRateLogger(keras.callbacks.Callback):
    """Writes the optimizer's current rate into ``logs["learning_rate"]`` at each epoch end.

    Works for plain rates and for ``LearningRateSchedule``s (the rate reached at the epoch's last
    step). Place it before History/CSVLogger/TensorBoard so they record it.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "learning_rate" not in logs:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def schedule_callback(name="cosine", lr=1e-3, epochs=None, *, warmup=0, verbose=0, **kw):
    """The same schedules per epoch: ``keras.callbacks.LearningRateScheduler`` over the epoch index.

    ``epochs`` and ``warmup`` count epochs. The callback also logs ``learning_rate`` each epoch.
    Warm-up epoch ``e < w`` trains at ``lr(w) · (e + 1)/(w + 1)``: the ramp of the per-step schedule
    sampled so that no epoch trains at rate 0 (evaluated at the epoch index, the first warm-up epoch
    would be ``0 · lr`` — a whole wasted epoch), reaching ``lr(w)`` at the first epoch after it.
    """
    schedule = make_schedule(name, lr, epochs, warmup=warmup, **kw)

    def value(t):
        return float(keras.ops.convert_to_numpy(schedule(t)))

    def per_epoch(epoch, current=None):
        if epoch < warmup:
            return value(warmup) * (epoch + 1) / (warmup + 1)
        return value(epoch)

    return keras.callbacks.LearningRateScheduler(per_epoch, verbose=verbose)


def reduce_on_plateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-6, **kw):
    """``keras.callbacks.ReduceLROnPlateau`` with sensible defaults (it logs ``learning_rate`` too)."""
    return keras.callbacks.ReduceLROnPlateau(
        monitor=monitor, factor=factor, patience=patience, min_lr=min_lr, **kw
    )


def parse_schedule(spec):
    """``"cosine"``, ``"step:gamma=0.5,step_size=10"``, ``"exponential:k=0.05"`` → (name, options)."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"Schedule must be a string like 'cosine' or 'step:gamma=0.5'. Received: {spec!r}")
    name, _, rest = spec.partition(":")
    opts = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"Schedule option {item!r} must be key=value (in {spec!r}).")
        try:
            num = float(value)
        except ValueError:
            raise ValueError(f"Schedule option {key} takes a number. Received: {item!r}") from None
        opts[key.strip()] = int(num) if key.strip() == "step_size" else num
    _check(name, 1.0, 10**9, 0, {k: v for k, v in opts.items()})
    return name, opts


def plot_schedule(spec="cosine", lr=1e-3, total=100, path="schedule.png", *, warmup=0, unit="epoch"):
    """Draw a schedule over ``total`` steps/epochs into a PNG (atomically)."""
    import matplotlib

    from kerasvk import io

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, opts = parse_schedule(spec)
    if not isinstance(total, int) or total < 1:
        raise ValueError(f"total must be a positive integer. Received: total={total!r}")
    values = schedule_values(make_schedule(name, lr, total, warmup=warmup, **opts), total)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(total), values, lw=2)
    if warmup:
        ax.axvline(warmup, color="gray", ls="--", lw=1, label=f"warm-up ends ({warmup})")
        ax.legend()
    ax.set_xlabel(unit)
    ax.set_ylabel("learning rate")
    ax.set_title(f"{spec} (lr={lr:g}, warmup={warmup})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return io.save_figure(fig, path, dpi=100)
