"""Property-based tests (hypothesis) over builder arguments of a few families.

Any valid combination builds and runs a forward pass (right output shape, finite values); any invalid
one raises ``ValueError`` whose message names the argument — never a TensorFlow error, a ``TypeError``
or a silently built model. Derandomized with few examples and no deadline, so CI is deterministic and
quick. The invalid values are drawn from per-family tables (one bad argument at a time, over a valid base
drawn by hypothesis); ``KNOWN_GAPS`` lists the bad values that builders (in ``kerasvk/models``) still
pass on to keras/TF unchecked: those rows are asserted to still misbehave (strict), so fixing one fails
the test until its row is removed.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kerasvk

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _head(draw):
    include_top = draw(st.booleans())
    return {
        "include_top": include_top,
        "num_classes": draw(st.integers(2, 12)),
        "pooling": None if include_top else draw(st.sampled_from([None, "avg", "max"])),
        "classifier_activation": draw(st.sampled_from(["softmax", "sigmoid", None])),
    }


@st.composite
def lenet5_args(draw):
    return {"input_shape": (draw(st.integers(28, 36)), draw(st.integers(28, 36)), draw(st.sampled_from([1, 3]))),
            "subsampling": draw(st.sampled_from(["avg", "max"])), "activation": draw(st.sampled_from(["relu", "tanh"])),
            **_head(draw)}


@st.composite
def simple_cnn_args(draw):
    filters = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=3)))
    side = st.integers(2 ** len(filters), 2 ** len(filters) + 8)
    return {"input_shape": (draw(side), draw(side), draw(st.sampled_from([1, 3]))), "filters": filters,
            "dense_units": draw(st.integers(1, 16)), "dropout": draw(st.floats(0.0, 0.9)), **_head(draw)}


@st.composite
def resnet20_args(draw):
    return {"input_shape": (draw(st.integers(4, 20)), draw(st.integers(4, 20)), draw(st.sampled_from([1, 3]))),
            "width_multiplier": draw(st.sampled_from([0.25, 0.5])), "blocks_per_stage": 1,
            "shortcut": draw(st.sampled_from(["A", "B"])), **_head(draw)}


@st.composite
def mobilenet_v2_args(draw):
    return {"input_shape": (draw(st.integers(32, 40)), draw(st.integers(32, 40)), draw(st.sampled_from([1, 3]))),
            "alpha": draw(st.sampled_from([0.35, 0.5])), **_head(draw)}


@st.composite
def vae_args(draw):
    filters = tuple(draw(st.lists(st.integers(2, 8), min_size=1, max_size=2)))
    step = 2 ** len(filters)
    return {"input_shape": (step * draw(st.integers(1, 3)), step * draw(st.integers(1, 3)), draw(st.sampled_from([1, 3]))),
            "filters": filters, "latent_dim": draw(st.integers(1, 4)), "dense_units": draw(st.integers(2, 16)),
            "likelihood": draw(st.sampled_from(["bernoulli", "gaussian"])), "beta": draw(st.floats(0.0, 4.0))}


FAMILIES = {
    "lenet5": (lenet5_args(), 3),
    "simple_cnn": (simple_cnn_args(), 4),
    "resnet20": (resnet20_args(), 3),
    "mobilenet_v2": (mobilenet_v2_args(), 2),
    "vae": (vae_args(), 3),
}
SLOW = {"mobilenet_v2"}


def _forward(name, kwargs):
    model = kerasvk.build(name, **kwargs)
    h, w, c = kwargs["input_shape"]
    x = np.random.default_rng(0).random((2, h, w, c)).astype("float32")
    y = model(x, training=False)
    if name == "vae":  # [reconstruction, z_mean, z_log_var]
        recon, mean, log_var = (np.asarray(t) for t in y)
        assert recon.shape == x.shape and mean.shape == log_var.shape == (2, kwargs["latent_dim"])
        assert np.isfinite(recon).all() and np.isfinite(mean).all()
        return
    y = np.asarray(y)
    assert np.isfinite(y).all()
    if kwargs["include_top"]:
        assert y.shape == (2, kwargs["num_classes"])
        if kwargs["classifier_activation"] == "softmax":
            np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-4)
    elif kwargs["pooling"] is not None:
        assert y.ndim == 2 and y.shape[0] == 2
    else:
        assert y.ndim == 4 and y.shape[0] == 2


def _families():
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(FAMILIES)]


@pytest.mark.parametrize("name", _families())
def test_valid_arguments_build_and_run(name):
    strategy, n = FAMILIES[name]

    @settings(max_examples=n, **SETTINGS)
    @given(strategy)
    def check(kwargs):
        import keras

        keras.backend.clear_session()
        _forward(name, kwargs)

    check()


COMMON_BAD = [
    ("input_shape", (32, 32)), ("input_shape", (32, 32, 0)), ("input_shape", "abc"), ("input_shape", (1, 1, 3)),
    ("num_classes", 0), ("num_classes", 1), ("num_classes", 2.5), ("num_classes", "ten"), ("num_classes", True),
    ("pooling", "sum"), ("classifier_activation", "bogus"), ("include_top", "yes"),
]
BAD = {
    "lenet5": [*COMMON_BAD, ("subsampling", "min")],
    "simple_cnn": [*COMMON_BAD, ("filters", ()), ("filters", (0,)), ("filters", (-4, 8)), ("dense_units", 0),
                   ("dense_units", -1), ("dropout", 1.5), ("dropout", -0.1)],
    "resnet20": [*COMMON_BAD, ("width_multiplier", 0), ("width_multiplier", -1), ("width_multiplier", "wide"),
                 ("blocks_per_stage", 0), ("blocks_per_stage", 1.5), ("shortcut", "C")],
    "mobilenet_v2": [*COMMON_BAD, ("alpha", 0), ("alpha", -1), ("alpha", "x"), ("alpha", True)],
    "vae": [("input_shape", (32, 32)), ("input_shape", (15, 16, 1)), ("input_shape", (16, 16, 0)),
            ("latent_dim", 0), ("latent_dim", 1.5), ("filters", ()), ("filters", (0,)), ("likelihood", "poisson"),
            ("beta", -1.0), ("beta", "x"), ("dense_units", 0), ("num_classes", 1)],
}
HEAD_ONLY = ("num_classes", "classifier_activation")
# (family, argument, repr(value)) that builders in kerasvk/models still let through to keras/TF or Python
# (reported to the lead; each is asserted to still misbehave, so a fix shows up as a failure here)
KNOWN_GAPS = {
    # validate_classifier_args catches TypeError but not int('a')'s ValueError: the message does not name input_shape
    **{(n, "input_shape", "'abc'"): "int() error" for n in ("lenet5", "simple_cnn", "resnet20", "mobilenet_v2")},
    ("resnet20", "width_multiplier", "'wide'"): "TypeError from '>'",
    ("simple_cnn", "filters", "()"): "builds a model with no convolution",
    ("simple_cnn", "dense_units", "0"): "keras names `units`",
    ("simple_cnn", "dense_units", "-1"): "keras names `units`",
    ("simple_cnn", "dropout", "1.5"): "keras names `rate`",
    ("simple_cnn", "dropout", "-0.1"): "keras names `rate`",
    ("vae", "beta", "'x'"): "TypeError from '<'",
    ("vae", "dense_units", "0"): "keras names `units`",
}


def _bad_outcome(name, kwargs, arg):
    """None if building raises a ValueError naming ``arg``; else what happened instead."""
    try:
        kerasvk.build(name, **kwargs)
    except ValueError as e:
        return None if arg in str(e) else f"ValueError not naming {arg}: {e}"
    except Exception as e:  # noqa: BLE001 - what the property rules out
        return f"{type(e).__name__}: {str(e)[:200]}"
    return "built without an error"


@pytest.mark.parametrize("name", _families())
def test_invalid_arguments_raise_value_error_naming_them(name):
    strategy, _ = FAMILIES[name]
    rows = [r for r in BAD[name] if (name, r[0], repr(r[1])) not in KNOWN_GAPS]
    failures = []

    @settings(max_examples=4, **SETTINGS)
    @given(strategy, st.sampled_from(rows))
    def check(kwargs, bad):
        arg, value = bad
        if arg in HEAD_ONLY:
            kwargs = {**kwargs, "include_top": True, "pooling": None}  # without a head they are unused
        outcome = _bad_outcome(name, {**kwargs, arg: value}, arg)
        if outcome is not None:
            failures.append(f"{name}({arg}={value!r}) over {kwargs}: {outcome}")

    check()
    # every row once over the family's defaults too (hypothesis' draws need not cover each row)
    for arg, value in rows:
        outcome = _bad_outcome(name, {"input_shape": FAMILY_DEFAULT_SHAPE[name], arg: value}
                               if arg != "input_shape" else {arg: value}, arg)  # defaults: include_top=True
        if outcome is not None:
            failures.append(f"{name}({arg}={value!r}): {outcome}")
    assert not failures, "\n".join(sorted(set(failures)))


FAMILY_DEFAULT_SHAPE = {"lenet5": (32, 32, 1), "simple_cnn": (16, 16, 3), "resnet20": (16, 16, 3),
                        "mobilenet_v2": (32, 32, 3), "vae": (16, 16, 1)}


@pytest.mark.parametrize("key", sorted(KNOWN_GAPS))
def test_known_gaps_still_misbehave(key):
    name, arg, value = key
    outcome = _bad_outcome(name, {"input_shape": FAMILY_DEFAULT_SHAPE[name], arg: eval(value)}, arg)
    assert outcome is not None, f"{name}({arg}={value}) is fixed: remove it from KNOWN_GAPS"


@settings(max_examples=10, **SETTINGS)
@given(st.integers(1, 9), st.integers(1, 5), st.integers(1, 5), st.sampled_from([1, 3]), st.integers(1, 4))
def test_sample_grid_mosaic_puts_every_image_in_its_cell(n, h, w, c, cols):
    """SampleGridCallback's one-image grid: image i at row i // cols, column i % cols, white elsewhere."""
    from kerasvk.training.callbacks import mosaic

    images = np.random.default_rng(n).random((n, h, w, c)).astype("float32") * 0.9
    m = mosaic(images, cols)
    k = min(cols, n)
    rows = -(-n // k)
    assert m.shape == (rows * (h + 1) - 1, k * (w + 1) - 1, c)
    covered = np.zeros(m.shape[:2], bool)
    for i in range(n):
        r, q = divmod(i, k)
        np.testing.assert_array_equal(m[r * (h + 1): r * (h + 1) + h, q * (w + 1): q * (w + 1) + w], images[i])
        covered[r * (h + 1): r * (h + 1) + h, q * (w + 1): q * (w + 1) + w] = True
    assert (m[~covered] == 1.0).all()


# ------------------------------------------------------------------------------------------- detectors
TINY_BACKBONE = {"width_multiplier": 0.25, "blocks_per_stage": [1, 1, 1, 1]}  # not 0.125: see tests/conftest.py


@st.composite
def yolo_args(draw):
    side = st.sampled_from([32, 64])
    return {"input_shape": (draw(side), draw(side), 3), "num_classes": draw(st.integers(1, 5)),
            "backbone_kwargs": TINY_BACKBONE, "neck_width": draw(st.sampled_from([4, 8])),
            "neck_block": draw(st.sampled_from(["c2f", "conv"])), "head_width": draw(st.sampled_from([4, 8])),
            "reg_max": draw(st.integers(2, 8)), "topk": draw(st.integers(1, 12)),
            "levels": draw(st.sampled_from([("P3", "P4", "P5"), ("P2", "P3", "P4", "P5"), ("P4", "P5")]))}


@st.composite
def ssd_args(draw):
    levels = draw(st.sampled_from([("P3", "P4", "P5"), ("P2", "P3"), ("P4",)]))
    extra = draw(st.integers(0, 1))
    step = max(32, 2 ** (int(levels[-1][1]) + extra))  # the largest stride; resnet18 needs >= 32 pixels
    return {"input_shape": (step * draw(st.integers(1, 2)), step, 3),
            "num_classes": draw(st.integers(1, 5)), "backbone_kwargs": TINY_BACKBONE, "levels": levels,
            "extra_levels": extra, "extra_filters": 8, "neck": draw(st.sampled_from([None, "fpn"])), "neck_filters": 8,
            "head": draw(st.sampled_from(["conv", "separable"])),
            "aspect_ratios": tuple(draw(st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=1, max_size=3,
                                                 unique=True)))}


