"""Transfer learning: encoder/head split, frozen encoder unchanged by fit, BN stats frozen, top-N fine-tuning,
L2-SP equals the hand computation and round-trips through .keras."""

import numpy as np
import pytest


def _tiny_resnet(classes=4):
    import kerasvk

    # one block per stage: 4 encoder blocks (conv1, conv2_block1, conv3_block1, conv4_block1), a third of
    # resnet20's layers to build and trace; every split/freeze/L2-SP rule is the same
    return kerasvk.build(
        "resnet20", input_shape=(12, 12, 1), num_classes=classes, width_multiplier=0.25, blocks_per_stage=1
    )


def _data(n=24, shape=(12, 12, 1), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, *shape)).astype("float32"), rng.integers(0, classes, n)


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def test_split_points_of_registered_classifiers():
    import kerasvk
    from kerasvk.training.transfer import make_encoder, split_point

    assert split_point(_tiny_resnet()) == "avg_pool"
    assert split_point(kerasvk.build("lenet5", num_classes=3)) == "flatten"
    assert split_point(kerasvk.build("resnet20", input_shape=(12, 12, 1), include_top=False, width_multiplier=0.25)) is None
    enc = make_encoder(kerasvk.build("lenet5", num_classes=3))
    assert enc.get_layer("c5_conv") and tuple(enc.outputs[0].shape[1:]) == (1, 1, 120)


def test_unrecognizable_split_raises():
    import keras

    from kerasvk.training.transfer import make_encoder, transfer_classifier

    inp = keras.Input((6,))
    mlp = keras.Model(inp, keras.layers.Dense(3, name="out")(keras.layers.Dense(8)(inp)))
    with pytest.raises(ValueError, match="Cannot find the encoder/head split.*include_top=False.*cut_at"):
        transfer_classifier(mlp, 2)
    no_pool = keras.Model(inp, keras.layers.Dense(3, name="predictions")(keras.layers.Dense(8, name="fc")(inp)))
    with pytest.raises(ValueError, match="'predictions' layer but none of 'avg_pool', 'max_pool', 'flatten'"):
        make_encoder(no_pool)
    assert make_encoder(no_pool, cut_at="predictions").outputs[0].shape[-1] == 8  # explicit split works
    with pytest.raises(ValueError, match="is not a layer"):
        make_encoder(no_pool, cut_at="nope")
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        transfer_classifier(_tiny_resnet(), 1)


def test_frozen_encoder_is_unchanged_by_fit_and_head_trains():
    import keras

    from kerasvk.training.transfer import get_encoder, transfer_classifier

    base = _tiny_resnet()
    model = transfer_classifier(base, 3)
    enc = get_encoder(model)
    assert not enc.trainable and len(model.trainable_weights) == 2  # the new head's kernel + bias
    before_enc, before_head = _weights(enc), _weights(model.get_layer("predictions"))
    x, y = _data()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(before_enc, _weights(enc)):  # weights AND batch-norm moving statistics identical
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before_head, _weights(model.get_layer("predictions"))))
    # the encoder shares the base model's variables
    np.testing.assert_array_equal(base.get_layer("conv1_conv").get_weights()[0], enc.get_layer("conv1_conv").get_weights()[0])


def test_fine_tune_top_blocks_keeps_lower_blocks_and_batch_norm_stats():
    import keras

    from kerasvk.training.transfer import encoder_blocks, fine_tune, get_encoder, transfer_classifier

    model = transfer_classifier(_tiny_resnet(), 3)
    enc = get_encoder(model)
    names = [b for b, _ in encoder_blocks(enc)]
    assert names == ["conv1", "conv2_block1", "conv3_block1", "conv4_block1"]
    assert fine_tune(model, 2) == ["conv3_block1", "conv4_block1"]
    trainable = {layer.name for layer in enc._flatten_layers(include_self=False) if layer.trainable and layer.weights}
    assert trainable == {f"conv{s}_block1_{i}_conv" for s in (3, 4) for i in (1, 2)}  # BN stays frozen
    snap = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in enc.layers if layer.weights}
    x, y = _data()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for layer in enc.layers:
        if not layer.weights:
            continue
        same = all(np.array_equal(a, b) for a, b in zip(snap[layer.name], layer.get_weights()))
        assert same == (layer.name not in trainable), layer.name
    with pytest.raises(ValueError, match=r"top_n_blocks must be 'all' or an integer in \[0, 4\]"):
        fine_tune(model, 5)
    fine_tune(model, "all")
    assert all(layer.trainable != isinstance(layer, keras.layers.BatchNormalization)
               for layer in enc._flatten_layers(include_self=False) if layer.weights)


