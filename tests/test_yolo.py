"""YOLO (kerasvk/models/detection/yolo.py) and the PAN-FPN neck (neck.py): shapes, assignment, losses,
training, detection output, serialization and errors, at tiny sizes (64×64 inputs, widths of 8)."""

import keras
import numpy as np
import pytest

import kerasvk
from kerasvk.models.detection import yolo as Y
from kerasvk.models.detection.base import example_inputs
from kerasvk.models.detection.neck import feature_pyramid, fpn, pan_fpn
from kerasvk.registry import get_spec

TINY = get_spec("yolo").test_kwargs


V8_STRIDES = (8, 16, 32)


def tiny(**kw):
    """The registry's tiny YOLO on YOLOv8's P3–P5 (the grid the unit tests below are written for); the P2–P5
    default is covered by test_p2_levels..., test_models_common and test_detection_task."""
    return kerasvk.build("yolo", **{**TINY, "levels": Y.V8_LEVELS, **kw})


def fixed_batch():
    """Two images with large, well separated boxes and one image with none (all padding)."""
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 1, (3, 64, 64, 3)).astype("float32")
    boxes = -np.ones((3, 3, 4), "float32")
    labels = -np.ones((3, 3), "int32")
    boxes[0, :2] = [[4, 6, 30, 28], [36, 34, 60, 62]]
    labels[0, :2] = [0, 2]
    boxes[1, :3] = [[2, 2, 62, 40], [8, 44, 24, 60], [40, 44, 56, 60]]
    labels[1, :3] = [1, 0, 2]
    for b in range(2):  # paint the boxes so there is something to learn
        for (x1, y1, x2, y2), c in zip(boxes[b], labels[b]):
            if c >= 0:
                images[b, int(y1):int(y2), int(x1):int(x2)] = np.eye(3)[c] * 0.9
    return images, {"boxes": boxes, "labels": labels}


# ----------------------------------------------------------------------------------- structure
def test_grid_points_convention():
    points, strides = Y._grid_points((64, 64, 3), V8_STRIDES)
    assert points.shape == (8 * 8 + 4 * 4 + 2 * 2, 2) and strides.shape == (84,)
    np.testing.assert_array_equal(points[:3], [[4, 4], [12, 4], [20, 4]])  # row-major: x varies fastest
    np.testing.assert_array_equal(points[8], [4, 12])
    np.testing.assert_array_equal(points[64], [8, 8])  # P4 starts after the 64 P3 cells
    np.testing.assert_array_equal(points[-1], [48, 48])
    np.testing.assert_array_equal(np.unique(strides, return_counts=True)[1], [64, 16, 4])


def test_output_shapes_and_decode():
    model = tiny()
    x, _ = example_inputs(model, batch_size=2)
    out = model(x)
    assert tuple(out.shape) == (2, 84, 4 * TINY["reg_max"] + 3)
    boxes, scores = model.decode_predictions(out)
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    assert boxes.shape == (2, 84, 4) and scores.shape == (2, 84, 3)
    assert np.all((scores > 0) & (scores < 1))
    # every decoded box contains its point (distances are >= 0)
    assert np.all(boxes[..., :2] <= model.points + 1e-4) and np.all(boxes[..., 2:] >= model.points - 1e-4)
    # fresh class logits start at the 0.01 prior (bias) up to the features' contribution
    assert 0.001 < float(np.median(scores)) < 0.1
    for name in ("neck_td_p3_cv2_conv", "neck_bu_p5_down_conv", "head_p4_box_pred", "head_p5_cls_pred"):
        model.get_layer(name)
    with pytest.raises(ValueError, match="'boxes'"):  # targets must be the detection dict
        model.compute_loss(x, np.zeros((2,)), out)


def test_distances_roundtrip():
    points, strides = Y._grid_points((64, 64, 3), V8_STRIDES)
    d = np.random.default_rng(0).uniform(0, 5, (2, 84, 4)).astype("float32")
    boxes = Y.distances_to_boxes(d, points, strides)
    np.testing.assert_allclose(np.asarray(Y.boxes_to_distances(boxes, points, strides)), d, atol=1e-4)


def test_neck_keeps_levels_and_widths():
    feats = {f"P{k}": keras.Input((64 >> k, 64 >> k, 4 * k), name=f"P{k}") for k in (3, 4, 5)}
    out = pan_fpn(feats, width=(8, 16, 24), name="pan")
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {"P3": (8, 8, 8), "P4": (4, 4, 16), "P5": (2, 2, 24)}
    plain = fpn(feats, width=8, block="conv", depth=2)
    assert sorted(plain) == ["P3", "P4", "P5"] and all(v.shape[-1] == 8 for v in plain.values())
    model = keras.Model(feats, out)
    assert any(layer.name.startswith("pan_bu_p5") for layer in model.layers)
    assert not any(layer.name.startswith("fpn_bu") for layer in keras.Model(feats, plain).layers)


