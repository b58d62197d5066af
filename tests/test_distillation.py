"""Distillation: the loss equals a NumPy reference at T=1 and T=4; the teacher stays frozen; the exported
student is a plain softmax classifier; bad T / alpha / class counts raise."""

import numpy as np
import pytest


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _reference_loss(y, t_logits, s_logits, T, alpha):
    t_logits, s_logits = t_logits.astype("float64"), s_logits.astype("float64")
    ce = -np.log(_softmax(s_logits)[np.arange(len(y)), y]).mean()
    p, q = _softmax(t_logits / T), _softmax(s_logits / T)
    kl = (p * np.log(p / q)).sum(-1).mean()
    return alpha * ce + (1 - alpha) * T**2 * kl


def _models(classes=5, shape=(6, 6, 1)):
    import keras

    def clf(name, units, seed):
        inp = keras.Input(shape)
        x = keras.layers.Flatten(name="flatten")(inp)
        x = keras.layers.Dense(units, activation="relu", name="fc", kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
        x = keras.layers.Dense(
            classes, activation="softmax", name="predictions",
            kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed + 1),
        )(x)
        return keras.Model(inp, x, name=name)

    return clf("teacher", 32, 0), clf("student", 8, 10)


def _batch(n=12, shape=(6, 6, 1), classes=5):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (n, *shape)).astype("float32"), rng.integers(0, classes, n).astype("int32")


@pytest.mark.parametrize("T", [1.0, 4.0])
@pytest.mark.parametrize("alpha", [0.1, 0.7])
def test_loss_equals_numpy_reference(T, alpha):
    from kerasvk.training.distillation import compile_distiller, distillation_loss, make_distiller, to_logits

    teacher, student = _models()
    x, y = _batch()
    t_logits, s_logits = to_logits(teacher)(x).numpy(), to_logits(student)(x).numpy()
    # the logits clone is exact: softmax(logits) == the original model's probabilities
    np.testing.assert_allclose(_softmax(t_logits), teacher(x).numpy(), rtol=1e-5, atol=1e-6)
    ref = _reference_loss(y, t_logits, s_logits, T, alpha)
    np.testing.assert_allclose(float(distillation_loss(y, t_logits, s_logits, temperature=T, alpha=alpha)), ref, rtol=1e-5)

    distiller = compile_distiller(make_distiller(teacher, student, temperature=T, alpha=alpha))
    loss = distiller.compute_loss(x=x, y=y, y_pred=distiller(x, training=False), training=False)
    np.testing.assert_allclose(float(loss), ref, rtol=1e-5)


def test_distillation_trains_student_only_and_exports_plain_classifier(tmp_path):
    import keras
    import tensorflow as tf

    from kerasvk.export import export_model
    from kerasvk.training.distillation import distill, to_logits

    teacher, student = _models()
    x, y = _batch(48)
    t_before = [np.array(w) for w in teacher.get_weights()]
    s_before = [np.array(w) for w in student.get_weights()]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    plain, hist = distill(teacher, student, ds, epochs=3, temperature=4.0, alpha=0.3, optimizer=keras.optimizers.Adam(1e-2))
    assert {"student_loss", "distillation_loss", "total_loss", "accuracy"} <= set(hist.history)
    assert hist.history["total_loss"][-1] < hist.history["total_loss"][0]
    for a, b in zip(t_before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)  # the teacher is frozen
    for a, b in zip(s_before, student.get_weights()):
        np.testing.assert_array_equal(a, b)  # the caller's student object is left alone
    # the result is a plain classifier: same layer names, softmax output, trained weights
    assert [layer.name for layer in plain.layers] == [layer.name for layer in student.layers]
    assert plain.get_layer("predictions").activation.__name__ == "softmax"
    probs = plain(x).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert not np.allclose(probs, student(x).numpy())
    np.testing.assert_allclose(to_logits(plain)(x).numpy().argmax(-1), probs.argmax(-1))
    out = export_model(plain, base=tmp_path / "saved", name="student")
    served = tf.saved_model.load(str(out)).signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"].numpy(), probs, rtol=1e-5, atol=1e-6)


def test_bad_inputs():
    import keras

    from kerasvk.training.distillation import distillation_loss, make_distiller, to_logits

    teacher, student = _models()
    for T in (0, -1.0, "4"):
        with pytest.raises(ValueError, match="temperature must be a number > 0"):
            make_distiller(teacher, student, temperature=T)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        distillation_loss(np.zeros(2, "int32"), np.zeros((2, 5)), np.zeros((2, 5)), temperature=0.0)
    with pytest.raises(ValueError, match=r"alpha .* in \[0, 1\]"):
        make_distiller(teacher, student, alpha=1.5)
    other, _ = _models(classes=3)
    with pytest.raises(ValueError, match="same classes.*5 classes.*3 classes"):
        make_distiller(teacher, other)
    other_shape, _ = _models(shape=(7, 7, 1))
    with pytest.raises(ValueError, match="same input shape"):
        make_distiller(other_shape, student)
    inp = keras.Input((3,))
    sig = keras.Model(inp, keras.layers.Dense(2, activation="sigmoid")(inp))
    with pytest.raises(ValueError, match="'softmax' .* or linear"):
        to_logits(sig)
