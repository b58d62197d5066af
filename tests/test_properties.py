"""Property-based tests (hypothesis) over builder arguments of a few families.

Any valid combination builds and runs a forward pass (right output shape, finite values); any invalid
one raises ``ValueError`` whose message names the argument — never a TensorFlow error, a ``TypeError``
or a silently built model. Derandomized with few examples and no deadline, so CI is deterministic and
quick. The invalid values are drawn from per-family tables (one bad argument at a time, over a valid base
drawn by hypothesis), and every row is also tried once over the family's defaults. Families: classifiers
(lenet5, simple_cnn, resnet20, mobilenet_v2), the VAE, the GANs (dcgan, wgan_gp), the autoregressive models
(gpt, wavenet, pixelcnn) and the detectors (yolo, ssd, faster_rcnn, mask_rcnn).
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


@st.composite
def gan_args(draw):
    g_filters = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=2)))
    step = 2 ** len(g_filters)
    return {"input_shape": (step * draw(st.integers(1, 2)), step * draw(st.integers(1, 2)), draw(st.sampled_from([1, 3]))),
            "latent_dim": draw(st.integers(1, 4)), "g_filters": g_filters,
            "d_filters": tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=2)))}


@st.composite
def wgan_gp_args(draw):
    return {**draw(gan_args()), "gp_weight": draw(st.floats(0.0, 20.0))}


@st.composite
def gpt_args(draw):
    heads = draw(st.integers(1, 3))
    return {"vocab": draw(st.sampled_from(["ab", "abcdefgh \n", "0123456789"])),
            "context_length": draw(st.integers(1, 12)), "num_layers": draw(st.integers(1, 2)), "num_heads": heads,
            "dim": heads * 2 * draw(st.integers(1, 3)), "mlp_ratio": draw(st.integers(1, 4)),
            "dropout": draw(st.floats(0.0, 0.5)), "tie_weights": draw(st.booleans())}


@st.composite
def wavenet_args(draw):
    return {"quantization_channels": draw(st.integers(2, 16)), "residual_channels": draw(st.integers(2, 8)),
            "skip_channels": draw(st.integers(2, 8)), "max_dilation": draw(st.sampled_from([1, 2, 4, 8])),
            "num_stacks": draw(st.integers(1, 2)), "kernel_size": draw(st.integers(2, 3)),
            "num_classes": draw(st.integers(0, 3)), "cond_dim": draw(st.integers(1, 4))}


@st.composite
def pixelcnn_args(draw):
    c = draw(st.sampled_from([1, 3]))
    return {"input_shape": (draw(st.integers(3, 8)), draw(st.integers(3, 8)), c), "levels": draw(st.integers(2, 8)),
            "filters": c * draw(st.integers(1, 4)), "num_blocks": draw(st.integers(0, 2)),
            "first_kernel_size": draw(st.sampled_from([1, 3, 5])), "gated": draw(st.booleans())}


def _rng():
    return np.random.default_rng(0)


def _check_gan(kwargs, model):
    h, w, c = kwargs["input_shape"]
    images = np.asarray(model(_rng().standard_normal((2, kwargs["latent_dim"])).astype("float32"), training=False))
    assert images.shape == (2, h, w, c) and np.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0  # the generator's images are in [0, 1]
    logits = np.asarray(model.discriminator(images, training=False))
    assert logits.shape[0] == 2 and np.isfinite(logits).all()


def _check_gpt(kwargs, model):
    t = kwargs["context_length"]
    tokens = _rng().integers(0, len(kwargs["vocab"]), (2, t)).astype("int32")
    logits = np.asarray(model(tokens, training=False))
    assert logits.shape == (2, t, len(kwargs["vocab"])) and np.isfinite(logits).all()


def _check_wavenet(kwargs, model):
    codes = _rng().integers(0, kwargs["quantization_channels"], (2, 9)).astype("int32")
    x = [codes, np.array([0, kwargs["num_classes"] - 1], "int32")] if kwargs["num_classes"] else codes
    logits = np.asarray(model(x, training=False))
    assert logits.shape == (2, 9, kwargs["quantization_channels"]) and np.isfinite(logits).all()


def _check_pixelcnn(kwargs, model):
    h, w, c = kwargs["input_shape"]
    logits = np.asarray(model(_rng().random((2, h, w, c)).astype("float32"), training=False))
    assert logits.shape == (2, h, w, c, kwargs["levels"]) and np.isfinite(logits).all()


def _check_image_model(kwargs, model):
    h, w, c = kwargs["input_shape"]
    x = _rng().random((2, h, w, c)).astype("float32")
    y = model(x, training=False)
    if isinstance(y, (list, tuple)):  # the VAE: [reconstruction, z_mean, z_log_var]
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


# family -> (strategy of valid arguments, examples drawn, forward check(kwargs, model))
FAMILIES = {
    "lenet5": (lenet5_args(), 3, _check_image_model),
    "simple_cnn": (simple_cnn_args(), 4, _check_image_model),
    "resnet20": (resnet20_args(), 3, _check_image_model),
    "mobilenet_v2": (mobilenet_v2_args(), 2, _check_image_model),
    "vae": (vae_args(), 3, _check_image_model),
    "dcgan": (gan_args(), 3, _check_gan),
    "wgan_gp": (wgan_gp_args(), 2, _check_gan),
    "gpt": (gpt_args(), 4, _check_gpt),
    "wavenet": (wavenet_args(), 3, _check_wavenet),
    "pixelcnn": (pixelcnn_args(), 4, _check_pixelcnn),
}
SLOW = {"mobilenet_v2"}


def _families():
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(FAMILIES)]


@pytest.mark.parametrize("name", _families())
def test_valid_arguments_build_and_run(name):
    strategy, n, forward = FAMILIES[name]

    @settings(max_examples=n, **SETTINGS)
    @given(strategy)
    def check(kwargs):
        import keras

        keras.backend.clear_session()
        forward(kwargs, kerasvk.build(name, **kwargs))

    check()


COMMON_BAD = [
    ("input_shape", (32, 32)), ("input_shape", (32, 32, 0)), ("input_shape", "abc"), ("input_shape", (1, 1, 3)),
    ("num_classes", 0), ("num_classes", 1), ("num_classes", 2.5), ("num_classes", "ten"), ("num_classes", True),
    ("pooling", "sum"), ("classifier_activation", "bogus"), ("include_top", "yes"),
]
GAN_BAD = [("input_shape", "abc"), ("input_shape", (8, 8)), ("input_shape", (9, 9, 1)), ("latent_dim", 0),
           ("latent_dim", 1.5), ("g_filters", ()), ("g_filters", (0,)), ("d_filters", "ab"), ("d_filters", 8)]
BAD = {
    "lenet5": [*COMMON_BAD, ("subsampling", "min")],
    "simple_cnn": [*COMMON_BAD, ("filters", ()), ("filters", (0,)), ("filters", (-4, 8)), ("dense_units", 0),
                   ("dense_units", -1), ("dropout", 1.5), ("dropout", -0.1)],
    "resnet20": [*COMMON_BAD, ("width_multiplier", 0), ("width_multiplier", -1), ("width_multiplier", "wide"),
                 ("blocks_per_stage", 0), ("blocks_per_stage", 1.5), ("shortcut", "C")],
    "mobilenet_v2": [*COMMON_BAD, ("alpha", 0), ("alpha", -1), ("alpha", "x"), ("alpha", True)],
    "vae": [("input_shape", (32, 32)), ("input_shape", (15, 16, 1)), ("input_shape", (16, 16, 0)),
            ("latent_dim", 0), ("latent_dim", 1.5), ("filters", ()), ("filters", (0,)), ("likelihood", "poisson"),
            ("beta", -1.0), ("beta", "x"), ("beta", float("nan")), ("dense_units", 0), ("num_classes", 1),
            ("gaussian_sigma", 0), ("latent_dim", True), ("filters", "ab")],
    "dcgan": [*GAN_BAD],
    "wgan_gp": [*GAN_BAD, ("gp_weight", -1.0), ("gp_weight", "x")],
    "gpt": [("vocab", ""), ("vocab", 5), ("context_length", 0), ("num_layers", 0), ("num_heads", 0), ("dim", 0),
            ("dim", 2.5), ("mlp_ratio", 0), ("mlp_ratio", "x"), ("dropout", 1.5), ("dropout", "x"),
            ("tie_weights", "yes")],
    "wavenet": [("quantization_channels", 1), ("residual_channels", 0), ("skip_channels", "x"), ("max_dilation", 3),
                ("num_stacks", 0), ("kernel_size", 1), ("num_classes", -1), ("cond_dim", 0), ("sample_rate", 0),
                ("sample_rate", "x")],
    "pixelcnn": [("input_shape", "abc"), ("input_shape", (8, 8)), ("input_shape", (8, 8, 0)), ("levels", 1),
                 ("levels", 300), ("filters", 0), ("num_blocks", -1), ("first_kernel_size", 2),
                 ("first_kernel_size", 0), ("gated", "yes")],
}
HEAD_ONLY = ("num_classes", "classifier_activation")


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
    strategy = FAMILIES[name][0]
    rows = BAD[name]
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
        outcome = _bad_outcome(name, {**FAMILY_DEFAULTS.get(name, {}), arg: value}, arg)  # include_top=True
        if outcome is not None:
            failures.append(f"{name}({arg}={value!r}): {outcome}")
    assert not failures, "\n".join(sorted(set(failures)))


# the defaults every row is tried over once (small input shapes: each row stays cheap)
FAMILY_DEFAULTS = {name: {"input_shape": shape} for name, shape in (
    ("lenet5", (32, 32, 1)), ("simple_cnn", (16, 16, 3)), ("resnet20", (16, 16, 3)), ("mobilenet_v2", (32, 32, 3)),
    ("vae", (16, 16, 1)), ("dcgan", (8, 8, 1)), ("wgan_gp", (8, 8, 1)), ("pixelcnn", (6, 6, 1)))}


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


@st.composite
def faster_rcnn_args(draw):
    side = st.sampled_from([32, 64])
    return {"input_shape": (draw(side), draw(side), 3), "num_classes": draw(st.integers(1, 4)),
            "backbone_kwargs": TINY_BACKBONE, "fpn_filters": draw(st.sampled_from([4, 8])),
            "anchor_sizes": tuple(draw(st.sampled_from([(8.0, 16.0, 32.0, 64.0), (4, 8, 16, 32)]))),
            "aspect_ratios": tuple(draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=1, max_size=3, unique=True))),
            "rpn_pre_nms_topk": draw(st.integers(8, 64)), "num_proposals": draw(st.integers(1, 8)),
            "roi_size": draw(st.integers(2, 4)), "head_units": draw(st.sampled_from([4, 8])),
            "box_loss": draw(st.sampled_from(["smooth_l1", "giou"])), "roi_jitter": draw(st.integers(0, 2))}


@st.composite
def mask_rcnn_args(draw):
    return {**draw(faster_rcnn_args()), "mask_roi_size": draw(st.integers(2, 4)), "mask_filters": 4,
            "mask_convs": draw(st.integers(0, 1)), "max_detections": draw(st.integers(1, 5))}


DETECTORS = {"yolo": yolo_args(), "ssd": ssd_args(), "faster_rcnn": faster_rcnn_args(), "mask_rcnn": mask_rcnn_args()}
RCNN_BAD = [("input_shape", (48, 48, 3)), ("input_shape", (64, 64, 1)), ("input_shape", "abc"), ("num_classes", 0),
            ("backbone", "nosuch"), ("backbone", "resnet20"), ("backbone_kwargs", [1]), ("fpn_filters", 0),
            ("anchor_sizes", (1, 2)), ("aspect_ratios", ()), ("rpn_nms_iou", 0), ("rpn_positive_iou", 2),
            ("rpn_negative_iou", 0.9), ("roi_size", 0), ("roi_canonical_size", 0), ("box_loss", "l3"), ("seed", "x"),
            ("num_proposals", 0), ("roi_positive_fraction", 1.5), ("score_threshold", 2), ("class_names", ["a"])]
DETECTOR_BAD = {
    "yolo": [("input_shape", (48, 48, 3)), ("input_shape", (64, 64)), ("input_shape", "abc"), ("num_classes", 0),
             ("num_classes", 2.5), ("neck_width", 0), ("neck_block", "c3"), ("head_width", -1), ("reg_max", 1),
             ("reg_max", "x"), ("topk", 0), ("alpha", -1), ("loss_weights", (1, 2)), ("levels", ("P3", "P5")),
             ("backbone", "nosuch"), ("backbone_kwargs", [1]), ("class_names", ["a"])],
    "ssd": [("input_shape", (64, 64, 1)), ("input_shape", (60, 60, 3)), ("num_classes", 0), ("levels", ("P9",)),
            ("extra_levels", -1), ("head", "dense"), ("neck", "pan"), ("aspect_ratios", ()), ("aspect_ratios", (0,)),
            ("neg_pos_ratio", 0), ("min_scale", 0), ("anchor_sizes", (1, 2)), ("backbone", "nosuch"),
            ("class_names", ["a", "a"])],
    "faster_rcnn": RCNN_BAD,
    "mask_rcnn": [*RCNN_BAD, ("mask_roi_size", 0), ("mask_filters", 0), ("mask_convs", -1), ("mask_threshold", 1.5),
                  ("mask_threshold", "x")],
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_arguments(name):
    """Valid detector arguments build and give finite raw outputs for every anchor; one bad argument at a
    time over a valid base is a ``ValueError`` naming it, before anything is built."""
    import keras

    failures = []

    @settings(max_examples=3 if name in ("yolo", "ssd") else 2, **SETTINGS)
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
        if name in ("faster_rcnn", "mask_rcnn"):  # anchors of P2-P5, then num_proposals RoIs through the box head
            k, n, c = len(kwargs["aspect_ratios"]), kwargs["num_proposals"], kwargs["num_classes"]
            anchors = sum((h // s) * (w // s) * k for s in (4, 8, 16, 32))
            assert out["rpn_deltas"].shape == (1, anchors, 4) and out["proposals"].shape == (1, n, 4)
            assert out["class_logits"].shape == (1, n, c + 1) and out["box_deltas"].shape == (1, n, 4 * c)
        if name == "mask_rcnn":  # one full-image mask per detection
            masks = model.detect(np.random.default_rng(1).random((1, h, w, 3)).astype("float32"))["masks"]
            assert masks.shape == (1, kwargs["max_detections"], h, w) and np.isfinite(masks).all()

    rows = DETECTOR_BAD[name]

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
        if outcome is not None:
            failures.append(f"{name}({arg}={value!r}): {outcome}")
    assert not failures, "\n".join(sorted(set(failures)))
    # an unknown backbone: the message names `backbone` and lists the registered models that can be one
    with pytest.raises(ValueError, match=r"Allowed backbones: .*resnet18.*Received: backbone='resnt18'") as e:
        kerasvk.build(name, **{**base, "backbone": "resnt18"})
    assert "did you mean 'resnet18'?" in str(e.value) and "lenet5" not in str(e.value)


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
