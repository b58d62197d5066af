"""The detection core: anchors, anchor points, IoU matching, box coding, and base.py's NMS."""

import numpy as np
import pytest

from kerasvk.models.detection import anchors as A
from kerasvk.models.detection.base import non_max_suppression


def np_(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))


# ----- anchors ---------------------------------------------------------------------------------------
def test_anchor_counts_and_exact_coordinates():
    kw = dict(strides=(8, 16), sizes=(8, 16), aspect_ratios=(1.0, 4.0), extra_sizes=(12, None))
    boxes = np_(A.anchor_boxes((16, 16), **kw))
    # level 0: 2×2 cells × (2 ratios + 1 extra); level 1: 1×1 cell × 2 ratios
    assert A.anchor_counts((16, 16), strides=(8, 16), aspect_ratios=(1.0, 4.0), extra_sizes=(12, None)) == [12, 2]
    assert A.boxes_per_cell(strides=(8, 16), aspect_ratios=(1.0, 4.0), extra_sizes=(12, None)) == [3, 2]
    assert boxes.shape == (14, 4) and boxes.dtype == np.float32
    expected_first_cells = [
        [0, 0, 8, 8],  # cell (0, 0) centre (4, 4): 8×8 ratio 1
        [-4, 2, 12, 6],  # ratio 4: 16 wide, 4 high
        [-2, -2, 10, 10],  # extra 12×12
        [8, 0, 16, 8],  # cell (0, 1): centre (12, 4) — row-major, x moves first
        [4, 2, 20, 6],
        [6, -2, 18, 10],
        [0, 8, 8, 16],  # cell (1, 0): centre (4, 12)
    ]
    np.testing.assert_allclose(boxes[:7], expected_first_cells)
    np.testing.assert_allclose(boxes[12], [0, 0, 16, 16])  # level 1 centre (8, 8), 16×16
    np.testing.assert_allclose(boxes[13], [-8, 4, 24, 12])  # 32×8


def test_anchor_scales_outer_ratios_inner_and_default_sizes():
    boxes = np_(A.anchor_boxes((32, 32), strides=(32,), aspect_ratios=(1.0, 0.25), scales=(1.0, 2.0)))
    # one cell at (16, 16), base size 4·32 = 128: (s1 r1), (s1 r.25), (s2 r1), (s2 r.25)
    wh = boxes[:, 2:] - boxes[:, :2]
    np.testing.assert_allclose(wh, [[128, 128], [64, 256], [256, 256], [128, 512]])
    np.testing.assert_allclose((boxes[:, :2] + boxes[:, 2:]) / 2, 16.0)
    # non-multiple image sizes use ceil(H / stride) cells (what 'same' stride-2 convs give)
    assert A.anchor_counts((20, 36), strides=(8,), aspect_ratios=(1.0,)) == [3 * 5]


def test_anchor_points():
    points, strides = A.anchor_points((16, 32), strides=(8, 16))
    points, strides = np_(points), np_(strides)
    assert points.shape == (2 * 4 + 1 * 2, 2) and strides.shape == (10,)
    np.testing.assert_allclose(points[:5], [[4, 4], [12, 4], [20, 4], [28, 4], [4, 12]])
    np.testing.assert_allclose(points[8:], [[8, 8], [24, 8]])
    np.testing.assert_allclose(strides, [8] * 8 + [16] * 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (0, 16)}, "image_shape"),
        ({"strides": ()}, "strides"),
        ({"sizes": (8,)}, "one positive number per stride"),
        ({"aspect_ratios": (1.0, -2.0)}, "aspect_ratios"),
        ({"aspect_ratios": ((1.0,),)}, "one entry per stride"),
    ],
)
def test_anchor_errors(kwargs, match):
    args = {"image_shape": (16, 16), "strides": (8, 16), **kwargs}
    with pytest.raises(ValueError, match=match):
        A.anchor_boxes(**args)


# ----- box coding ------------------------------------------------------------------------------------
def test_encode_decode_identity_and_variance():
    rng = np.random.default_rng(0)
    anchors = np_(A.anchor_boxes((64, 64), strides=(8, 16)))
    xy = rng.uniform(0, 60, (3, len(anchors), 2))
    wh = rng.uniform(1, 40, (3, len(anchors), 2))
    boxes = np.concatenate([xy, xy + wh], -1).astype("float32")
    deltas = A.encode_boxes(boxes, anchors)
    np.testing.assert_allclose(np_(A.decode_boxes(deltas, anchors)), boxes, atol=1e-4)
    # the documented coding: (cx − acx)/(aw·0.1), (cy − acy)/(ah·0.1), log(w/aw)/0.2, log(h/ah)/0.2
    a, b = anchors[5], np.array([10.0, 12.0, 30.0, 20.0], "float32")
    aw, ah = a[2] - a[0], a[3] - a[1]
    expected = [
        ((b[0] + b[2]) / 2 - (a[0] + a[2]) / 2) / (aw * 0.1),
        ((b[1] + b[3]) / 2 - (a[1] + a[3]) / 2) / (ah * 0.1),
        np.log((b[2] - b[0]) / aw) / 0.2,
        np.log((b[3] - b[1]) / ah) / 0.2,
    ]
    np.testing.assert_allclose(np_(A.encode_boxes(b[None], a[None]))[0], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="variance must be 4 positive numbers"):
        A.encode_boxes(b[None], a[None], variance=(0.1, 0.2))


