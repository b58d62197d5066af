"""The modern classification zoo: exact parameter counts, compound scaling, position-embedding
interpolation, shortcuts and input validation. Nothing is downloaded (keras twins use weights=None)."""

import numpy as np
import pytest

import kerasvk

# 224×224×3, 1000 classes, keras.applications / paper / timm counts (count_params, BN statistics included)
EXACT = {
    "resnet50": 25_636_712,
    "resnet101": 44_707_176,
    "resnet152": 60_419_944,
    "densenet121": 8_062_504,
    "densenet169": 14_307_880,
    "densenet201": 20_242_984,
    "efficientnet_b0": 5_330_571,
    "efficientnet_b7": 66_658_687,
    "mobilenet_v1": 4_253_864,
    "mobilenet_v2": 3_538_984,
    "mobilenet_v3_small": 2_554_968,
    "mobilenet_v3_large": 5_507_432,
    "vit_base_16": 86_567_656,
}


TWINS = [
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "densenet169",
    "densenet201",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
] + [f"efficientnet_b{i}" for i in range(8)]


# the three deepest graphs take the longest to build; they run with the slow tests
_SLOW_BUILDS = {"resnet152", "densenet201", "efficientnet_b7"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_BUILDS else n for n in sorted(set(EXACT) - set(TWINS))],
)
def test_exact_parameter_count(name):
    """The published count at 224×224, 1000 classes (the models with a keras twin are counted, at the same
    1000 classes, where their weights are compared: one build of each instead of two)."""
    model = kerasvk.build(name, input_shape=(224, 224, 3), num_classes=1000)
    assert model.count_params() == EXACT[name]


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "name,shape,classes,expected",
    [
        ("resnet18", (224, 224, 3), 1000, 11_689_512),  # torchvision (no BN statistics)
        ("resnet34", (224, 224, 3), 1000, 21_797_672),
        ("resnet20", (32, 32, 3), 10, 269_722),  # paper Table 6: 0.27M (option A)
        ("resnet56", (32, 32, 3), 10, 853_018),  # 0.85M
    ],
)
def test_trainable_counts_of_non_keras_resnets(name, shape, classes, expected):
    assert _trainable(kerasvk.build(name, input_shape=shape, num_classes=classes)) == expected


def _keras_twins():
    from kerasvk.registry import get_spec

    return {name: get_spec(name).weights_loader.constructor() for name in TWINS}



@pytest.mark.slow
@pytest.mark.parametrize("name", TWINS)
def test_keras_applications_weights_load_and_give_the_same_outputs(name):
    """The keras.applications twin's weights (``weights=None``, random) load into ours in order, shape for
    shape, and both models then compute the same function: layer-for-layer equivalence, so imagenet
    weights saved from keras.applications load unchanged."""
    # keras.applications models that rescale inside take raw [0, 255] pixels: input_max=255
    raw = name.startswith(("efficientnet", "mobilenet_v3"))
    ours = kerasvk.build(name, input_shape=(64, 64, 3), num_classes=1000, **({"input_max": 255} if raw else {}))
    theirs = _keras_twins()[name](weights=None, input_shape=(64, 64, 3), classes=1000)
    # convolutions + global pooling: the count does not depend on the image size, so the published one applies
    assert ours.count_params() == theirs.count_params() == EXACT.get(name, theirs.count_params())
    ours.set_weights(theirs.get_weights())
    x = np.random.default_rng(0).uniform(0, 255 if raw else 1, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), atol=1e-6)


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_small"])
def test_input_max_only_rescales_the_input(name):
    """kerasvk pipelines give [0, 1] images (input_max=1, the default); keras.applications' convention is raw
    pixels (input_max=255): same weights, same outputs on x and 255·x, same parameter count."""
    kw = {"input_shape": (32, 32, 3), "num_classes": 5}
    unit = kerasvk.build(name, **kw)
    raw = kerasvk.build(name, input_max=255, **kw)
    assert unit.count_params() == raw.count_params()
    raw.set_weights(unit.get_weights())
    x = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(unit(x)), np.asarray(raw(x * 255.0)), atol=1e-5)
    with pytest.raises(ValueError, match="input_max must be a number > 0"):
        kerasvk.build(name, input_max=0, **kw)


# no_downloads: the autouse fixture in conftest.py makes keras.utils.get_file raise (every test runs offline)


def test_imagenet_weights_come_from_the_keras_twin(monkeypatch, no_downloads):
    """``build(name, weights="imagenet")`` asks the keras.applications twin for imagenet weights and copies
    them (the twin is stubbed to build with random weights: nothing is downloaded)."""
    import keras

    asked = {}
    original = keras.applications.MobileNetV2

    def offline_twin(weights=None, **kw):
        asked.update(weights=weights, **kw)
        keras.utils.set_random_seed(3)
        return original(weights=None, **kw)

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline_twin)
    ours = kerasvk.build("mobilenet_v2", weights="imagenet", input_shape=(32, 32, 3), include_top=False)
    assert asked["weights"] == "imagenet" and asked["include_top"] is False
    keras.utils.set_random_seed(3)
    ref = original(weights=None, input_shape=(32, 32, 3), include_top=False)
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), atol=1e-6)