DETECTORS = {"yolo": yolo_args(), "ssd": ssd_args()}
# detector arguments still answered without naming the argument (kerasvk/models/detection; asserted strictly)
DETECTOR_KNOWN_GAPS = {
    ("yolo", "backbone", "'nosuch'"): "the registry's 'Unknown model name' error, which does not say backbone=",
    ("ssd", "backbone", "'nosuch'"): "the registry's 'Unknown model name' error, which does not say backbone=",
}
DETECTOR_BAD = {
    "yolo": [("input_shape", (48, 48, 3)), ("input_shape", (64, 64)), ("input_shape", "abc"), ("num_classes", 0),
             ("num_classes", 2.5), ("neck_width", 0), ("neck_block", "c3"), ("head_width", -1), ("reg_max", 1),
             ("reg_max", "x"), ("topk", 0), ("alpha", -1), ("loss_weights", (1, 2)), ("levels", ("P3", "P5")),
             ("backbone", "nosuch"), ("backbone_kwargs", [1]), ("class_names", ["a"])],
    "ssd": [("input_shape", (64, 64, 1)), ("input_shape", (60, 60, 3)), ("num_classes", 0), ("levels", ("P9",)),
            ("extra_levels", -1), ("head", "dense"), ("neck", "pan"), ("aspect_ratios", ()), ("aspect_ratios", (0,)),
            ("neg_pos_ratio", 0), ("min_scale", 0), ("anchor_sizes", (1, 2)), ("backbone", "nosuch"),
            ("class_names", ["a", "a"])],
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_arguments(name):
    """Valid detector arguments build and give finite raw outputs for every anchor; one bad argument at a
    time over a valid base is a ``ValueError`` naming it, before anything is built."""
    import keras

    failures = []

    @settings(max_examples=3, **SETTINGS)
    @given(DETECTORS[name])
    def valid(kwargs):
        keras.backend.clear_session()
        model = kerasvk.build(name, **kwargs)
        h, w, _ = kwargs["input_shape"]
        out = model(np.random.default_rng(0).random((1, h, w, 3)).astype("float32"), training=False)
        for t in (out.values() if isinstance(out, dict) else [out]):
            t = np.asarray(t)
            assert t.shape[0] == 1 and np.isfinite(t).all()
        if name == "yolo":  # one row per grid cell of its levels: 4 * reg_max box bins + the class logits
            cells = sum((h // 2 ** int(level[1])) * (w // 2 ** int(level[1])) for level in kwargs["levels"])
            assert np.asarray(out).shape == (1, cells, 4 * kwargs["reg_max"] + kwargs["num_classes"])

    rows = [r for r in DETECTOR_BAD[name] if (name, r[0], repr(r[1])) not in DETECTOR_KNOWN_GAPS]

    @settings(max_examples=6, **SETTINGS)
    @given(DETECTORS[name], st.sampled_from(rows))
    def invalid(kwargs, bad):
        arg, value = bad
        outcome = _bad_outcome(name, {**kwargs, arg: value}, arg)
        if outcome is not None:
            failures.append(f"{name}({arg}={value!r}): {outcome}")

    valid()
    invalid()
    from kerasvk.registry import get_spec

    base = {**get_spec(name).test_kwargs, "backbone_kwargs": TINY_BACKBONE}
    for arg, value in DETECTOR_BAD[name]:  # every row once over the tiny test build
        outcome = _bad_outcome(name, {**base, arg: value}, arg)
        if (name, arg, repr(value)) in DETECTOR_KNOWN_GAPS:
            assert outcome is not None, f"{name}({arg}={value!r}) is fixed: remove it from DETECTOR_KNOWN_GAPS"
        elif outcome is not None:
            failures.append(f"{name}({arg}={value!r}): {outcome}")
    assert not failures, "\n".join(sorted(set(failures)))


# ------------------------------------------------------------------------------------------ box targets
_coord = st.one_of(st.floats(-20, 80, allow_nan=False), st.sampled_from([np.nan, np.inf, -np.inf]))


@settings(max_examples=60, **SETTINGS)
@given(st.integers(1, 3), st.integers(1, 4), st.data())
def test_check_boxes_cleans_or_names_the_first_bad_box(n, m, data):
    """Any boxes/labels: either clean targets (finite, inside the 64x48 image, x1 < x2, y1 < y2, real rows
    first, padding -1), or a ValueError naming the image and row of the first non-finite or flipped box, or
    the first bad label — never another exception."""
    from kerasvk.data.detection import check_boxes

    boxes = np.array(data.draw(st.lists(st.lists(st.lists(_coord, min_size=4, max_size=4), min_size=m, max_size=m),
                                        min_size=n, max_size=n)), "float64")
    labels = np.array(data.draw(st.lists(st.lists(st.integers(-2, 3), min_size=m, max_size=m), min_size=n, max_size=n)))
    h, w = 48, 64
    real = labels != -1
    try:
        out_boxes, out_labels, report = check_boxes(boxes, labels, (h, w), num_classes=3)
    except ValueError as e:
        msg = str(e)
        if ((labels < -1) | (labels >= 3)).any():
            i, j = map(int, np.argwhere(real & ((labels < 0) | (labels >= 3)))[0])
            assert f"labels[{i}, {j}]" in msg, msg
        elif (real & ~np.isfinite(boxes).all(-1)).any():
            i, j = map(int, np.argwhere(real & ~np.isfinite(boxes).all(-1))[0])
            assert f"Box of image {i}, row {j} is not finite" in msg, msg
        else:
            flipped = real & ((boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1]))
            i, j = map(int, np.argwhere(flipped)[0])
            assert f"Box of image {i}, row {j} has x2 < x1 or y2 < y1" in msg, msg
        return
    keep = out_labels >= 0
    assert out_boxes.shape == (n, m, 4) and np.isfinite(out_boxes).all()
    kb = out_boxes[keep]
    assert (kb[:, 0] >= 0).all() and (kb[:, 2] <= w).all() and (kb[:, 1] >= 0).all() and (kb[:, 3] <= h).all()
    assert (kb[:, 2] > kb[:, 0]).all() and (kb[:, 3] > kb[:, 1]).all()
    assert (out_boxes[~keep] == -1).all()
    assert all(not (~row[:-1] & row[1:]).any() for row in keep)  # real rows first
    assert report["boxes"] == int(keep.sum()) and report["boxes"] + report["dropped"] == int(real.sum())


# ------------------------------------------------------------------------------------- training options
_option_value = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(allow_nan=True),
                          st.text(max_size=6), st.sampled_from(["cosine", "step:gamma=0.5", "adam", "sgd",
                                                                "step:step_size=inf", (32, 32), (0, 4), [8, 8]]))


@settings(max_examples=150, **SETTINGS)
@given(st.dictionaries(st.sampled_from(["epochs", "batch_size", "lr", "optimizer", "schedule", "warmup",
                                        "label_smoothing", "l2", "steps_per_epoch", "image_size", "channels",
                                        "val_split", "test_split", "early_stopping"]), _option_value, max_size=3))
def test_training_options_are_accepted_or_refused_naming_one(given_options):
    """Any values of any training options: ``check_options`` accepts them or raises a ``ValueError`` whose
    message names one of the options given — never a TypeError/OverflowError from deeper down."""
    from kerasvk.training.trainer import TRAIN_DEFAULTS, check_options

    opts = {**TRAIN_DEFAULTS, "optimizer": "adam", "lr": 1e-3, **given_options}
    try:
        check_options(opts)
    except ValueError as e:
        msg = str(e).lower()
        assert any(k in msg or k.replace("_", " ") in msg for k in given_options), (given_options, str(e))


_schedule_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**30),
                             st.sampled_from(["1e400", "-1e400", "abc", ""]))


