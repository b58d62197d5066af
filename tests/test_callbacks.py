"""kerasvk.training.callbacks.TimeBudget, driven by a fake clock: no sleeping, no wall-clock asserts."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasvk.training.callbacks import TimeBudget


class FakeClock:
    """A clock that moves one second at the end of every training batch (as a callback before TimeBudget)."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Tick(keras.callbacks.Callback):
    def __init__(self, clock, dt=1.0):
        super().__init__()
        self.clock, self.dt = clock, dt

    def on_train_batch_end(self, batch, logs=None):
        self.clock.t += self.dt


def _fit(budget, clock, epochs=20, steps_per_epoch=3):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x, y = np.ones((6, 2), "float32"), np.zeros((6, 1), "float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2).repeat()
    hist = model.fit(ds, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=[Tick(clock), budget], verbose=0)
    return model, hist.history


def test_schedule_formula_warmup_then_cosine_over_time():
    tb = TimeBudget(10, peak_lr=1.0, warmup_steps=4, alpha=0.1)
    assert tb.learning_rate(0, 0.0) == pytest.approx(0.25)
    assert tb.learning_rate(3, 0.0) == pytest.approx(1.0)
    assert tb.learning_rate(100, 5.0) == pytest.approx(0.1 + 0.9 * 0.5)
    assert tb.learning_rate(100, 10.0) == pytest.approx(0.1)
    assert tb.learning_rate(100, 50.0) == pytest.approx(0.1)  # past the budget: stays at alpha · peak


def test_stops_after_the_first_batch_past_the_budget_and_logs_lr_and_steps():
    clock = FakeClock()
    tb = TimeBudget(3.5, peak_lr=0.2, warmup_steps=2, alpha=0.05, clock=clock)
    model, hist = _fit(tb, clock)
    assert tb.steps == 4  # elapsed 4 s > 3.5 s after the 4th batch
    assert tb.elapsed() == pytest.approx(4.0)
    assert hist["steps"] == [3, 4]
    # the last batch (step 3) began at elapsed = 3 s
    expected = 0.2 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 3 / 3.5)))
    assert hist["lr"][-1] == pytest.approx(expected, rel=1e-5)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(expected, rel=1e-5)


def test_epoch_check_and_no_schedule_leave_the_learning_rate_alone():
    clock = FakeClock()
    tb = TimeBudget(3.5, check="epoch", clock=clock)
    model, hist = _fit(tb, clock)
    assert tb.steps == 6 and len(hist["loss"]) == 2  # whole epochs only: stops at the end of the 2nd
    assert "lr" not in hist and "steps" not in hist
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seconds": 0}, "seconds"),
        ({"seconds": 1, "peak_lr": -1.0}, "peak_lr"),
        ({"seconds": 1, "warmup_steps": 0}, "warmup_steps"),
        ({"seconds": 1, "alpha": 2.0}, "alpha"),
        ({"seconds": 1, "check": "step"}, "batch, epoch"),
    ],
)
def test_bad_arguments_name_the_allowed_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TimeBudget(**kwargs)
