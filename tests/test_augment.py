"""Augmentation: config parsing, exact semantics of each op, train-only application, errors."""

import numpy as np
import pytest


def _np(x):
    return np.asarray(x)


# ------------------------------------------------------------------ config strings


def test_presets_and_overrides_parse():
    from kerasvk.data.augment import DEFAULTS, parse_augment

    std = parse_augment("standard")
    assert (std["rotation"], std["zoom"], std["brightness"], std["contrast"]) == (15.0, 0.2, 0.2, 0.2)
    assert parse_augment("none") == DEFAULTS == parse_augment(None) == parse_augment("")
    cfg = parse_augment("standard,rotation=30,flip=horizontal")
    assert cfg["rotation"] == 30.0 and cfg["flip"] == "horizontal" and cfg["zoom"] == 0.2
    cfg = parse_augment("rotation=15,cutmix=1.0")  # no preset → starts from none
    assert cfg["rotation"] == 15.0 and cfg["cutmix"] == 1.0 and cfg["zoom"] == 0.0
    assert parse_augment("strong")["cutmix"] > 0
    assert parse_augment({"preset": "light", "mixup": 0.2})["mixup"] == 0.2


@pytest.mark.parametrize(
    "spec, match",
    [
        ("standrd", "Did you mean standard"),
        ("rotaton=15", "Did you mean rotation"),
        ("rotation=-5", ">= 0"),
        ("mixup=-0.2", ">= 0"),
        ("zoom=abc", "takes a number"),
        ("rotation=5,standard", "must come first"),
        ("zoom=1.5", "< 1"),
        ("flip=diagonal", "flip must be one of"),
        ("randaugment=1.5", "whole number"),
        ("rotation=5,rotation=6", "twice"),
    ],
)
def test_bad_augment_specs_raise_clear_errors(spec, match):
    from kerasvk.data.augment import parse_augment

    with pytest.raises(ValueError, match=match):
        parse_augment(spec)


def test_negative_layer_rates_raise():
    from kerasvk.layers.augment import CutMix, RandomAffine, RandomColor

    with pytest.raises(ValueError, match=">= 0"):
        RandomAffine(rotation=-3)
    with pytest.raises(ValueError, match=">= 0"):
        RandomColor(contrast=-0.1)
    with pytest.raises(ValueError, match="> 0"):
        CutMix(alpha=-1)
    with pytest.raises(ValueError, match="fill_mode"):
        RandomAffine(rotation=3, fill_mode="wrap")


# ------------------------------------------------------------------ geometric: same as keras core


@pytest.mark.parametrize("fill", ["reflect", "constant", "nearest"])
def test_random_affine_matches_keras_geometric_layers(fill):
    import keras

    from kerasvk.layers.augment import RandomAffine

    x = np.random.default_rng(0).integers(0, 256, (3, 20, 24, 3)).astype("float32")
    from kerasvk.layers.augment import affine_matrices, affine_resample

    n = len(x)
    cases = [  # (keras layer with a fixed draw, the same transform through kerasvk's matrices)
        (
            keras.layers.RandomRotation((25 / 360, 25 / 360), fill_mode=fill),
            dict(angle=np.full(n, 25.0, "float32")),
        ),
        (keras.layers.RandomZoom((0.3, 0.3), fill_mode=fill), dict(zoom=np.full((n, 2), 1.3, "float32"))),
        (
            keras.layers.RandomTranslation((0.2, 0.2), (-0.15, -0.15), fill_mode=fill),
            dict(translate=np.array([[0.2 * 20, -0.15 * 24]] * n, "float32")),
        ),
    ]
    for ref, kw in cases:
        got = affine_resample(x, affine_matrices(20, 24, **kw), fill_mode=fill)  # eager: no XLA compile
        np.testing.assert_allclose(_np(got), _np(ref(x, training=True)), atol=2e-3)
    # The layer draws rotation=(25, 25) as that same fixed angle.
    layer = RandomAffine(rotation=(25, 25), fill_mode=fill)
    np.testing.assert_allclose(
        _np(layer.random_transforms(x)), _np(affine_matrices(20, 24, **cases[0][1])), atol=1e-6
    )