@settings(max_examples=80, **SETTINGS)
@given(st.sampled_from(["cosine", "step", "exponential", "constant", "linear"]),
       st.lists(st.tuples(st.sampled_from(["gamma", "step_size", "k", "min_lr", "x"]), _schedule_number), max_size=2),
       st.integers(1, 5), st.integers(0, 5))
def test_schedule_strings_are_accepted_or_refused_naming_the_schedule(name, options, epochs, warmup):
    """``--schedule NAME:key=value,...`` with any numbers: accepted with finite options, or a ValueError —
    never the OverflowError/silent zero rate an ``inf`` once gave."""
    from kerasvk.training.trainer import TRAIN_DEFAULTS, check_options, learning_rate

    spec = name + (":" + ",".join(f"{k}={v}" for k, v in options) if options else "")
    opts = {**TRAIN_DEFAULTS, "optimizer": "adam", "lr": 1e-3, "schedule": spec, "epochs": epochs, "warmup": warmup}
    try:
        parsed = check_options(opts)
    except ValueError as e:
        assert "chedule" in str(e) or "warmup" in str(e) or any(k in str(e) for k, _ in options), str(e)
        return
    import math

    for _, v in options:
        assert math.isfinite(float(v))  # accepted options are numbers, all finite
    try:
        learning_rate(opts, 3, parsed["schedule"])
    except ValueError:
        pass  # a range the schedule itself refuses (e.g. step_size=0): still a ValueError
