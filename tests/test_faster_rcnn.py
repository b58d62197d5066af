"""Faster R-CNN: box coding, balanced sampling, RoI sampling, a short fit, any-size export, bad input."""

import keras
import numpy as np
import pytest

import kerasvk
from kerasvk.models.detection.base import example_inputs
from kerasvk.models.detection.faster_rcnn import FasterRCNN, decode, encode, sample_balanced
from kerasvk.registry import get_spec

TINY = get_spec("faster_rcnn").test_kwargs
TERMS = ("rpn_class_loss", "rpn_box_loss", "rcnn_class_loss", "rcnn_box_loss")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def jittered_proposals(y, shape, seed=0):
    """Ground-truth boxes shifted by up to 15 % of their size (IoU > 0.5: positives with non-zero targets)."""
    rng = np.random.default_rng(seed)
    boxes, labels = y["boxes"], y["labels"]
    out = np.zeros((len(boxes), shape, 4), "float32")
    valid = np.zeros((len(boxes), shape), "float32")
    for b in range(len(boxes)):
        rows = [r for r in range(boxes.shape[1]) if labels[b, r] >= 0]
        for i in range(shape):
            if not rows:
                break
            x1, y1, x2, y2 = boxes[b, rows[i % len(rows)]]
            w, h = x2 - x1, y2 - y1
            j = rng.uniform(-0.15, 0.15, 4) * np.array([w, h, w, h])
            out[b, i] = (x1 + j[0], y1 + j[1], x2 + j[2], y2 + j[3])
            valid[b, i] = 1.0
    return out, valid


def loss_terms_fixed(model, x, y, sample=None):
    """Loss terms with the RPN sample and the RoIs fixed, so before/after values are comparable."""
    y_pred = model(x, training=True)  # batch statistics: 25 steps leave BN's moving averages behind
    state = model.seed_generator.state.numpy()
    if sample is None:
        props, valid = jittered_proposals(y, int(y_pred["proposals"].shape[1]))
        sample = model.sample_rois(y, {**y_pred, "proposals": props, "proposal_valid": valid})
    rpn_cls, rpn_box, _ = model.rpn_loss(y, y_pred)
    model.seed_generator.state.assign(state)
    rcnn_cls, rcnn_box = model.rcnn_loss(sample, y_pred)
    terms = {"rpn_class_loss": rpn_cls, "rpn_box_loss": rpn_box, "rcnn_class_loss": rcnn_cls, "rcnn_box_loss": rcnn_box}
    return {k: float(_np(v)) for k, v in terms.items()}, sample, y_pred


