"""ensemble(): equals NumPy averaging / weighting / voting; one .keras file and one SavedModel; bad inputs."""

import numpy as np
import pytest


def _members(n=3, classes=4, shape=(8, 8, 1), seed=0):
    import keras

    members = []
    for i in range(n):
        inp = keras.Input(shape)
        x = keras.layers.Flatten(name="flatten")(inp)
        x = keras.layers.Dense(
            classes,
            activation="softmax",
            name="predictions",
            kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed + i),
        )(x)
        members.append(keras.Model(inp, x, name="member"))  # same names on purpose
    return members


def _x(n=16, shape=(8, 8, 1)):
    return np.random.default_rng(1).uniform(0, 1, (n, *shape)).astype("float32")


def test_average_and_weighted_equal_numpy():
    from kerasvk.training.ensemble import ensemble

    members, x = _members(), _x()
    probs = np.stack([m.predict(x, verbose=0) for m in members])
    np.testing.assert_allclose(ensemble(members)(x).numpy(), probs.mean(0), rtol=1e-6, atol=1e-7)
    w = np.array([1.0, 3.0, 0.5])
    expected = np.tensordot(w / w.sum(), probs, axes=1)
    got = ensemble(members, "weighted", weights=list(w))(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_vote_equals_numpy_vote_fractions():
    from kerasvk.training.ensemble import ensemble

    members, x = _members(n=4), _x(32)
    preds = np.stack([m.predict(x, verbose=0).argmax(-1) for m in members])  # (members, batch)
    expected = np.stack([(preds == c).mean(0) for c in range(4)], axis=-1)
    got = ensemble(members, "vote")(x).numpy()
    np.testing.assert_array_equal(got, expected.astype("float32"))
    # majority class (ties → lowest index, as np.argmax)
    np.testing.assert_array_equal(got.argmax(-1), expected.argmax(-1))
    assert len(set(map(tuple, preds.T))) > 1  # the members do disagree on this data


def test_from_logits_members():
    import keras

    from kerasvk.training.ensemble import ensemble

    inp = keras.Input((5,))
    a = keras.Model(inp, keras.layers.Dense(3, name="predictions")(inp))
    b = keras.Model(inp, keras.layers.Dense(3, name="predictions")(inp))
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    sm = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)  # noqa: E731
    expected = (sm(a(x).numpy()) + sm(b(x).numpy())) / 2
    np.testing.assert_allclose(ensemble([a, b], from_logits=True)(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_ensemble_keras_roundtrip_and_single_savedmodel(tmp_path):
    import keras
    import tensorflow as tf

    from kerasvk.export import export_model
    from kerasvk.training.ensemble import ensemble

    members, x = _members(), _x()
    model = ensemble(members, "weighted", weights=[2, 1, 1], name="ens")
    ref = model(x).numpy()
    model.save(tmp_path / "ens.keras")
    loaded = keras.saving.load_model(tmp_path / "ens.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(x).numpy(), ref, rtol=1e-6, atol=1e-7)
    out = export_model(model, base=tmp_path / "saved", name="ens")
    served = tf.saved_model.load(str(out)).signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"].numpy(), ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(served["class_id"].numpy(), ref.argmax(-1))


def test_bad_inputs_raise_clear_errors():
    import keras

    from kerasvk.training.ensemble import ensemble

    members = _members()
    other = _members(n=1, classes=5)[0]
    with pytest.raises(ValueError, match="same number of classes.*4 classes.*5 classes"):
        ensemble([*members, other])
    with pytest.raises(ValueError, match="same input shape"):
        ensemble([members[0], _members(n=1, shape=(6, 6, 1))[0]])
    with pytest.raises(ValueError, match="'average', 'vote', 'weighted'"):
        ensemble(members, "median")
    with pytest.raises(ValueError, match="one weight per member"):
        ensemble(members, "weighted", weights=[1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        ensemble(members, "weighted", weights=[1, -2, 1])
    with pytest.raises(ValueError, match="only used with method='weighted'"):
        ensemble(members, "average", weights=[1, 1, 1])
    with pytest.raises(ValueError, match="at least two"):
        ensemble(members[:1])
    inp = keras.Input((4,))
    two_out = keras.Model(inp, [keras.layers.Dense(4)(inp), keras.layers.Dense(4)(inp)])
    with pytest.raises(ValueError, match="one image input and one"):
        ensemble([two_out, two_out])