NECK_ERRORS = [
    ({"features": {"P3": None, "P5": None}}, "consecutive"),
    ({"features": {"P6": None}}, "Unknown pyramid level"),
    ({"features": []}, "non-empty dict"),
    ({"width": (8, 8)}, "one int per level"),
    ({"width": 0}, "positive int"),
    ({"block": "csp"}, "Allowed: c2f, conv"),
    ({"depth": 0}, "depth must be"),
]


def test_neck_errors():
    for kwargs, match in NECK_ERRORS:
        kwargs = dict(kwargs)
        feats = {f"P{k}": keras.Input((64 >> k, 64 >> k, 4)) for k in (3, 4, 5)}
        if "features" in kwargs:
            given = kwargs.pop("features")
            feats = {k: feats.get(k, keras.Input((2, 2, 4))) for k in given} if isinstance(given, dict) else given
        with pytest.raises(ValueError, match=match):
            feature_pyramid(feats, **kwargs)


def test_neck_needs_exact_halving():
    feats = {"P3": keras.Input((9, 9, 4)), "P4": keras.Input((4, 4, 4))}
    with pytest.raises(ValueError, match="exactly twice"):
        fpn(feats)


# ---------------------------------------------------------------------------------- assignment
def _assign(gt_boxes, gt_labels, pred_boxes=None, topk=10, num_classes=3, image=64):
    points, _ = Y._grid_points((image, image, 3), V8_STRIDES)
    b = len(gt_boxes)
    if pred_boxes is None:  # every point predicts a 24-px box around itself
        pred_boxes = np.concatenate([points - 12, points + 12], -1)[None].repeat(b, 0)
    scores = np.full((b, len(points), num_classes), 0.5, "float32")
    out = Y.task_aligned_assign(scores, pred_boxes.astype("float32"), points, np.asarray(gt_boxes, "float32"),
                                np.asarray(gt_labels, "int32"), topk=topk)
    return {k: np.asarray(v) for k, v in out.items()}, points


def test_tal_every_box_gets_points_within_topk_and_padding_gets_none():
    gt = [[[2, 2, 30, 30], [34, 34, 62, 62], [40, 4, 50, 14], [-1, -1, -1, -1]],
          [[-1, -1, -1, -1]] * 4]
    labels = [[0, 1, 2, -1], [-1] * 4]
    for k in (1, 3, 10):
        out, points = _assign(gt, labels, topk=k)
        per_box = out["assigned"].sum(-1)  # (B, M)
        assert np.all(per_box[0, :3] >= 1) and np.all(per_box <= k)
        assert per_box[0, 3] == 0 and per_box[1].sum() == 0 and not out["fg_mask"][1].any()
        assert np.all(out["assigned"].sum(1) <= 1)  # one box per point
        # positives lie inside their box, carry its box and class, and background carries nothing
        b, m, p = np.nonzero(out["assigned"])
        box = np.asarray(gt, "float32")[b, m]
        assert np.all((points[p] > box[:, :2]) & (points[p] < box[:, 2:]))
        np.testing.assert_array_equal(out["target_boxes"][b, p], box)
        np.testing.assert_array_equal(out["target_scores"][b, p].argmax(-1), np.asarray(labels)[b, m])
        assert np.all(out["target_scores"][~out["fg_mask"]] == 0)
    # the large boxes hold far more than 10 points: exactly top-k of them are taken
    out, _ = _assign(gt, labels, topk=10)
    assert out["assigned"][0, :2].sum(-1).tolist() == [10, 10]


def test_tal_normalised_targets_and_conflicts():
    out, points = _assign([[[0, 0, 40, 40], [8, 8, 48, 48]]], [[0, 1]], topk=84)
    assigned, scores = out["assigned"][0], out["target_scores"][0]
    shared = (points > 8).all(-1) & (points < 40).all(-1)  # centres inside both boxes
    assert assigned[:, shared].sum(0).max() == 1  # a point claimed by both keeps one box only
    # per box, the best target score is the best IoU of its positives (TAL normalisation)
    pred = np.concatenate([points - 12, points + 12], -1)
    iou = np.asarray(Y.pairwise_iou(np.asarray([[[0, 0, 40, 40], [8, 8, 48, 48]]], "float32"), pred[None]))[0]
    for m in range(2):
        pos = assigned[m] > 0
        np.testing.assert_allclose(scores[pos, m].max(), iou[m, pos].max(), rtol=1e-4)
    # on a conflict the box with the higher IoU wins
    for p in np.flatnonzero(shared):
        assert assigned[:, p].argmax() == iou[:, p].argmax() or assigned[:, p].sum() == 0