def test_composed_transform_is_the_keras_chain_and_flip_is_exact():
    import keras

    from kerasvk.layers.augment import affine_matrices, affine_resample

    yy, xx = np.mgrid[0:16, 0:16]
    smooth = 127.5 + 100 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    x = np.stack([smooth, smooth.T])[..., None].astype("float32")
    t = affine_matrices(
        16, 16, angle=np.array([10.0, -10.0], "float32"), zoom=np.full((2, 2), 0.9, "float32")
    )
    chain = keras.layers.RandomZoom((-0.1, -0.1), fill_mode="constant")(
        keras.layers.RandomRotation((10 / 360, 10 / 360), fill_mode="constant")(x[:1], training=True),
        training=True,
    )
    fused = affine_resample(x[:1], t[:1], fill_mode="constant")
    # The chain interpolates twice, the fused transform once: equal up to one interpolation's blur.
    assert np.abs(_np(fused) - _np(chain)).mean() < 3.0
    assert np.corrcoef(_np(fused).ravel(), _np(chain).ravel())[0, 1] > 0.99
    flip = affine_matrices(16, 16, flip_h=np.array([True, False]))
    out = _np(affine_resample(x, flip))
    np.testing.assert_array_equal(out[0], x[0, :, ::-1])
    np.testing.assert_array_equal(out[1], x[1])


def test_random_affine_keeps_uint8_and_is_identity_at_inference():
    from kerasvk.layers.augment import RandomAffine

    x = np.random.default_rng(2).integers(0, 256, (4, 12, 12, 3)).astype("uint8")
    layer = RandomAffine(rotation=20, zoom=0.2, seed=1)
    y = layer(x)
    import keras

    assert keras.backend.standardize_dtype(y.dtype) == "uint8" and tuple(y.shape) == x.shape
    assert not np.array_equal(_np(y), x)
    np.testing.assert_array_equal(_np(layer(x, training=False)), x)


# ------------------------------------------------------------------ colour formulas


def test_brightness_and_contrast_formulas_on_known_inputs():
    from kerasvk.layers.augment import RandomColor

    x = np.array([[10.0, 100.0], [50.0, 200.0]], "float32").reshape(1, 2, 2, 1)
    x = np.concatenate([x, 2 * x], axis=-1)  # channel means 90 and 180
    bright = RandomColor(brightness=(-0.5, 0.5))(x)  # α = 1.5 exactly
    np.testing.assert_allclose(_np(bright), np.clip(x * 1.5, 0, 255), rtol=1e-6)
    contrast = RandomColor(contrast=(0.5, -0.5))(x)  # α = 0.5
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(_np(contrast), np.clip(0.5 * (x - mean) + mean, 0, 255), rtol=1e-6)
    assert _np(contrast)[0, 1, 1, 1] == 255.0  # 0.5·(400 − 180) + 180 = 290, clipped
    both = RandomColor(brightness=(0.2, -0.2), contrast=(-0.5, 0.5))(x)  # α_b = 0.8, α_c = 1.5
    np.testing.assert_allclose(_np(both), np.clip(0.8 * (1.5 * (x - mean) + mean), 0, 255), rtol=1e-5)


def test_contrast_matches_keras_random_contrast():
    import keras

    from kerasvk.layers.augment import RandomColor

    x = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 3)).astype("float32")
    mine, ref = RandomColor(contrast=0.4, seed=7), keras.layers.RandomContrast(0.4, seed=7)
    factor = _np(mine.random_factors(x)[1])
    expect = np.clip(
        factor[:, None, None, None] * (x - x.mean((1, 2), keepdims=True)) + x.mean((1, 2), keepdims=True),
        0,
        255,
    )
    got = _np(RandomColor(contrast=0.4, seed=7)(x))
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-3)
    # keras' layer draws the same U(1−f, 1+f) factor and applies the same formula
    kf = _np(ref.get_random_transformation(x, training=True)["contrast_factor"]).reshape(-1)
    assert kf.min() >= 0.6 and kf.max() <= 1.4