def test_l2sp_penalty_equals_hand_computation_and_roundtrips(tmp_path):
    import keras

    from kerasvk.training.transfer import L2SP, fine_tune, get_encoder, l2sp_penalty, transfer_classifier

    model = transfer_classifier(_tiny_resnet(), 3)
    fine_tune(model, 3, l2sp=0.01)
    enc = get_encoder(model)
    assert float(sum(float(v) for v in model.losses)) == 0.0  # θ = θ_pre at the start
    regularized = [layer for layer in enc.layers if layer.trainable and layer.weights]
    refs = [np.array(layer.get_weights()[0]) for layer in regularized]
    rng = np.random.default_rng(0)
    for layer, ref in zip(regularized, refs):
        layer.set_weights([ref + rng.normal(0, 0.1, ref.shape).astype("float32")])
    hand = 0.01 * sum(float(np.sum((np.array(layer.get_weights()[0]) - ref) ** 2)) for layer, ref in zip(regularized, refs))
    assert len(model.losses) == len(regularized) == 6
    np.testing.assert_allclose(float(sum(float(v) for v in model.losses)), hand, rtol=1e-5)
    np.testing.assert_allclose(l2sp_penalty(model), hand, rtol=1e-5)
    assert isinstance(regularized[0].kernel_regularizer, L2SP)

    # fit minimises CE + L2-SP: the reported loss includes the penalty
    x, y = _data()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    ce = keras.losses.sparse_categorical_crossentropy(y, model(x)).numpy().mean()
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=len(x), verbose=0), ce + hand, rtol=1e-4)

    model.save(tmp_path / "ft.keras")
    loaded = keras.saving.load_model(tmp_path / "ft.keras", safe_mode=True)
    np.testing.assert_allclose(float(sum(float(v) for v in loaded.losses)), hand, rtol=1e-5)
    reg = loaded.get_layer("encoder").get_layer(regularized[0].name).kernel_regularizer
    assert isinstance(reg, L2SP) and reg.l2 == 0.01
    np.testing.assert_array_equal(reg.reference, refs[0])


def test_l2sp_bad_values():
    from kerasvk.training.transfer import L2SP, fine_tune, transfer_classifier

    with pytest.raises(ValueError, match="l2 must be a number >= 0"):
        L2SP(-1.0, reference=np.zeros(2))
    with pytest.raises(ValueError, match="reference"):
        L2SP(0.1)
    with pytest.raises(ValueError, match="l2 must be a number >= 0"):
        fine_tune(transfer_classifier(_tiny_resnet(), 3), 1, l2sp="big")


def test_transfer_from_saved_keras_file(tmp_path):
    import kerasvk
    from kerasvk.training.transfer import get_encoder, transfer_classifier

    base = kerasvk.build("lenet5", num_classes=4)
    base.save(tmp_path / "base.keras")
    model = transfer_classifier(tmp_path / "base.keras", 2, dropout=0.2)
    x = _data(4, (32, 32, 1))[0]
    np.testing.assert_allclose(get_encoder(model)(x).numpy(), get_encoder(transfer_classifier(base, 2))(x).numpy(), atol=1e-6)
    assert model.output.shape[-1] == 2
    with pytest.raises(FileNotFoundError):
        transfer_classifier(tmp_path / "missing.keras", 2)


def test_transfer_from_keras_file_with_kerasvk_layers_in_a_fresh_process(tmp_path):
    """A .keras file whose model uses a kerasvk layer (resnet20's PadChannelsShortcut) loads in a process
    that has imported nothing but kerasvk.training.transfer: the kerasvk layers must get registered."""
    import subprocess
    import sys

    model = _tiny_resnet()
    assert any(type(layer).__name__ == "PadChannelsShortcut" for layer in model.layers)
    path = tmp_path / "base.keras"
    model.save(path)
    code = (
        "import sys; from kerasvk.training.transfer import transfer_classifier; "
        f"m = transfer_classifier({str(path)!r}, 3); print(m.output.shape[-1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "3"