def fit_heads_on_fixed_rois(model, x, y, epochs=12, jitter=2):
    """Stage two of the paper's alternating training, through ``fit``: backbone, FPN and RPN frozen, the
    jitter and sampling draws repeated every step, so the heads see the same RoIs each step.

    In joint training on one batch the RCNN box term is measured on RoIs that change every step (new
    proposals, new jitter): on the tiny model it does not fall within 20 steps (0.80 -> 0.83 on fixed
    jittered RoIs; full runs do lower it, val_rcnn_box_loss 0.26 -> 0.13 over epochs 2-5). With the RoIs
    fixed, every step of ``train_step`` must lower it. Restores trainable flags and ``roi_jitter``.
    """
    heads = {"box_head", "mask_head"}
    flags = {layer.name: layer.trainable for layer in model.layers}
    jitter_before, state = model.roi_jitter, model.seed_generator.state.numpy()

    class SameDraws(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            model.seed_generator.state.assign(state)

    try:
        for layer in model.layers:
            layer.trainable = layer.name in heads
        model.roi_jitter = jitter
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        return model.fit(x, y, epochs=epochs, batch_size=len(x), verbose=0, callbacks=[SameDraws()]).history
    finally:
        for layer in model.layers:
            layer.trainable = flags[layer.name]
        model.roi_jitter = jitter_before


@pytest.fixture(scope="module")
def trained():
    """A tiny Faster R-CNN fitted 20 steps on one batch of 4 (the last image without objects)."""
    keras.utils.set_random_seed(1)
    model = kerasvk.build("faster_rcnn", **TINY)
    x, y = example_inputs(model, batch_size=4, seed=3)
    before, sample, _ = loss_terms_fixed(model, x, y)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.optimizer.build(model.trainable_variables)
    hist = model.fit(x, y, epochs=20, batch_size=4, verbose=0).history
    after, _, _ = loss_terms_fixed(model, x, y, sample)
    heads = fit_heads_on_fixed_rois(model, x, y)
    return model, x, y, hist, before, after, heads


def test_box_coding_round_trip():
    rng = np.random.default_rng(0)
    xy, wh = rng.uniform(0, 100, (5, 2)), rng.uniform(4, 40, (5, 2))
    ref = np.concatenate([xy, xy + wh], 1)
    xy2, wh2 = xy + rng.uniform(-5, 5, (5, 2)), wh * rng.uniform(0.5, 2, (5, 2))
    box = np.concatenate([xy2, xy2 + wh2], 1)
    np.testing.assert_allclose(_np(decode(encode(box, ref), ref)), box, atol=1e-3)
    np.testing.assert_allclose(_np(decode(np.zeros((5, 4)), ref)), ref, atol=1e-4)


def test_balanced_sampling_respects_positive_fraction():
    rng = np.random.default_rng(0)
    pos = np.zeros((3, 300), bool)
    pos[0, :100] = True   # plenty of both: exactly 16 positives + 48 negatives
    pos[1, :5] = True     # few positives: all 5, negatives fill up to 64
    pos[2, :100] = True   # few negatives (10): all of them, no more positives than the fraction allows
    neg = ~pos
    neg[2, 110:] = False
    for b in range(3):
        pos[b] = pos[b][rng.permutation(300)] if b == 0 else pos[b]
    neg[0] = ~pos[0]
    tp, tn = (_np(v) for v in sample_balanced(pos, neg, 64, 0.25, seed=keras.random.SeedGenerator(0)))
    assert (tp.sum(1) == [16, 5, 16]).all() and (tn.sum(1) == [48, 59, 10]).all()
    assert not (tp & ~pos).any() and not (tn & ~neg).any() and not (tp & tn).any()


def test_roi_sampling_positive_fraction_and_order(trained):
    model, x, y, *_ = trained
    y_pred = model(x)
    props, valid = jittered_proposals(y, int(y_pred["proposals"].shape[1]))
    s = model.sample_rois(y, {**y_pred, "proposals": props, "proposal_valid": valid})
    pos, used, labels = _np(s["positive"]), _np(s["used"]), _np(s["labels"])
    k = int(model.roi_batch_size * model.roi_positive_fraction)
    assert pos.shape == (4, model.roi_batch_size)
    assert np.all(pos.sum(1)[:3] == k) and pos[3].sum() == 0  # many jittered positives: capped at the fraction
    for b in range(4):  # positives first, then negatives, then unused slots
        n = int(pos[b].sum())
        assert pos[b, :n].all() and not pos[b, n:].any() and not (used[b, n:].any() and not used[b, n])
    assert np.all(labels[pos] >= 1) and np.all(labels[used & ~pos] == 0) and np.all(labels[~used] == -1)


def assert_losses_fall(hist, before, after, heads, terms):
    """Joint fit: every term but the RCNN box term falls on a fixed sample; heads on fixed RoIs: the
    RCNN box (and class, mask) terms fall at every step."""
    assert set(hist) == {"loss", *terms}
    joint = [k for k in terms if k != "rcnn_box_loss"]
    assert all(np.isfinite(after[k]) and after[k] < 0.9 * before[k] for k in joint), (before, after)
    for k in [k for k in terms if not k.startswith("rpn")]:
        h = heads[k]
        assert h[-1] < 0.85 * h[0], (k, h)
    box = heads["rcnn_box_loss"]
    assert all(b < a for a, b in zip(box, box[1:])), box
    assert heads["rpn_class_loss"][0] == heads["rpn_class_loss"][-1]  # the RPN was frozen


def test_short_fit_reduces_all_four_losses(trained):
    _, _, _, hist, before, after, heads = trained
    assert_losses_fall(hist, before, after, heads, TERMS)


def test_batch_without_ground_truth_trains(trained):
    model, x, y, *_ = trained
    empty = {"boxes": -np.ones_like(y["boxes"]), "labels": -np.ones_like(y["labels"])}
    hist = model.fit(x, empty, epochs=1, batch_size=len(x), verbose=0).history
    assert np.all(np.isfinite(hist["loss"]))
    assert hist["rpn_box_loss"][-1] == 0.0 and hist["rcnn_box_loss"][-1] == 0.0 and hist["rcnn_class_loss"][-1] > 0


def test_export_any_size_uint8_matches_keras(trained, tmp_path):
    import tensorflow as tf

    from kerasvk.export import export_model

    model, x, *_ = trained
    out_dir = export_model(model, base=tmp_path / "saved_models", name="faster_rcnn")
    fn = tf.saved_model.load(str(out_dir)).signatures["serving_default"]
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 50, 90, 3), dtype="uint8")  # not the model's size, not a multiple of 32
    served = {k: v.numpy() for k, v in fn(images=tf.constant(pixels)).items()}
    assert {"detection_boxes", "detection_scores", "detection_classes", "num_detections"} <= set(served)
    h, w = model.image_shape[:2]
    resized = tf.image.resize(tf.cast(pixels, tf.float32), (h, w)).numpy() / 255.0
    ref = model.detect(resized, score_threshold=model.score_threshold)
    np.testing.assert_array_equal(served["num_detections"], ref["num_detections"])
    for i, n in enumerate(ref["num_detections"]):
        yx = served["detection_boxes"][i, :n]
        np.testing.assert_allclose(np.stack([yx[:, 1] * w, yx[:, 0] * h, yx[:, 3] * w, yx[:, 2] * h], -1),
                                   ref["boxes"][i, :n], atol=1e-2)
        np.testing.assert_allclose(served["detection_scores"][i, :n], ref["scores"][i, :n], atol=1e-4)
    tiny = fn(images=tf.constant(rng.integers(0, 256, (1, 3, 2, 3), dtype="uint8")))  # smaller than any stride
    assert tiny["detection_boxes"].shape == (1, model.max_detections, 4)