def test_tal_box_without_points_inside_and_no_box_slots():
    out, _ = _assign([[[1, 1, 3, 3]]], [[0]])  # no cell centre inside a 2-px box: nothing to assign
    assert out["assigned"].sum() == 0
    out, _ = _assign(np.zeros((2, 0, 4)), np.zeros((2, 0)))  # zero box slots: every point is background
    assert out["target_scores"].shape == (2, 84, 3) and out["target_scores"].sum() == 0


# ------------------------------------------------------------------------------------------ losses
def test_ciou_loss_zero_for_identical_boxes_and_grows_with_offset():
    box = np.array([[10.0, 12.0, 40.0, 30.0]], "float32")
    assert abs(float(np.asarray(Y.ciou_loss(box, box))[0])) < 1e-5
    shifted = [float(np.asarray(Y.ciou_loss(box + [d, 0, d, 0], box))[0]) for d in (2, 8, 20)]
    assert 0 < shifted[0] < shifted[1] < shifted[2]


def test_dfl_minimal_at_the_target():
    target = np.array([[2.3, 0.0, 6.98, 4.5]], "float32")
    r = 8
    left = np.floor(target).astype(int)
    probs = np.zeros((1, 4, r), "float32")
    for s in range(4):
        w = left[0, s] + 1 - target[0, s]
        probs[0, s, left[0, s]] = w
        probs[0, s, min(left[0, s] + 1, r - 1)] += 1 - w
    best = np.log(np.maximum(probs, 1e-12))
    worse = np.roll(best, 2, axis=-1)
    d_best = float(np.asarray(Y.distribution_focal_loss(best, target))[0])
    d_worse = float(np.asarray(Y.distribution_focal_loss(worse, target))[0])
    assert d_best < d_worse


def test_training_empty_batch_detect_and_keras_roundtrip(tmp_path):
    """One model (one traced train step, which dominates the time): ~30 steps on a fixed batch reduce each
    loss; a batch without boxes trains with finite losses; detect pads; .keras round trip is exact."""
    keras.utils.set_random_seed(1)
    model = tiny(class_names=["a", "b", "c"])
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.optimizer.build(model.trainable_variables)  # built outside the traced step: traced once, not twice
    x, y = fixed_batch()
    hist = model.fit(x, y, batch_size=len(x), epochs=30, verbose=0).history
    assert set(hist) == {"loss", "box_loss", "class_loss", "dfl_loss"}
    for key in ("loss", "box_loss", "class_loss", "dfl_loss"):
        first, last = np.mean(hist[key][:3]), np.mean(hist[key][-3:])
        assert np.all(np.isfinite(hist[key])) and last < 0.8 * first, (key, hist[key])

    # no boxes at all (same shapes, so the same traced step): background only, finite, box/DFL terms 0
    empty = {"boxes": -np.ones_like(y["boxes"]), "labels": -np.ones_like(y["labels"])}
    hist = model.fit(x, empty, batch_size=len(x), epochs=2, verbose=0).history
    assert np.all(np.isfinite(hist["loss"])) and hist["box_loss"] == [0.0, 0.0] and hist["dfl_loss"] == [0.0, 0.0]
    assert hist["class_loss"][0] > 0
    assert all(np.all(np.isfinite(np.asarray(w))) for w in model.trainable_weights)

    # detect: padded to max_detections; past num_detections everything is zero
    det = model.detect(x, batch_size=2, score_threshold=0.0, max_detections=7)
    assert det["boxes"].shape == (3, 7, 4) and det["scores"].shape == (3, 7) and det["classes"].shape == (3, 7)
    assert det["classes"].dtype == np.int32 and det["num_detections"].dtype == np.int32
    assert np.all(det["num_detections"] == 7)  # threshold 0: every image fills its slots
    assert np.all((det["boxes"] >= 0) & (det["boxes"] <= 64)) and np.all(np.isin(det["classes"], [0, 1, 2]))
    few = {k: np.asarray(v) for k, v in model.postprocess(model(x), score_threshold=0.999, max_detections=7).items()}
    assert np.all(few["num_detections"] == 0) and np.all(few["boxes"] == 0) and few["boxes"].shape == (3, 7, 4)

    path = tmp_path / "yolo.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, Y.YOLO) and restored.get_config() == model.get_config()
    assert restored.class_names == ("a", "b", "c") and restored.reg_max == model.reg_max
    np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), atol=1e-5)


