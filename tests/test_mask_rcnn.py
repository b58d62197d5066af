"""Mask R-CNN: mask targets, pasting, a short fit reducing all five terms, export with masks, bad masks."""

import keras
import numpy as np
import pytest

import kerasvk
from kerasvk.models.detection.mask_rcnn import MaskRCNN, example_inputs_with_masks, mask_targets, paste_masks
from kerasvk.registry import get_spec
from tests.test_faster_rcnn import TERMS, assert_losses_fall, fit_heads_on_fixed_rois, loss_terms_fixed

TINY = get_spec("mask_rcnn").test_kwargs


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_mask_target_of_box_aligned_square_is_all_ones():
    masks = np.zeros((1, 2, 64, 64), "uint8")
    masks[0, 0, 10:30, 10:30] = 1          # a 20x20 square: pixels 10..29, box (10, 10, 30, 30)
    masks[0, 1, 40:45, 5:60] = 1           # a thin bar
    rois = np.array([[[10, 10, 30, 30], [0, 0, 40, 40], [5, 40, 60, 45], [10, 10, 30, 30]]], "float32")
    t = _np(mask_targets(masks, np.array([[0, 0, 1, 2]]), rois, 28))
    assert t.shape == (1, 4, 28, 28)
    assert t[0, 0].min() == 1.0                      # the box-aligned square fills its RoI
    assert t[0, 2].min() == 1.0                      # so does the bar in its own box
    assert 0.2 < t[0, 1].mean() < 0.3                # the square in a larger RoI: (20/40)² of it
    np.testing.assert_array_equal(t[0, 1, 7:21, 7:21], 1.0)  # pixels 10..29 of 0..39 → bins 7..20 of 28
    assert t[0, 1, :7].max() == 0 and t[0, 1, 21:].max() == 0 and t[0, 1, :, 21:].max() == 0
    assert t[0, 3].max() == 0.0                      # an index past the instances: empty


def test_paste_masks_fills_the_box():
    probs = np.ones((1, 2, 28, 28), "float32")
    boxes = np.array([[[8, 4, 20, 30], [0, 0, 0, 0]]], "float32")
    out = _np(paste_masks(probs, boxes, (32, 40)))
    assert out.shape == (1, 2, 32, 40)
    expected = np.zeros((32, 40))
    expected[4:30, 8:20] = 1
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-5)
    assert out[0, 1].max() == 0  # padding detection: empty mask


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(1)
    model = kerasvk.build("mask_rcnn", **TINY)
    x, y = example_inputs_with_masks(model, batch_size=4, seed=3)

    def terms(sample=None):
        t, sample, y_pred = loss_terms_fixed(model, x, y, sample)
        t["mask_loss"] = float(_np(model.mask_loss(y, sample, y_pred)))
        return t, sample

    before, sample = terms()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.optimizer.build(model.trainable_variables)
    hist = model.fit(x, y, epochs=20, batch_size=4, verbose=0).history
    after, _ = terms(sample)
    heads = fit_heads_on_fixed_rois(model, x, y)
    return model, x, y, hist, before, after, heads


def test_short_fit_reduces_all_five_losses(trained):
    _, _, _, hist, before, after, heads = trained
    assert_losses_fall(hist, before, after, heads, (*TERMS, "mask_loss"))


def test_detect_returns_masks_inside_boxes(trained):
    model, x, *_ = trained
    det = model.detect(x, score_threshold=0.0, max_detections=5)
    assert det["masks"].shape == (4, 5, 64, 64) and det["masks"].dtype == np.uint8
    for i, n in enumerate(det["num_detections"]):
        assert det["masks"][i, n:].max(initial=0) == 0
        for j in range(n):
            x1, y1, x2, y2 = det["boxes"][i, j]
            ys, xs = np.nonzero(det["masks"][i, j])
            if len(ys):  # a mask never leaves its box
                assert ys.min() >= np.floor(y1) and ys.max() < np.ceil(y2)
                assert xs.min() >= np.floor(x1) and xs.max() < np.ceil(x2)


def test_empty_ground_truth_batch_trains(trained):
    model, x, y, *_ = trained
    empty = {"boxes": -np.ones_like(y["boxes"]), "labels": -np.ones_like(y["labels"]),
             "masks": np.zeros_like(y["masks"])}
    hist = model.fit(x, empty, epochs=1, batch_size=len(x), verbose=0).history
    assert np.all(np.isfinite(hist["loss"])) and hist["mask_loss"][-1] == 0.0


def test_export_with_masks_any_size_matches_keras(trained, tmp_path):
    import tensorflow as tf

    from kerasvk.export import export_model

    model, x, *_ = trained
    out_dir = export_model(model, base=tmp_path / "saved_models", name="mask_rcnn")
    fn = tf.saved_model.load(str(out_dir)).signatures["serving_default"]
    pixels = np.round(x * 255).astype("uint8")
    served = {k: v.numpy() for k, v in fn(images=tf.constant(pixels)).items()}
    assert {"detection_boxes", "detection_scores", "detection_classes", "num_detections", "detection_masks"} <= set(served)
    ref = model.detect(pixels.astype("float32") / 255.0)
    np.testing.assert_array_equal(served["num_detections"], ref["num_detections"])
    for i, n in enumerate(ref["num_detections"]):
        np.testing.assert_allclose(served["detection_scores"][i, :n], ref["scores"][i, :n], atol=1e-4)
        agree = (served["detection_masks"][i, :n] == ref["masks"][i, :n]).mean() if n else 1.0
        assert agree > 0.999
    other = fn(images=tf.constant(np.zeros((2, 50, 90, 3), "uint8")))  # any size: masks at the size sent
    assert tuple(other["detection_masks"].shape) == (2, model.max_detections, 50, 90)


def test_round_trip_config(tmp_path):
    model = kerasvk.build("mask_rcnn", **{**TINY, "mask_threshold": 0.4})
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, MaskRCNN) and restored.get_config() == model.get_config()
    x, _ = example_inputs_with_masks(model, 2)
    a, b = model.detect(x, score_threshold=0.0), restored.detect(x, score_threshold=0.0)
    np.testing.assert_array_equal(a["masks"], b["masks"])


def test_bad_masks_and_arguments():
    model = kerasvk.build("mask_rcnn", **TINY)
    x, y = example_inputs_with_masks(model, 2)
    y_pred = model(x)
    with pytest.raises(ValueError, match=r"masks.*must have shape \(batch, max_boxes, height, width\) = \(batch, 4, 64, 64\)"):
        model.compute_loss(x, {**y, "masks": y["masks"][:, :, :32, :32]}, y_pred)
    with pytest.raises(ValueError, match="must have shape"):
        model.compute_loss(x, {**y, "masks": y["masks"][:, :2]}, y_pred)
    with pytest.raises(ValueError, match="no 'masks' in the targets"):
        model.compute_loss(x, {"boxes": y["boxes"], "labels": y["labels"]}, y_pred)
    for kwargs, match in (({"mask_threshold": 1.0}, r"mask_threshold must be a number in \(0, 1\)"),
                          ({"mask_roi_size": 0}, "mask_roi_size must be an integer >= 1"),
                          ({"input_shape": (16, 16, 3)}, "at least 32")):
        with pytest.raises(ValueError, match=match):
            kerasvk.build("mask_rcnn", **{**TINY, **kwargs})
