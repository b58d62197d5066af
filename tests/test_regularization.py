"""Regularization: penalties equal λΣw² / λΣ|w| by hand, survive saving; label smoothing; errors."""

import numpy as np
import pytest


def _small_model():
    import keras

    inp = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.1, name="drop")(x)
    out = keras.layers.Dense(4, name="predictions")(x)
    return keras.Model(inp, out)


def _kernels(model):
    return [np.asarray(model.get_layer(n).kernel) for n in ("conv", "predictions")]


@pytest.mark.parametrize("l1, l2", [(0.0, 1e-3), (2e-3, 0.0), (1e-3, 5e-4)])
def test_penalty_equals_hand_computed_sum(l1, l2):
    from kerasvk.training.regularization import apply_weight_regularization, regularization_loss

    model = _small_model()
    assert regularization_loss(model) == 0.0
    assert apply_weight_regularization(model, l1=l1, l2=l2) == 2  # two kernels, no biases, no BN
    ks = _kernels(model)
    expect = sum(l1 * np.abs(k).sum() + l2 * np.square(k).sum() for k in ks)
    assert regularization_loss(model) == pytest.approx(expect, rel=1e-5)


def test_penalty_enters_training_loss_and_survives_saving(tmp_path):
    import keras

    from kerasvk.training.regularization import apply_weight_regularization, regularization_loss

    model = _small_model()
    apply_weight_regularization(model, l2=0.01)
    model.compile("sgd", keras.losses.MeanSquaredError())
    x = np.random.default_rng(0).random((4, 6, 6, 2)).astype("float32")
    y = np.zeros((4, 4), "float32")
    data_loss = float(np.mean(np.square(np.asarray(model(x, training=False)))))
    total = model.evaluate(x, y, verbose=0)
    assert total == pytest.approx(data_loss + regularization_loss(model), rel=1e-4)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert regularization_loss(loaded) == pytest.approx(regularization_loss(model), rel=1e-6)


def test_label_smoothing_loss_matches_formula():
    from kerasvk.training import classification_loss_and_metrics

    alpha, k = 0.1, 4
    loss, _ = classification_loss_and_metrics(one_hot=True, label_smoothing=alpha)
    y = np.eye(k, dtype="float32")[[0, 2]]
    p = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.2, 0.5, 0.1]], "float32")
    smooth = y * (1 - alpha) + alpha / k
    expect = np.mean(-(smooth * np.log(p)).sum(1))
    assert float(loss(y, p)) == pytest.approx(expect, rel=1e-5)


def test_dropout_and_batch_norm_options_and_errors():
    from kerasvk.training.regularization import apply_weight_regularization, configure_batch_norm, set_dropout

    model = _small_model()
    assert set_dropout(model, 0.3) == 1 and model.get_layer("drop").rate == 0.3
    assert configure_batch_norm(model, momentum=0.9, epsilon=1e-3) == 1
    assert model.get_layer("bn").momentum == 0.9 and model.get_layer("bn").epsilon == 1e-3
    with pytest.raises(ValueError, match=">= 0"):
        apply_weight_regularization(model, l2=-1e-4)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        set_dropout(model, 1.5)
    with pytest.raises(ValueError, match="momentum"):
        configure_batch_norm(model, momentum=2)
