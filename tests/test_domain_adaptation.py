"""Gradient reversal math (exact), serialization, and DANN training on a tiny shifted task."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest


def _grad(fn, x):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y.numpy(), tape.gradient(y, x).numpy()


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 3.0])
def test_gradient_reversal_is_identity_forward_and_scales_gradient_by_minus_lambda(lam):
    import tensorflow as tf

    from kerasvk.layers.gradient_reversal import GradientReversal

    layer = GradientReversal(lam)
    x = np.array([[-2.0, -0.5, 0.0, 1.5, 3.0]], "float32")
    # f(x) = sum(x^3): df/dx = 3x^2; through the reversal: -lam * 3x^2
    y, g = _grad(lambda t: tf.reduce_sum(layer(t) ** 3), x)
    y_ref, g_ref = _grad(lambda t: tf.reduce_sum(t**3), x)
    assert y == y_ref
    np.testing.assert_array_equal(layer(x).numpy(), x)  # exact identity
    np.testing.assert_array_equal(g, (-np.float32(lam)) * g_ref)


def test_gradient_reversal_set_lambda_changes_scale_and_blocks_only_own_path():
    import tensorflow as tf

    from kerasvk.layers.gradient_reversal import GradientReversal

    layer = GradientReversal(1.0)
    layer.set_lambda(0.25)
    x = np.array([1.0, 2.0], "float32")
    # y = sum(2·grl(x)) + sum(x): gradient = -0.25·2 + 1 = 0.5
    _, g = _grad(lambda t: tf.reduce_sum(2.0 * layer(t)) + tf.reduce_sum(t), x)
    np.testing.assert_array_equal(g, [0.5, 0.5])
    with pytest.raises(ValueError, match=">= 0"):
        layer.set_lambda(-1)
    with pytest.raises(ValueError, match="lambda_ must be a real number >= 0"):
        GradientReversal(-0.1)


def test_gradient_reversal_serializes_without_lambda_layers(tmp_path):
    import keras

    from kerasvk.layers.gradient_reversal import GradientReversal

    inp = keras.Input((3,))
    out = keras.layers.Dense(2, name="d")(GradientReversal(0.7, name="grl")(inp))
    model = keras.Model(inp, out)
    model.get_layer("grl").set_lambda(0.3)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    grl = loaded.get_layer("grl")
    assert isinstance(grl, GradientReversal)
    assert grl.get_config()["lambda_"] == 0.7
    assert float(grl.lambda_.numpy()) == pytest.approx(0.3)  # current value restored from the weights
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_gradient_reversal_on_jax_backend():
    pytest.importorskip("jax")
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        from kerasvk.layers.gradient_reversal import reverse_gradient
        x = jnp.array([-1.0, 0.5, 2.0])
        g = jax.grad(lambda t: jnp.sum(reverse_gradient(t, 0.5) ** 2))(x)
        np.testing.assert_array_equal(np.asarray(g), -0.5 * 2 * np.asarray(x))
        np.testing.assert_array_equal(np.asarray(reverse_gradient(x, 0.5)), np.asarray(x))
        print("ok")
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_generic_reversal_formula_is_exact():
    """The stop-gradient form used on other backends (PyTorch): exact forward and exactly −λ·grad."""
    import tensorflow as tf

    from kerasvk.layers.gradient_reversal import _reverse_generic

    x = np.array([-3.0, 0.1, 7.0], "float32")
    y, g = _grad(lambda t: tf.reduce_sum(_reverse_generic(t, tf.constant(0.5)) * t), x)
    # d/dx [grl(x)·x] = −0.5·x + x = 0.5·x
    np.testing.assert_array_equal(_reverse_generic(tf.constant(x), tf.constant(0.5)).numpy(), x)
    np.testing.assert_allclose(g, 0.5 * x, rtol=0, atol=1e-7)


def test_dann_lambda_ramp():
    from kerasvk.training.domain_adaptation import dann_lambda

    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0, lambda_max=0.5) == pytest.approx(0.5 * (2 / (1 + math.exp(-10)) - 1))
    assert dann_lambda(3.0) == dann_lambda(1.0)


def test_dann_learning_rate_annealing():
    import keras

    from kerasvk.training.domain_adaptation import DANNLearningRate

    sched = DANNLearningRate(0.03, total_steps=200)
    for step, p in ((0, 0.0), (50, 0.25), (200, 1.0), (400, 1.0)):
        assert float(sched(step)) == pytest.approx(0.03 / (1 + 10 * p) ** 0.75, rel=1e-6)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(sched))
    assert float(again(50)) == float(sched(50))
    with pytest.raises(ValueError, match="initial_learning_rate must be > 0"):
        DANNLearningRate(0.0, 10)


def _shifted_digits():
    from kerasvk.data import load_arrays

    x, y, _ = load_arrays("digits", image_size=(28, 28))
    keep = y < 3
    x, y = x[keep][:120], y[keep][:120]  # 96 training images: 3 steps an epoch
    return x, y, 255 - x  # target: inverted colours


def test_dann_trains_and_reverses_domain_gradient(tmp_path):
    import keras
    import tensorflow as tf

    from kerasvk.data import load
    from kerasvk.training.domain_adaptation import DANN, build_dann, dann_dataset, fit_dann

    x, y, xt = _shifted_digits()
    model = build_dann("lenet5", 3, input_shape=(28, 28, 1), domain_units=16)
    src_r = load((x, y), batch_size=32, val_split=0.0, test_split=0.2, seed=0)
    tgt_r = load((xt, y), batch_size=32, val_split=0.0, test_split=0.2, seed=0)

    # One batch: the encoder's gradient from the domain loss is exactly −λ × the gradient without reversal.
    (xs, xtb), ys = next(iter(dann_dataset(src_r.train, tgt_r.train)))
    model.reversal.set_lambda(1.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))

    def domain_grads(lam):
        with tf.GradientTape() as tape:
            feats = model.encoder(tf.concat([xs, xtb], 0))
            logits = model.domain_head(model.reversal(feats, lambda_=lam))
            d = tf.concat([tf.zeros((len(xs), 1)), tf.ones((len(xtb), 1))], 0)
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(d, logits, from_logits=True))
        return tape.gradient(loss, model.encoder.trainable_weights + model.domain_head.trainable_weights)

    g_rev, g_plain = domain_grads(0.6), domain_grads(-1.0)  # λ=-1 passes the plain gradient (·+1)
    n_enc = len(model.encoder.trainable_weights)
    for a, b in zip(g_rev[:n_enc], g_plain[:n_enc]):
        np.testing.assert_allclose(a.numpy(), -0.6 * b.numpy(), rtol=1e-4, atol=1e-6)  # sums reordered
    for a, b in zip(g_rev[n_enc:], g_plain[n_enc:]):  # the domain head itself is not reversed
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    hist = fit_dann(model, src_r.train, tgt_r.train, epochs=2)
    assert {"loss", "label_loss", "domain_loss", "accuracy", "domain_accuracy", "lambda"} <= set(hist.history)
    assert all(np.isfinite(v).all() for v in hist.history.values())
    steps = model.ramp_steps
    assert int(model.optimizer.iterations.numpy()) == steps  # λ ramp covered the whole run
    assert hist.history["lambda"][0] < hist.history["lambda"][1] <= 1.0

    clf = model.classifier()
    xb = next(iter(tgt_r.test))[0]
    np.testing.assert_allclose(clf(xb).numpy(), model(xb).numpy(), atol=1e-6)
    model.save(tmp_path / "dann.keras")
    loaded = keras.saving.load_model(tmp_path / "dann.keras", safe_mode=True)
    assert isinstance(loaded, DANN)
    np.testing.assert_allclose(loaded(xb).numpy(), model(xb).numpy(), atol=1e-6)


def test_dann_bad_inputs():
    from kerasvk.training.domain_adaptation import build_dann

    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        build_dann("lenet5", 1)
    with pytest.raises(ValueError, match="registered model name or a keras.Model"):
        build_dann(42, 3)
    with pytest.raises(ValueError, match="ramp_steps must be an integer >= 1"):
        build_dann("lenet5", 3, ramp_steps=0)
    with pytest.raises(ValueError, match="pooling must be 'avg' or 'flatten'"):
        build_dann("lenet5", 3, input_shape=(28, 28, 1), pooling="max")


def test_build_dann_flatten_features_and_hidden_label_layer():
    from kerasvk.training.domain_adaptation import build_dann

    avg = build_dann("lenet5", 3, input_shape=(32, 32, 1))
    flat = build_dann("lenet5", 3, input_shape=(32, 32, 1), pooling="flatten", label_units=20, domain_units=8)
    assert avg.encoder.outputs[0].shape[-1] == 120  # c5 at 32×32 input: 1×1×120
    assert flat.encoder.outputs[0].shape[-1] == 120
    assert any(layer.name == "flatten" for layer in flat.encoder.layers)
    assert [layer.name for layer in flat.label_head.layers] == ["label_fc", "predictions"]
    assert flat.label_head.get_layer("label_fc").units == 20
    assert flat.classifier()(np.zeros((2, 32, 32, 1), "float32")).shape == (2, 3)


def test_digits_encoder_is_ganins_mnist_network():
    """conv 32@5×5 → pool → conv 48@5×5 → pool on 32×32×3, flattened (5·5·48 = 1,200) → Dense(100) → 10:
    2,432 + 38,448 + 120,100 + 1,010 = 161,990 parameters."""
    from kerasvk.training import build_dann, digits_encoder

    model = build_dann(digits_encoder((32, 32, 3)), 10, pooling="flatten", label_units=100, domain_units=100)
    assert tuple(model.encoder.outputs[0].shape) == (None, 1200)
    assert model.classifier().count_params() == 161_990


def test_digits_encoder_is_a_registered_classifier_and_the_old_name_still_builds_the_encoder():
    """Registered with the one classifier signature: with its head it is the same 161,990-parameter network;
    ``kerasvk.training.domain_adaptation.digits_encoder`` stays the headless encoder old callers expect."""
    import kerasvk
    from kerasvk.training import build_dann
    from kerasvk.training.domain_adaptation import digits_encoder

    from kerasvk.registry import get_spec

    spec = get_spec("digits_encoder")
    assert (spec.task, spec.family) == ("classification", "dann")
    full = kerasvk.build("digits_encoder")
    assert full.count_params() == 161_990 and full.get_layer("predictions").units == 10
    headless = kerasvk.build("digits_encoder", include_top=False, pooling="avg", num_classes=None)
    assert tuple(headless.output.shape) == (None, 48)
    old = digits_encoder((32, 32, 3))
    assert old.name == "encoder" and tuple(old.output.shape) == (None, 5, 5, 48)
    by_name = build_dann(
        "digits_encoder", 10, input_shape=(32, 32, 3), pooling="flatten", label_units=100, domain_units=100
    )
    assert by_name.classifier().count_params() == 161_990
    with pytest.raises(ValueError, match="input height and width must be >= 14"):
        kerasvk.build("digits_encoder", input_shape=(12, 12, 3))