def test_keras_round_trip_config(tmp_path):
    model = kerasvk.build("faster_rcnn", **{**TINY, "class_names": ["a", "b", "c"], "box_loss": "giou"})
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, FasterRCNN) and restored.get_config() == model.get_config()
    x, _ = example_inputs(model, 2)
    np.testing.assert_allclose(_np(model(x)["class_logits"]), _np(restored(x)["class_logits"]), atol=1e-5)


BAD_ARGUMENTS = [
    ({"input_shape": (16, 16, 3)}, "multiples of 32 .* and at least 32"),
    ({"input_shape": (96, 80, 3)}, "multiples of 32"),
    ({"input_shape": (64, 64, 1)}, r"\(height, width, 3\)"),
    ({"num_classes": 0}, "num_classes must be an integer >= 1"),
    ({"backbone": "resnet19"}, r"'resnet19' is not a registered model \(did you mean 'resnet18'\?\)\. Allowed backbones"),
    ({"anchor_sizes": (8, 16)}, "one positive pixel size per level"),
    ({"box_loss": "l2"}, "box_loss must be one of"),
    ({"roi_positive_fraction": 0.0}, r"roi_positive_fraction must be a number in \(0, 1\]"),
    ({"num_proposals": 0}, "num_proposals must be an integer >= 1"),
    ({"rpn_positive_iou": 0.3, "rpn_negative_iou": 0.5}, "rpn_negative_iou must be <= rpn_positive_iou"),
]


def test_bad_arguments():
    for kwargs, match in BAD_ARGUMENTS:
        with pytest.raises(ValueError, match=match):
            kerasvk.build("faster_rcnn", **{**TINY, **kwargs})


def test_bad_targets():
    model = kerasvk.build("faster_rcnn", **TINY)
    x, y = example_inputs(model, 2)
    with pytest.raises(ValueError, match="trains on targets"):
        model.compute_loss(x, {"boxes": y["boxes"]}, model(x))