def test_fused_batch_kernel_equals_color_then_affine_layers():
    from kerasvk.layers.augment import adjust_color, affine_matrices, affine_resample, augment_batch

    x = np.random.default_rng(4).integers(0, 256, (3, 18, 18, 3)).astype("uint8")
    t = affine_matrices(
        18, 18, angle=np.array([12.0, -7.0, 3.0], "float32"), zoom=np.full((3, 2), 1.1, "float32")
    )
    b, c = np.array([0.9, 1.2, 1.0], "float32"), np.array([1.3, 0.8, 1.1], "float32")
    for fill in ("reflect", "constant"):
        ref = affine_resample(adjust_color(x, brightness=b, contrast=c), t, fill_mode=fill)
        got = augment_batch(x, t, b, c, fill_mode=fill, divide_by=255.0)
        np.testing.assert_allclose(_np(got), _np(ref) / 255, atol=1e-5)
        once = augment_batch(x, t, b, c, fill_mode=fill, reflect_once=True)
        np.testing.assert_allclose(_np(once), _np(ref), atol=1e-3)


# ------------------------------------------------------------------ mixing


def _constant_batch(n=8, size=16, channels=1):
    vals = (10 + 30 * np.arange(n)).astype("float32")
    images = np.broadcast_to(vals[:, None, None, None], (n, size, size, channels)).astype("uint8")
    labels = np.eye(n, dtype="float32")
    return images, labels, vals


def test_mixup_label_weight_equals_pixel_weight():
    from kerasvk.data.augment import Augmenter

    images, labels, vals = _constant_batch()
    aug = Augmenter("mixup=0.4", seed=3)
    checked = 0
    for _ in range(2):
        x, y = aug(images, labels)
        x, y = _np(x), _np(y)
        np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
        for j in range(len(vals)):
            lam = y[j, j]
            others = np.delete(np.arange(len(vals)), j)
            p = others[np.argmax(y[j, others])]
            partner_w = y[j, p]
            assert lam + partner_w == pytest.approx(1.0, abs=1e-6)
            expect = (lam * vals[j] + partner_w * vals[p]) / 255.0
            np.testing.assert_allclose(x[j], expect, atol=1e-5)
            checked += partner_w > 1e-3
    assert checked >= 6  # real mixing happened


def test_cutmix_label_weight_equals_pasted_area_share():
    from kerasvk.data.augment import Augmenter

    images, labels, vals = _constant_batch(size=20)
    aug = Augmenter("cutmix=1.0", seed=5)
    mixed = 0
    for _ in range(3):
        x, y = aug(images, labels)
        x, y = _np(x) * 255.0, _np(y)
        np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
        for j in range(len(vals)):
            own = np.isclose(x[j], vals[j], atol=1e-3).mean()
            if y[j, j] < 1.0 - 1e-6:
                assert y[j, j] == pytest.approx(own, abs=1e-6)
                p = int(np.argmax(np.where(np.arange(len(vals)) == j, -1, y[j])))
                assert np.isclose(x[j], vals[p], atol=1e-3).mean() == pytest.approx(1 - y[j, j], abs=1e-6)
                mixed += 1
    assert mixed >= 8


def test_keras_cutmix_label_is_not_the_pixel_share_ours_is():
    """Why kerasvk has its own CutMix: keras' fractional box labels by the fractional area."""
    import keras

    images, labels, vals = _constant_batch(size=10)
    out = keras.layers.CutMix(factor=1.0, seed=1)({"images": images.astype("float32"), "labels": labels})
    x, y = _np(out["images"]), _np(out["labels"])
    err = [abs(y[j, j] - np.isclose(x[j], vals[j]).mean()) for j in range(len(vals)) if y[j, j] < 1 - 1e-6]
    assert max(err) > 1e-3


