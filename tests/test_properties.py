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
