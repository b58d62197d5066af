"""LR schedules: formulas at chosen t, warm-up, per-epoch callback, LR in history, errors."""

import math

import numpy as np
import pytest


def _at(schedule, t):
    import keras

    return float(keras.ops.convert_to_numpy(schedule(t)))


def test_step_decay_formula():
    from kerasvk.training.schedules import make_schedule

    s = make_schedule("step", 0.1, 100, gamma=0.5, step_size=10)
    for t in (0, 9, 10, 25, 99):
        assert _at(s, t) == pytest.approx(0.1 * 0.5 ** (t // 10), rel=1e-6)


def test_cosine_formula_with_min_lr():
    from kerasvk.training.schedules import make_schedule

    lr_max, lr_min, T = 0.2, 0.01, 50
    s = make_schedule("cosine", lr_max, T, min_lr=lr_min)
    for t in (0, 7, 25, 49, 50, 80):
        expect = lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * min(t, T) / T))
        assert _at(s, t) == pytest.approx(expect, rel=1e-5)


def test_exponential_formula():
    from kerasvk.training.schedules import make_schedule

    s = make_schedule("exponential", 0.05, 100, k=0.03)
    for t in (0, 1, 17, 60):
        assert _at(s, t) == pytest.approx(0.05 * math.exp(-0.03 * t), rel=1e-5)
    default = make_schedule("exponential", 1.0, 11)  # k = ln(100)/11 → lr falls 100× by t = 11
    assert _at(default, 11) == pytest.approx(0.01, rel=1e-5)


@pytest.mark.parametrize(
    "name, opts", [("cosine", {}), ("step", {"gamma": 0.5, "step_size": 4}), ("exponential", {"k": 0.1})]
)
def test_linear_warmup_then_schedule(name, opts):
    from kerasvk.training.schedules import make_schedule

    w, lr = 5, 0.1
    warm, plain = make_schedule(name, lr, 40, warmup=w, **opts), make_schedule(name, lr, 35, **opts)
    for t in range(w):
        assert _at(warm, t) == pytest.approx(lr * t / w, rel=1e-6, abs=1e-9)
    for t in (w, w + 3, w + 20):
        assert _at(warm, t) == pytest.approx(_at(plain, t - w), rel=1e-5)


def test_schedule_drives_optimizer_per_step_and_serializes():
    import keras

    from kerasvk.training.schedules import LinearWarmup, make_schedule

    s = make_schedule("step", 0.1, warmup=2, gamma=0.1, step_size=3)
    opt = keras.optimizers.SGD(s)
    opt.iterations.assign(4)  # 2 steps after warm-up → first plateau
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(0.1)
    back = LinearWarmup.from_config(s.get_config())
    assert [_at(back, t) for t in range(8)] == pytest.approx([_at(s, t) for t in range(8)])


def test_per_epoch_callback_sets_and_logs_lr(tmp_path):
    import keras

    from kerasvk.training.schedules import LearningRateLogger, schedule_callback

    x = np.random.default_rng(0).random((16, 3)).astype("float32")
    y = x.sum(1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.5), "mse")
    hist = model.fit(
        x,
        y,
        epochs=4,
        batch_size=8,
        verbose=0,
        callbacks=[schedule_callback("step", 0.08, 4, gamma=0.5, step_size=1)],
    )
    assert hist.history["learning_rate"] == pytest.approx([0.08, 0.04, 0.02, 0.01])

    # per-epoch warm-up: no epoch trains at rate 0 (epoch 0 did before), the ramp ends at the peak
    for warmup in (1, 2, 3):
        model.compile(keras.optimizers.SGD(0.5), "mse")
        hist = model.fit(x, y, epochs=warmup + 2, batch_size=8, verbose=0,
                         callbacks=[schedule_callback("constant", 0.1, warmup + 2, warmup=warmup)])
        ramp = [0.1 * (e + 1) / (warmup + 1) for e in range(warmup)]
        assert hist.history["learning_rate"] == pytest.approx([*ramp, 0.1, 0.1])
        assert min(hist.history["learning_rate"]) > 0
    cb = schedule_callback("cosine", 0.1, 10, warmup=2)
    assert cb.schedule(0) == pytest.approx(0.1 / 3) and cb.schedule(2) == pytest.approx(0.1)

    # With a per-step schedule in the optimizer, the logger records the rate each epoch.
    from kerasvk.training.schedules import make_schedule

    model.compile(keras.optimizers.SGD(make_schedule("exponential", 0.1, k=0.5)), "mse")
    hist = model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[LearningRateLogger()])
    # 2 steps/epoch: after epoch 1 the optimizer has taken 2 steps, after epoch 2 four.
    assert hist.history["learning_rate"] == pytest.approx(
        [0.1 * math.exp(-1.0), 0.1 * math.exp(-2.0)], rel=1e-5
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m("cosin", 0.1, 10), "Did you mean cosine"),
        (lambda m: m("cosine", -0.1, 10), "positive"),
        (lambda m: m("cosine", 0.1, 5, warmup=5), "greater than the warm-up"),
        (lambda m: m("step", 0.1, 10, gamma=-1, step_size=2), "gamma"),
        (lambda m: m("cosine", 0.1, 10, warmup=-1), "warmup"),
        (lambda m: m("cosine", 0.1, 10, min_lr=0.5), "min_lr"),
    ],
)
def test_bad_schedule_args(call, match):
    from kerasvk.training.schedules import make_schedule

    with pytest.raises(ValueError, match=match):
        call(make_schedule)


def test_parse_and_plot_schedule(tmp_path):
    from kerasvk.training.schedules import parse_schedule, plot_schedule

    assert parse_schedule("step:gamma=0.5,step_size=10") == ("step", {"gamma": 0.5, "step_size": 10})
    with pytest.raises(ValueError, match="takes"):
        parse_schedule("cosine:gamma=0.5")
    p = plot_schedule("cosine", 0.1, 30, tmp_path / "s.png", warmup=3)
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_reduce_on_plateau_is_keras():
    import keras

    from kerasvk.training.schedules import reduce_on_plateau

    cb = reduce_on_plateau(patience=2)
    assert isinstance(cb, keras.callbacks.ReduceLROnPlateau) and cb.patience == 2


def test_cli_plot_schedule_and_bad_schedule(tmp_path, capsys):
    from kerasvk.cli import main

    out = tmp_path / "lr.png"
    assert (
        main(
            [
                "plot-schedule",
                "step:gamma=0.5,step_size=5",
                "--epochs",
                "20",
                "--warmup",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot-schedule", "cosin", "--out", str(out)]) == 2
    assert main(["train", "lenet5", "--schedule", "linear", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("kerasvk: error:") for line in err)
    assert not (tmp_path / "run").exists()
