"""Classic CNNs: exact parameter counts against the papers / keras.applications, and bad inputs."""

import keras
import pytest

import kerasvk


@pytest.mark.parametrize(
    "name,kwargs,expected",
    [
        ("lenet5", dict(input_shape=(32, 32, 1), num_classes=10), 61_706),
        ("alexnet", dict(input_shape=(224, 224, 3), num_classes=1000), 61_100_840),
        ("vgg16", dict(input_shape=(224, 224, 3), num_classes=1000), 138_357_544),
        ("vgg19", dict(input_shape=(224, 224, 3), num_classes=1000), 143_667_240),
    ],
)
def test_parameter_counts(name, kwargs, expected):
    assert kerasvk.build(name, **kwargs).count_params() == expected


def test_vgg16_matches_keras_applications_layer_by_layer():
    ours = kerasvk.build("vgg16")
    ref = keras.applications.VGG16(weights=None)
    assert ours.count_params() == ref.count_params()
    ours_shapes = {l.name: [tuple(w.shape) for w in l.weights] for l in ours.layers if l.weights}
    ref_shapes = {l.name: [tuple(w.shape) for w in l.weights] for l in ref.layers if l.weights}
    assert ours_shapes == ref_shapes


def test_vgg_batch_norm_and_headless():
    m = kerasvk.build("vgg11", input_shape=(32, 32, 3), batch_norm=True, include_top=False, pooling="avg")
    assert m.output_shape == (None, 512)
    assert any(isinstance(l, keras.layers.BatchNormalization) for l in m.layers)


def test_lenet_other_sizes_and_channels():
    assert kerasvk.build("lenet5", input_shape=(28, 28, 1)).count_params() == 61_706
    m = kerasvk.build("lenet5", input_shape=(48, 48, 3), num_classes=5)
    assert m.output_shape == (None, 5)


def test_alexnet_small_input_uses_adaptive_pool():
    m = kerasvk.build("alexnet", input_shape=(32, 32, 3), num_classes=10, fc_units=64)
    assert m.output_shape == (None, 10)
    assert m.get_layer("adaptive_pool").output.shape[1:3] == (6, 6)


def test_adaptive_pool_matches_torch_bins():
    import numpy as np

    from kerasvk.layers import AdaptiveAveragePooling2D

    x = np.arange(5 * 7, dtype="float32").reshape(1, 5, 7, 1)
    out = np.asarray(AdaptiveAveragePooling2D((3, 2))(x))[0, ..., 0]
    # PyTorch bins: rows [0,2),[1,4),[3,5); cols [0,4),[3,7)
    rows = [(0, 2), (1, 4), (3, 5)]
    cols = [(0, 4), (3, 7)]
    ref = np.array([[x[0, r0:r1, c0:c1, 0].mean() for c0, c1 in cols] for r0, r1 in rows])
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    up = np.asarray(AdaptiveAveragePooling2D(4)(np.ones((1, 1, 1, 2), "float32")))
    assert up.shape == (1, 4, 4, 2) and np.all(up == 1)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("lenet5", dict(input_shape=(20, 20, 1)), r">= 28.*input_shape=\(20, 20, 1\)"),
        ("vgg16", dict(input_shape=(16, 16, 3)), r">= 32"),
        ("simple_cnn", dict(input_shape=(32, 32)), r"rank 3"),
        ("alexnet", dict(num_classes=1), r"num_classes must be an integer >= 2.*num_classes=1"),
        ("vgg11", dict(input_shape=(32, 32, 3), pooling="mean", include_top=False), r"pooling must be one of"),
        ("lenet5", dict(classifier_activation="relu6x"), r"classifier_activation"),
    ],
)
def test_bad_inputs_name_the_constraint(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kerasvk.build(name, **kwargs)