# ----- matching --------------------------------------------------------------------------------------
def _targets():
    boxes = -np.ones((3, 4, 4), "float32")
    labels = -np.ones((3, 4), "int32")
    boxes[0, :3] = [[3, 3, 9, 9], [20, 20, 60, 60], [70, 10, 120, 40]]  # a tiny 6 px box, two larger ones
    labels[0, :3] = [0, 1, 2]
    boxes[1, 0] = [40, 40, 100, 100]
    labels[1, 0] = 1
    boxes[1, 2] = [0, 0, 128, 128]  # a padded row with a real-looking box: label -1 must never match
    return boxes, labels  # image 2: no boxes at all


def test_every_gt_box_gets_a_positive_anchor_padded_rows_never_match():
    anchors = A.anchor_boxes((128, 128), strides=(8, 16, 32), sizes=(24, 48, 96))
    boxes, labels = _targets()
    m = {k: np_(v) for k, v in A.match_anchors(anchors, boxes, labels).items()}
    pos, gt = m["positive"], m["matched_gt"]
    assert m["positive"].shape == (3, len(np_(anchors)))
    for b in range(3):
        for j in np.flatnonzero(labels[b] >= 0):
            assert np.any(pos[b] & (gt[b] == j)), f"image {b} box {j} has no positive anchor"
    # the 6 px box overlaps a 24 px anchor by at most (6·6)/(24·24) = 0.0625: matched only by force
    tiny = pos[0] & (gt[0] == 0)
    assert tiny.sum() == 1 and m["iou"][0][tiny][0] < 0.5
    assert not np.any(pos[1] & (gt[1] == 2)) and not np.any(pos[1] & (gt[1] == 3))
    assert not pos[2].any() and not m["ignore"][2].any()  # an image without boxes: all negative
    assert np.all(m["labels"][~pos] == -1)
    np.testing.assert_array_equal(m["labels"][pos], labels[np.nonzero(pos)[0], gt[pos]])
    np.testing.assert_allclose(m["boxes"][pos], boxes[np.nonzero(pos)[0], gt[pos]])
    # without force_match the tiny box is lost (IoU below 0.5 everywhere)
    loose = {k: np_(v) for k, v in A.match_anchors(anchors, boxes, labels, force_match=False).items()}
    assert not np.any(loose["positive"][0] & (loose["matched_gt"][0] == 0))
    assert np.all(loose["iou"][loose["positive"]] >= 0.5)


def test_thresholds_and_ignore_band():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 6], [0, 0, 10, 3], [50, 50, 60, 60]], "float32")
    boxes = np.array([[[0, 0, 10, 10]]], "float32")
    labels = np.array([[2]], "int32")
    m = {k: np_(v) for k, v in A.match_anchors(anchors, boxes, labels, positive_iou=0.5, negative_iou=0.25).items()}
    # IoUs 1.0, 0.6, 0.3, 0.0 → positive, positive, ignored, negative
    np.testing.assert_array_equal(m["positive"][0], [True, True, False, False])
    np.testing.assert_array_equal(m["ignore"][0], [False, False, True, False])
    np.testing.assert_allclose(m["iou"][0], [1.0, 0.6, 0.3, 0.0], atol=1e-6)
    np.testing.assert_array_equal(m["labels"][0], [2, 2, -1, -1])
    with pytest.raises(ValueError, match="negative_iou must be <= positive_iou"):
        A.match_anchors(anchors, boxes, labels, positive_iou=0.4, negative_iou=0.5)


def test_matching_with_zero_boxes_columns():
    anchors = A.anchor_boxes((32, 32), strides=(16,))
    m = A.match_anchors(anchors, np.zeros((2, 0, 4), "float32"), np.zeros((2, 0), "int32"))
    assert not np_(m["positive"]).any()


# ----- NMS (base.py) ---------------------------------------------------------------------------------
def test_nms_removes_same_class_duplicates_keeps_other_classes():
    a = [10.0, 10.0, 50.0, 50.0]
    b = [10.0, 10.0, 50.0, 54.44]  # IoU(a, b) = 40·40 / (40·44.44) ≈ 0.9
    boxes = np.array([[a, b]], "float32")
    same = np.array([[[0.9, 0.0], [0.8, 0.0]]], "float32")
    out = non_max_suppression(boxes, same, (64, 64), iou_threshold=0.5, max_detections=10)
    assert int(out["num_detections"][0]) == 1
    np.testing.assert_allclose(out["boxes"][0, 0].numpy(), a, atol=1e-4)
    assert float(out["scores"][0, 0]) == pytest.approx(0.9)
    other = np.array([[[0.9, 0.0], [0.0, 0.8]]], "float32")
    out = non_max_suppression(boxes, other, (64, 64), iou_threshold=0.5, max_detections=10)
    assert int(out["num_detections"][0]) == 2
    assert sorted(out["classes"][0, :2].numpy().tolist()) == [0, 1]
    assert np.all(out["scores"][0, 2:].numpy() == 0)  # padded past num_detections