def test_mixing_needs_one_hot_or_num_classes():
    from kerasvk.data.augment import Augmenter

    images, _, _ = _constant_batch()
    ints = np.arange(8, dtype="int32")
    with pytest.raises(ValueError, match="one-hot"):
        Augmenter("mixup=0.2")(images, ints)
    x, y = Augmenter("mixup=0.2", num_classes=8)(images, ints)
    assert _np(y).shape == (8, 8)


def test_hue_on_grayscale_is_a_clear_error():
    from kerasvk.data.augment import Augmenter

    images, labels, _ = _constant_batch()
    with pytest.raises(ValueError, match="RGB"):
        Augmenter("hue=0.1")(images, labels)


# ------------------------------------------------------------------ pipeline: train only


def test_only_training_batches_are_augmented():
    import tensorflow as tf

    from kerasvk.data import Augmenter, load

    from kerasvk.data import load_arrays

    x, y, _ = load_arrays("digits")
    x, y = x[:200], y[:200]  # 140 train images: one batch shape to compile
    kw = dict(batch_size=70, seed=0)
    plain = load((x, y), **kw)
    aug = load((x, y), augment=Augmenter("standard,mixup=0.2", num_classes=10), one_hot=True, **kw)
    for split in ("val", "test"):
        a = np.concatenate([_np(x) for x, _ in getattr(plain, split)])
        b = np.concatenate([_np(x) for x, _ in getattr(aug, split)])
        np.testing.assert_array_equal(a, b)
    ((xa, ya),) = aug.train.take(1)
    ((xp, _),) = plain.train.take(1)
    assert xa.dtype == tf.float32 and 0.0 <= float(tf.reduce_min(xa)) and float(tf.reduce_max(xa)) <= 1.0
    assert ya.shape == (70, 10) and np.allclose(_np(ya).sum(1), 1.0)
    assert not np.allclose(_np(xa), _np(xp), atol=1e-2)


def test_same_seed_same_augmentation():
    from kerasvk.data.augment import Augmenter

    x = np.random.default_rng(5).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    y = np.eye(4, dtype="float32")
    a1 = Augmenter("strong,hue=0.1", seed=11)(x, y)
    a2 = Augmenter("strong,hue=0.1", seed=11)(x, y)
    np.testing.assert_array_equal(_np(a1[0]), _np(a2[0]))
    np.testing.assert_array_equal(_np(a1[1]), _np(a2[1]))


# ------------------------------------------------------------------ as layers inside a model


def test_augmentation_layers_inside_a_model_round_trip(tmp_path):
    import keras

    from kerasvk.data.augment import Augmenter, augmentation_model

    aug_block = augmentation_model("standard,flip=horizontal", (16, 16, 3))
    inp = keras.Input((16, 16, 3))
    out = keras.layers.Dense(2, name="predictions")(keras.layers.GlobalAveragePooling2D()(aug_block(inp)))
    model = keras.Model(inp, out)
    x = np.random.default_rng(6).random((2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(_np(aug_block(x, training=False)), x)
    assert not np.allclose(_np(aug_block(x, training=True)), x)
    assert _np(aug_block(x, training=True)).max() <= 1.0
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(_np(loaded.predict(x, verbose=0)), _np(model.predict(x, verbose=0)), atol=1e-6)
    with pytest.raises(ValueError, match="data pipeline"):
        Augmenter("cutmix=1").layers()


def test_preview_grid_png(tmp_path):
    from kerasvk.data.preview import save_preview

    path = save_preview("digits", "standard", tmp_path / "p.png", samples=3, variants=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_augment_preview_and_bad_augment(tmp_path, capsys):
    from kerasvk.cli import main

    out = tmp_path / "grid.png"
    assert (
        main(
            [
                "augment-preview",
                "--data",
                "digits",
                "--augment",
                "light",
                "--samples",
                "2",
                "--variants",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["train", "lenet5", "--augment", "standrd", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Did you mean standard" in err[0]
    assert not (tmp_path / "run").exists()  # nothing written for a bad config