def test_weights_file_round_trip_and_bad_weights(tmp_path, no_downloads):
    """Bad ``weights`` values fail in validation, before any model is built or any file fetched."""
    kw = {"input_shape": (32, 32, 3), "num_classes": 4}
    a = kerasvk.build("resnet20", **kw)
    path = tmp_path / "r20.weights.h5"
    a.save_weights(path)
    b = kerasvk.build("resnet20", weights=str(path), **kw)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="has none. Models with imagenet weights: densenet121"):
        kerasvk.build("lenet5", weights="imagenet")
    with pytest.raises(ValueError, match="need num_classes=1000"):
        kerasvk.build("resnet50", weights="imagenet", num_classes=10)
    with pytest.raises(ValueError, match="need 3 input channels"):
        kerasvk.build("resnet50", weights="imagenet", include_top=False, input_shape=(64, 64, 1))
    with pytest.raises(ValueError, match="weights must be None, 'imagenet' or a path"):
        kerasvk.build("resnet20", weights="cifar", **kw)
    with pytest.raises(FileNotFoundError, match="No weights file"):
        kerasvk.build("resnet20", weights=str(tmp_path / "missing.weights.h5"), **kw)


def test_keras_applications_layer_names():
    model = kerasvk.build("resnet50", input_shape=(64, 64, 3), num_classes=10, width_multiplier=0.125)
    names = {layer.name for layer in model.layers}
    for n in (
        "conv1_conv",
        "conv2_block1_0_conv",
        "conv2_block1_1_conv",
        "conv3_block4_out",
        "conv5_block3_3_bn",
        "avg_pool",
        "predictions",
    ):
        assert n in names
    names = {layer.name for layer in kerasvk.build("efficientnet_b0", input_shape=(32, 32, 3)).layers}
    for n in ("stem_conv", "block1a_se_excite", "block2b_drop", "block7a_project_bn", "top_conv"):
        assert n in names


# ---- EfficientNet compound scaling -------------------------------------------------------------


def test_compound_coefficients_math():
    from kerasvk.models.classification.efficientnet import compound_coefficients

    c = compound_coefficients(2)
    assert c["depth_coefficient"] == pytest.approx(1.2**2)
    assert c["width_coefficient"] == pytest.approx(1.1**2)
    assert c["resolution"] == round(224 * 1.15**2) == 296
    assert c["flops_factor"] == pytest.approx((1.2 * 1.1**2 * 1.15**2) ** 2)  # ≈ 2^φ (paper: α·β²·γ² ≈ 2)
    c0 = compound_coefficients(0)
    assert (c0["depth_coefficient"], c0["width_coefficient"], c0["resolution"]) == (1, 1, 224)


def test_compound_scaling_builds_the_derived_network():
    from kerasvk.models.classification.efficientnet import BLOCKS_ARGS, efficientnet

    model = efficientnet(1, input_shape=(32, 32, 3), num_classes=10)
    blocks = [layer for layer in model.layers if layer.name.endswith("project_bn")]
    # keras rule: ceil(1.2 · repeats) per stage
    assert len(blocks) == sum(int(np.ceil(1.2 * a["repeats"])) for a in BLOCKS_ARGS) == 23
    # width 1.1: 1280 → 1408 (multiple of 8), 32 → 32 (35.2 rounds down within 10%)
    assert model.get_layer("top_conv").filters == 1408
    assert model.get_layer("stem_conv").filters == 32
    # derived resolution is the default input size
    assert efficientnet(1, num_classes=10).input_shape[1:3] == (258, 258)


def test_compound_phi0_is_b0_and_model_info_reports_coefficients():
    b0 = kerasvk.build("efficientnet", phi=0, input_shape=(32, 32, 3))  # conv counts do not depend on size
    assert b0.count_params() == EXACT["efficientnet_b0"]
    info = kerasvk.model_info("efficientnet", phi=1, input_shape=(32, 32, 3), num_classes=10)
    assert info["scaling"]["depth_coefficient"] == pytest.approx(1.2)
    assert info["scaling"]["width_coefficient"] == pytest.approx(1.1)
    assert info["scaling"]["resolution"] == 258
    assert kerasvk.model_info("efficientnet_b3", input_shape=(32, 32, 3))["scaling"]["resolution"] == 300


# ---- ViT position embeddings ---------------------------------------------------------------------


