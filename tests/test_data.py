import numpy as np
import pytest

from kerasvk import data


def test_digits_shape_range_and_labels():
    x, y, names = data.load_arrays("digits")
    assert x.shape == (1797, 32, 32, 1) and x.dtype == np.uint8
    assert x.max() == 255 and x.min() == 0
    assert names == [str(i) for i in range(10)] and set(y) == set(range(10))
    x3, _, _ = data.load_arrays("digits", image_size=(28, 28), channels=3)
    assert x3.shape == (1797, 28, 28, 3)


def test_digits_photo_is_digits_added_onto_photo_crops():
    digits, y, names = data.load_arrays("digits")
    x, y2, names2 = data.load_arrays("digits_photo")
    again, _, _ = data.load_arrays("digits_photo")
    other, _, _ = data.load_arrays("digits_photo", seed=1)
    assert x.shape == (1797, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, y2)
    assert names == names2
    np.testing.assert_array_equal(x, again)  # seeded crops
    assert not np.array_equal(x, other)
    # every pixel is at least the digit's stroke (the photo only adds): clip(photo + digit)
    assert np.all(x >= np.minimum(digits, 255))
    assert x.mean() > digits.mean() + 50  # a photo background, not black
    gray, _, _ = data.load_arrays("digits_photo", channels=1)
    assert gray.shape == (1797, 32, 32, 1)


def test_patterns_seeded_and_sized():
    a, ya, names = data.load_arrays("patterns:classes=5,count=50", image_size=(20, 24))
    b, yb, _ = data.load_arrays("patterns:classes=5,count=50", image_size=(20, 24))
    c, _, _ = data.load_arrays("patterns:classes=5,count=50", image_size=(20, 24), seed=1)
    assert a.shape == (50, 20, 24, 3) and names == list(data.PATTERN_CLASSES_5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)
    assert np.bincount(ya).tolist() == [10] * 5


def test_split_is_stratified_stable_and_disjoint():
    y = np.repeat(np.arange(4), 25)
    tr, va, te = data.split_indices(y, 0.2, 0.2, seed=3)
    tr2, va2, te2 = data.split_indices(y, 0.2, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in ((tr, tr2), (va, va2), (te, te2)))
    assert len(set(tr) | set(va) | set(te)) == 100 and len(tr) + len(va) + len(te) == 100
    assert np.bincount(y[te]).tolist() == [5] * 4
    with pytest.raises(ValueError, match="must be < 1"):
        data.split_indices(y, 0.5, 0.5)


def test_load_pipeline_batches_floats_and_counts():
    d = data.load("patterns:classes=5,count=100", batch_size=16)
    assert d.input_shape == (32, 32, 3) and d.num_classes == 5
    assert d.counts == {"train": 70, "val": 10, "test": 20}
    x, y = next(iter(d.train))
    assert x.dtype.name == "float32" and x.shape == (16, 32, 32, 3)
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0
    assert sum(int(b[1].shape[0]) for b in d.test) == 20


def test_arrays_source_and_one_hot():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 8, 8)).astype("float32")
    y = np.arange(40) % 2
    d = data.load((x, y), batch_size=8, one_hot=True, class_names=["a", "b"])
    xb, yb = next(iter(d.val))
    assert xb.shape[1:] == (8, 8, 1) and yb.shape[1:] == (2,)
    assert d.class_names == ["a", "b"]


@pytest.mark.parametrize(
    "source,match",
    [
        ("digitz", "Did you mean digits"),
        ("patterns:classes=7", "num_classes must be 5 or 10"),
        ("patterns:size=3", "Allowed options"),
        ("folder:", "needs a value"),
        (42, "Unknown data source"),
    ],
)
def test_bad_sources(source, match):
    with pytest.raises(ValueError, match=match):
        data.load(source)


def _write_folder(root, n=3):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_folder_source(tmp_path):
    _write_folder(tmp_path / "imgs", n=10)
    d = data.load(f"folder:{tmp_path / 'imgs'}", image_size=(16, 16), batch_size=4, val_split=0.2, test_split=0.2)
    assert d.class_names == ["cats", "dogs"]
    assert d.counts == {"train": 12, "val": 4, "test": 4}
    n_test = sum(int(b[0].shape[0]) for b in d.test)
    assert n_test == 4
    x, _ = next(iter(d.train))
    assert x.shape[1:] == (16, 16, 3)


def test_folder_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        data.load(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="at least 2 are needed"):
        data.load(f"folder:{tmp_path / 'empty'}")
    _write_folder(tmp_path / "bad")
    (tmp_path / "bad" / "dogs" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"Unreadable image .*broken\.png"):
        data.load(f"folder:{tmp_path / 'bad'}")


@pytest.mark.parametrize(
    "augment",
    ["rotation=30", {"rotation": 30.0}, "mixup=0.4", "augmenter"],
    ids=["string", "dict", "mixing-string", "augmenter"],
)
def test_load_takes_augment_configs_and_augments_only_training_batches(augment):
    """``load(augment=...)`` takes what the CLI takes (config strings, dicts, an Augmenter), not only callables;
    the training batches change, validation and test batches do not (same seed → same order)."""
    if augment == "augmenter":
        augment = data.Augmenter("rotation=30", seed=1)
    plain = data.load("digits", batch_size=16, seed=0)
    aug = data.load("digits", batch_size=16, seed=0, augment=augment)
    (x0, y0), (x1, y1) = next(iter(plain.train)), next(iter(aug.train))
    assert x1.shape == x0.shape and x1.dtype == x0.dtype
    assert float(np.abs(x1.numpy() - x0.numpy()).max()) > 0.1
    if augment == "mixup=0.4":  # labels are mixed: one-hot rows summing to 1
        assert y1.shape == (16, 10)
        np.testing.assert_allclose(y1.numpy().sum(axis=1), 1.0, atol=1e-5)
    else:
        np.testing.assert_array_equal(y1.numpy(), y0.numpy())
    for a, b in ((plain.val, aug.val), (plain.test, aug.test)):
        np.testing.assert_array_equal(next(iter(a))[0].numpy(), next(iter(b))[0].numpy())


def test_load_rejects_a_bad_augment_with_the_allowed_forms():
    with pytest.raises(ValueError, match="rotation"):
        data.load("digits", augment="rotaton=30")
    with pytest.raises(ValueError, match="augment"):
        data.load("digits", augment=3)