def test_config_roundtrip_of_options():
    model = tiny(reg_max=6, neck_block="conv", topk=5, loss_weights=(1.0, 2.0, 3.0), iou_threshold=0.6)
    again = Y.YOLO.from_config(model.get_config())
    assert again.get_config() == model.get_config() and again.count_params() == model.count_params()
    assert again.reg_max == 6 and again.topk == 5 and again.loss_weights == (1.0, 2.0, 3.0)
    assert tuple(again.output.shape) == (None, 84, 4 * 6 + 3)


def test_p2_levels_add_the_stride_4_grid_and_round_trip():
    """``levels=("P2", ..., "P5")`` (YOLOv8-p2): a stride-4 grid before the default three, in the same order."""
    model = tiny(levels=["P4", "P2", "P3", "P5"])  # any order in, fine to coarse out
    assert model.levels == ("P2", "P3", "P4", "P5") and model.strides == (4, 8, 16, 32)
    assert tuple(model.output.shape) == (None, 16 * 16 + 84, 4 * 8 + 3)
    points, strides = Y._grid_points((64, 64, 3), model.strides)
    np.testing.assert_array_equal(model.points, points)
    np.testing.assert_array_equal(points[:2], [[2, 2], [6, 2]])
    np.testing.assert_array_equal(points[256:], Y._grid_points((64, 64, 3), V8_STRIDES)[0])  # then P3-P5 as before
    again = Y.YOLO.from_config(model.get_config())
    assert again.get_config() == model.get_config() and again.get_config()["levels"] == ["P2", "P3", "P4", "P5"]
    x, _ = example_inputs(model, batch_size=1)
    np.testing.assert_allclose(np.asarray(again(x)).shape, np.asarray(model(x)).shape)
    assert tiny(levels=("P3", "P4")).strides == (8, 16)  # a 2-level model: input a multiple of 16 suffices
    assert kerasvk.build("yolo", **TINY).levels == ("P2", "P3", "P4", "P5")  # the registered default


def test_other_backbone():
    model = tiny(backbone="mobilenet_v3_small", backbone_kwargs={"alpha": 0.25})
    x, _ = example_inputs(model, batch_size=1)
    assert tuple(model(x).shape) == (1, 84, 4 * TINY["reg_max"] + 3)


BAD_ARGUMENTS = [
    ({"input_shape": (100, 100, 3)}, "multiples of its largest stride, 32"),
    ({"input_shape": (16, 16, 3)}, "multiples of its largest stride, 32"),
    ({"input_shape": (64, 64)}, r"\(height, width, channels\)"),
    ({"num_classes": 0}, "num_classes must be an integer >= 1"),
    ({"num_classes": 2.5}, "num_classes must be an integer >= 1"),
    ({"backbone": "resnet1"}, "'resnet1' is not a registered model .did you mean 'resnet18'.*Allowed backbones"),
    ({"backbone": "lenet5", "backbone_kwargs": None}, "pyramid levels P3, P4, P5"),
    ({"reg_max": 1}, "reg_max must be"),
    ({"class_names": ["a", "b"]}, "3 strings"),
    ({"neck_block": "csp"}, "Allowed: c2f, conv"),
    ({"iou_threshold": 2.0}, "iou_threshold must be"),
    ({"loss_weights": (1.0, 2.0)}, "three numbers"),
    ({"backbone_kwargs": {"nope": 1}}, "does not take argument"),
    ({"levels": ("P2", "P4")}, "consecutive pyramid levels"),
    ({"levels": ("P6",)}, "consecutive pyramid levels"),
    ({"levels": ()}, "consecutive pyramid levels"),
    ({"levels": ("P3", "P4", "P5"), "input_shape": (48, 48, 3)}, "multiples of its largest stride, 32"),
    ({"backbone": "resnet20", "backbone_kwargs": None, "levels": ("P3", "P4", "P5")}, "pyramid levels P3, P4, P5"),
]


def test_bad_arguments_raise_clear_errors():
    for kwargs, match in BAD_ARGUMENTS:  # one test: each case fails before anything is built
        with pytest.raises(ValueError, match=match):
            tiny(**kwargs)


def test_registered():
    spec = get_spec("yolo")
    assert spec.task == "detection" and spec.family == "yolo" and "yolo" in kerasvk.list_models(task="detection")
    assert spec.example_inputs is example_inputs
    assert {"epochs", "batch_size", "lr", "optimizer", "augment", "schedule"} <= set(spec.train_defaults)