def test_interpolate_position_embeddings():
    from kerasvk.layers import interpolate_position_embeddings

    dim = 4
    rows = np.repeat(np.arange(4, dtype="float32"), 4)  # value = row index on a 4×4 grid
    grid = np.stack([rows] * dim, axis=-1)
    emb = np.concatenate([np.full((1, dim), 7.0, "float32"), grid])[None]  # class token = 7
    out = interpolate_position_embeddings(emb, (4, 4), (8, 8))
    assert out.shape == (1, 1 + 64, dim)
    np.testing.assert_array_equal(out[0, 0], 7.0)  # prefix kept
    g = out[0, 1:].reshape(8, 8, dim)
    assert np.all(np.diff(g[:, 0, 0]) >= -1e-5)  # still increasing down the rows
    np.testing.assert_allclose(g[:, 3, 0], g[:, 5, 0], atol=1e-5)  # constant along columns
    same = interpolate_position_embeddings(emb, 4, 4)
    np.testing.assert_array_equal(same, emb)
    with pytest.raises(ValueError, match="shape"):
        interpolate_position_embeddings(emb, (5, 5), (8, 8))


def test_vit_transfer_weights_to_another_resolution():
    from kerasvk.models.classification.vit import transfer_weights

    kw = dict(hidden_dim=16, num_layers=1, num_heads=2, mlp_dim=32, patch_size=8, num_classes=10)
    small = kerasvk.build("vit_tiny_16", input_shape=(32, 32, 3), **kw)
    big = kerasvk.build("vit_tiny_16", input_shape=(64, 64, 3), **kw)
    transfer_weights(small, big)
    np.testing.assert_array_equal(
        big.get_layer("predictions").get_weights()[0], small.get_layer("predictions").get_weights()[0]
    )
    pe = big.get_layer("position_embedding")
    assert tuple(pe.embedding.shape) == (1, 1 + 64, 16)
    np.testing.assert_allclose(
        pe.embedding.numpy()[0, 0], small.get_layer("position_embedding").embedding.numpy()[0, 0]
    )
    out = big(np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype("float32"))
    assert out.shape == (2, 10) and np.all(np.isfinite(out))


def test_vit_features_without_top():
    m = kerasvk.build(
        "vit_tiny_16",
        input_shape=(32, 32, 3),
        include_top=False,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        mlp_dim=32,
        patch_size=8,
    )
    assert m.output_shape == (None, 1 + 16, 16)
    m = kerasvk.build(
        "vit_tiny_16",
        input_shape=(32, 32, 3),
        include_top=False,
        pooling="avg",
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        mlp_dim=32,
        patch_size=8,
    )
    assert m.output_shape == (None, 16)


# ---- shortcuts -----------------------------------------------------------------------------------


def test_option_a_shortcut_subsamples_and_zero_pads():
    from kerasvk.layers import PadChannelsShortcut

    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    y = np.asarray(PadChannelsShortcut(7, 2)(x))
    assert y.shape == (2, 2, 2, 7)
    np.testing.assert_array_equal(y[..., 2:5], x[:, ::2, ::2, :])
    assert not y[..., :2].any() and not y[..., 5:].any()


def test_cifar_resnet_shortcut_b_adds_projections():
    a = kerasvk.build("resnet20", num_classes=10)
    b = kerasvk.build("resnet20", num_classes=10, shortcut="B")
    assert _trainable(b) - _trainable(a) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


# ---- bad inputs ----------------------------------------------------------------------------------


def test_bad_inputs_raise_value_errors_that_name_the_constraint():
    from kerasvk.models.classification.efficientnet import efficientnet
    from kerasvk.models.classification.resnet import cifar_resnet, resnet

    with pytest.raises(ValueError, match="multiples of patch_size=16"):
        kerasvk.build("vit_base_16", input_shape=(100, 100, 3))
    with pytest.raises(ValueError, match="phi must be a number >= 0"):
        efficientnet(-1)
    with pytest.raises(ValueError, match="phi must be a number >= 0"):
        kerasvk.build("efficientnet", phi=-0.5)
    with pytest.raises(ValueError, match="alpha .* must be a number > 0"):
        kerasvk.build("mobilenet_v2", alpha=0)
    with pytest.raises(ValueError, match="alpha .* must be a number > 0"):
        kerasvk.build("mobilenet_v1", alpha=-1.0)
    with pytest.raises(ValueError, match=r"depth must be one of \[18, 34, 50, 101, 152\]"):
        resnet(depth=42)
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(depth=21)
    with pytest.raises(ValueError, match="hidden_dim must be divisible by num_heads"):
        kerasvk.build("vit_tiny_16", input_shape=(32, 32, 3), hidden_dim=10, num_heads=3)
    with pytest.raises(ValueError, match="input height and width must be >= 32"):
        kerasvk.build("resnet50", input_shape=(16, 16, 3))
