"""COCO evaluation (pycocotools) of the detection contract's arrays, its printed report, and the detection plots."""

import os

import numpy as np
import pytest

from kerasvk import plots
from kerasvk.evaluation import coco_evaluate, format_detection_report

NAMES = ["circle", "square", "triangle"]
H = W = 128
# (image, box xyxy, class): small (< 32²), medium and large (>= 96²) boxes; image 3 has no object
OBJECTS = [
    (0, (5, 5, 15, 15), 0), (0, (20, 20, 60, 60), 1),
    (1, (10, 10, 110, 110), 2), (1, (0, 114, 12, 126), 0),
    (2, (70, 10, 110, 50), 1), (2, (30, 80, 45, 95), 2),
]
STATS = ("mAP", "mAP_50", "mAP_75", "mAP_small", "mAP_medium", "mAP_large",
         "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large")


def _ellipse(box, h=H, w=W):
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[:h, :w] + 0.5
    return ((xx - (x1 + x2) / 2) / ((x2 - x1) / 2)) ** 2 + ((yy - (y1 + y2) / 2) / ((y2 - y1) / 2)) ** 2 <= 1


def _ground_truth(max_boxes=3, pad_first=False):
    """4 images, the objects of OBJECTS (masks: the ellipse in each box), padding rows label -1, boxes -1."""
    boxes = -np.ones((4, max_boxes, 4), "float32")
    labels = -np.ones((4, max_boxes), "int32")
    masks = np.zeros((4, max_boxes, H, W), "uint8")
    fill = [1 if pad_first else 0] * 4
    for i, box, c in OBJECTS:
        j = fill[i]
        boxes[i, j], labels[i, j], masks[i, j] = box, c, _ellipse(box)
        fill[i] += 1
    return {"boxes": boxes, "labels": labels, "masks": masks}


def _as_detections(gt, k=5):
    """The ground truth as detections with score 1, compacted; rows past num_detections hold junk."""
    n = len(gt["labels"])
    det = {"boxes": np.zeros((n, k, 4), "float32"), "scores": np.ones((n, k), "float32"),
           "classes": np.zeros((n, k), "int32"), "num_detections": np.zeros((n,), "int32"),
           "masks": np.zeros((n, k, H, W), "float32")}
    det["boxes"][:] = (50, 50, 90, 90)  # junk past num_detections: would be false positives if counted
    for i in range(n):
        rows = np.nonzero(gt["labels"][i] >= 0)[0]
        det["num_detections"][i] = len(rows)
        for j, r in enumerate(rows):
            det["boxes"][i, j], det["classes"][i, j] = gt["boxes"][i, r], gt["labels"][i, r]
            det["masks"][i, j] = 0.3 + 0.6 * gt["masks"][i, r]  # probabilities: 0.9 inside, 0.3 outside
    return det


# ------------------------------------------------------------------------------------------ coco_evaluate
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_ground_truth_as_detections_is_perfect(iou_type):
    gt = _ground_truth()
    r = coco_evaluate(gt, _as_detections(gt), NAMES, iou_type=iou_type)
    assert r["mAP"] == pytest.approx(1.0) and r["mAP_50"] == pytest.approx(1.0) and r["mAP_75"] == pytest.approx(1.0)
    assert r["AR_100"] == pytest.approx(1.0)
    assert r["per_class_AP"] == pytest.approx({n: 1.0 for n in NAMES})
    assert r["per_class_AP50"] == pytest.approx({n: 1.0 for n in NAMES})
    assert r["num_images"] == 4 and r["num_ground_truth"] == 6 and r["num_detections"] == 6
    assert r["iou_type"] == iou_type
    assert all(isinstance(r[k], float) or r[k] is None for k in STATS)
    if iou_type == "bbox":  # box areas: 3 small, 2 medium, 1 large (100 x 100)
        assert [r["mAP_small"], r["mAP_medium"], r["mAP_large"]] == pytest.approx([1.0, 1.0, 1.0])
    else:  # mask areas: the 100 x 100 box's ellipse is ~7850 px² < 96², so no object is large: COCO's -1 is None
        assert r["mAP_large"] is None and r["AR_large"] is None
        assert r["mAP_medium"] == pytest.approx(1.0)


def test_segm_scores_the_masks_not_the_boxes():
    gt = _ground_truth()
    det = _as_detections(gt)
    det["masks"] = np.roll(det["masks"], 24, axis=-1)  # boxes still perfect, masks moved 24 px right
    assert coco_evaluate(gt, det, NAMES)["mAP"] == pytest.approx(1.0)
    assert coco_evaluate(gt, det, NAMES, iou_type="segm")["mAP"] < 0.3


def test_detections_on_the_wrong_image_or_place_score_zero():
    gt = _ground_truth()
    det = _as_detections(gt)
    shuffled = {k: np.roll(v, 1, axis=0) for k, v in det.items()}  # image i's detections scored on image i+1
    assert coco_evaluate(gt, shuffled, NAMES)["mAP"] < 0.05
    far = dict(det, boxes=det["boxes"] + 1000.0)  # no overlap anywhere: IoU 0
    r = coco_evaluate(gt, far, NAMES)
    assert r["mAP"] == 0.0 and r["mAP_50"] == 0.0 and r["AR_100"] == 0.0


def test_one_wrong_class_drops_only_its_AP():
    names = NAMES + ["unused"]  # a class without ground truth: COCO has no AP for it (None)
    gt = _ground_truth()
    det = _as_detections(gt)
    det["classes"][det["classes"] == 1] = 3  # every square detected as "unused"
    r = coco_evaluate(gt, det, names)
    assert r["per_class_AP"]["square"] == 0.0 and r["per_class_AP50"]["square"] == 0.0
    assert r["per_class_AP"]["circle"] == pytest.approx(1.0) and r["per_class_AP"]["triangle"] == pytest.approx(1.0)
    assert r["per_class_AP"]["unused"] is None and r["per_class_AP50"]["unused"] is None
    assert r["mAP"] == pytest.approx(2 / 3)  # the mean over the 3 classes that have ground truth


def test_hand_computed_average_precision():
    # one image, two circles; one detection inside the first: 10 x 6.2 of its 10 x 10, so IoU 62 / 100 = 0.62
    gt = {"boxes": np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], "float32"), "labels": np.array([[0, 0]])}
    det = {"boxes": np.array([[[0, 0, 10, 6.2], [60, 60, 70, 70]]], "float32"), "scores": np.array([[0.9, 0.95]]),
           "classes": np.array([[0, 0]]), "num_detections": np.array([1])}
    r = coco_evaluate(gt, det, ["circle"])
    # IoU 0.62 matches at the thresholds .50 .55 .60 (3 of 10), not from .65 on. At a matching threshold the
    # ranked list is [TP]: recall 1/2 with precision 1. COCO samples the interpolated precision at the 101
    # recall levels 0, .01, ..., 1: the 51 levels <= 0.5 get 1, the 50 above (never reached) get 0.
    ap50 = 51 / 101
    assert r["mAP_50"] == pytest.approx(ap50)
    assert r["mAP"] == pytest.approx(3 / 10 * ap50)
    assert r["mAP_75"] == 0.0
    assert r["AR_1"] == pytest.approx(3 / 10 * 0.5) and r["AR_100"] == pytest.approx(3 / 10 * 0.5)
    assert r["mAP_small"] == pytest.approx(r["mAP"]) and r["mAP_medium"] is None and r["mAP_large"] is None

    # a false positive ranked above it: ranked [FP, TP], precision 1/2 at recall 1/2, so every level <= 0.5
    # gets 1/2; the top-1 detection is the false positive, so AR@1 is 0
    det["num_detections"] = np.array([2])
    r = coco_evaluate(gt, det, ["circle"])
    assert r["mAP_50"] == pytest.approx(0.5 * ap50)
    assert r["mAP"] == pytest.approx(3 / 10 * 0.5 * ap50)
    assert r["AR_1"] == 0.0 and r["AR_100"] == pytest.approx(0.15)


@pytest.mark.parametrize("k", [0, 5])
def test_no_detections_gives_zeros(k):
    gt = _ground_truth()
    det = {"boxes": np.zeros((4, k, 4), "float32"), "scores": np.zeros((4, k), "float32"),
           "classes": np.zeros((4, k), "int32"), "num_detections": np.zeros((4,), "int32")}
    r = coco_evaluate(gt, det, NAMES)
    assert all(r[key] == 0.0 for key in STATS), r  # every size has ground truth here
    assert r["per_class_AP"] == {n: 0.0 for n in NAMES} and r["per_class_AP50"] == {n: 0.0 for n in NAMES}
    assert r["num_detections"] == 0 and r["num_ground_truth"] == 6
    assert "0.0000" in format_detection_report(r)


def test_padding_rows_are_ignored():
    compact, padded = _ground_truth(max_boxes=2), _ground_truth(max_boxes=6, pad_first=True)
    assert (padded["labels"] == -1).sum() == 24 - 6
    det = _as_detections(compact)
    det["boxes"][:, :, :2] += 2.0  # imperfect detections, so the comparison is not 1.0 == 1.0
    a, b = coco_evaluate(compact, det, NAMES), coco_evaluate(padded, det, NAMES)
    assert 0.2 < a["mAP"] < 0.95
    assert a == b and b["num_ground_truth"] == 6


def test_user_errors_are_clear():
    gt = _ground_truth()
    det = _as_detections(gt)
    boxes_only = {k: v for k, v in det.items() if k != "masks"}
    with pytest.raises(ValueError, match=r"iou_type='segm' needs instance masks.*Received: no 'masks' in detections"):
        coco_evaluate(gt, boxes_only, NAMES, iou_type="segm")
    with pytest.raises(ValueError, match=r"Received: no 'masks' in ground_truth"):
        coco_evaluate({k: gt[k] for k in ("boxes", "labels")}, det, NAMES, iou_type="segm")
    with pytest.raises(ValueError, match=r"iou_type must be one of bbox, segm\. Received: iou_type='keypoints'"):
        coco_evaluate(gt, det, NAMES, iou_type="keypoints")
    with pytest.raises(ValueError, match=r"same images. Received: 4 ground-truth images and 3"):
        coco_evaluate(gt, {k: v[:3] for k, v in det.items()}, NAMES)
    with pytest.raises(ValueError, match=r"ground_truth labels must be class indices in \[0, 2\).*Received: label 2"):
        coco_evaluate(gt, det, NAMES[:2])
    wrong = dict(det, classes=np.where(np.arange(5) == 0, 7, det["classes"]))
    with pytest.raises(ValueError, match=r"detection classes must be 0-based class indices in \[0, 3\)\. Received: class 7"):
        coco_evaluate(gt, wrong, NAMES)
    with pytest.raises(ValueError, match=r"class_names must be distinct"):
        coco_evaluate(gt, det, ["a", "b", "a"])
    with pytest.raises(ValueError, match=r"needs the key 'scores'"):
        coco_evaluate(gt, {k: v for k, v in det.items() if k != "scores"}, NAMES)
    with pytest.raises(ValueError, match=r"image_shape must match the masks' \(H, W\) = \(128, 128\)"):
        coco_evaluate(gt, det, NAMES, iou_type="segm", image_shape=(64, 64))


def test_report_text():
    names = NAMES + ["unused"]
    gt = _ground_truth()
    det = _as_detections(gt)
    det["classes"][det["classes"] == 1] = 3
    r = coco_evaluate(gt, det, names)
    text = format_detection_report(r)
    lines = text.splitlines()
    assert lines[0] == "COCO bbox (pycocotools): 4 images, 6 ground-truth boxes, 6 detections"
    assert lines[1].startswith(f"mAP@[.5:.95] {2 / 3:.4f}")
    rows = {line.split()[0]: line.split()[1:] for line in lines[6:]}
    assert rows["circle"] == ["1.0000", "1.0000"] and rows["square"] == ["0.0000", "0.0000"]
    assert rows["unused"] == ["-", "-"]  # no ground truth: COCO's -1
    # a trainer report with the mask metrics under segm_ keys gets their rows and columns too
    segm = coco_evaluate(gt, det, names, iou_type="segm")
    both = dict(r, **{f"segm_{k}": v for k, v in segm.items() if k not in ("num_images", "num_ground_truth")})
    text = format_detection_report(both)
    assert "COCO segm: 6 detections" in text and "mask AP@[.5:.95]" in text
    assert [ln for ln in text.splitlines() if ln.startswith("circle")][0].split()[1:] == ["1.0000"] * 4


def test_takes_the_contract_nms_output():
    """What Detector.postprocess returns (base.non_max_suppression, per-class, padded with zeros) scores as COCO does."""
    from kerasvk.models.detection.base import non_max_suppression

    gt = _ground_truth()
    n, m = gt["labels"].shape
    boxes = np.concatenate([gt["boxes"], gt["boxes"] + 1.5], axis=1)  # each box and a near duplicate (IoU > 0.5)
    scores = np.zeros((n, 2 * m, len(NAMES)), "float32")
    for i, j in zip(*np.nonzero(gt["labels"] >= 0)):
        scores[i, j, gt["labels"][i, j]] = 0.9
        scores[i, m + j, gt["labels"][i, j]] = 0.6  # suppressed by NMS: no false positives left
    det = {k: np.asarray(v) for k, v in non_max_suppression(boxes, scores, (H, W), max_detections=10).items()}
    assert det["boxes"].shape == (n, 10, 4) and det["num_detections"].tolist() == [2, 2, 2, 0]
    r = coco_evaluate(gt, det, NAMES)
    assert r["mAP"] == pytest.approx(1.0) and r["num_detections"] == 6
    undeduplicated = non_max_suppression(boxes, scores, (H, W), iou_threshold=1.0, max_detections=10)
    r = coco_evaluate(gt, {k: np.asarray(v) for k, v in undeduplicated.items()}, NAMES)
    # the 6 duplicates are false positives (each true box is already matched), but they score below every
    # true positive, so they come after full recall in the ranking: AP, a rank measure, stays 1
    assert r["num_detections"] == 12 and r["mAP"] == pytest.approx(1.0)
    scores[:, m:] *= 1.6  # now they outrank the originals (0.96 > 0.9): every true box is matched by its duplicate
    first = non_max_suppression(boxes, scores, (H, W), iou_threshold=1.0, max_detections=10)
    r = coco_evaluate(gt, {k: np.asarray(v) for k, v in first.items()}, NAMES)
    assert r["mAP_50"] == pytest.approx(1.0) and r["mAP"] < 0.9  # the 1.5 px shift fails the high IoU thresholds


# ------------------------------------------------------------------------------------------ plots
def _plot_inputs():
    images = np.zeros((3, 64, 64, 3), "float32")  # black, so drawn colours are easy to find
    det = {"boxes": np.array([[[8, 8, 40, 40], [30, 30, 60, 60]]] * 3, "float32"),
           "scores": np.array([[0.9, 0.1]] * 3, "float32"),  # the second is below the 0.3 threshold
           "classes": np.array([[0, 1]] * 3, "int32"), "num_detections": np.array([2, 2, 1], "int32")}
    det["masks"] = np.stack([np.stack([_ellipse(b, 64, 64) for b in det["boxes"][0]])] * 3).astype("float32")
    gt = {"boxes": np.array([[[10, 10, 38, 38], [-1, -1, -1, -1]]] * 3, "float32"),
          "labels": np.array([[2, -1]] * 3, "int32")}
    return images, det, gt


def _has_colour(png, rgb, tol=0.03):
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]
    return bool((np.abs(pixels - np.asarray(rgb)).max(axis=-1) < tol).any())


def test_detection_grid_draws_kept_boxes_and_dashed_ground_truth(tmp_path):
    images, det, gt = _plot_inputs()
    colours = plots._class_colors(3)
    path = plots.detection_grid(images, det, NAMES, tmp_path / "plots" / "detections.png", title="t")
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
    assert _has_colour(path, colours[0])  # the kept circle box
    assert not _has_colour(path, colours[1])  # score 0.1 < 0.3: not drawn, not in the legend
    assert not _has_colour(path, colours[2])
    with_gt = plots.detection_grid(images, det, NAMES, tmp_path / "gt.png", ground_truth=gt, max_images=2, cols=1)
    assert _has_colour(with_gt, colours[2])  # the dashed true triangle
    low = plots.detection_grid(images, det, NAMES, tmp_path / "low.png", score_threshold=0.05)
    assert _has_colour(low, colours[1])


def test_mask_grid_draws_masks(tmp_path):
    images, det, gt = _plot_inputs()
    c0 = np.asarray(plots._class_colors(3)[0])
    path = plots.mask_grid(images, det, NAMES, tmp_path / "masks.png", ground_truth=gt, alpha=0.5)
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
    assert _has_colour(path, 0.5 * c0)  # the circle's mask: half its colour over black
    empty = dict(det, masks=np.zeros_like(det["masks"]))
    assert not _has_colour(plots.mask_grid(images, empty, NAMES, tmp_path / "none.png", alpha=0.5), 0.5 * c0)
    with pytest.raises(ValueError, match=r"detections must be a dict with boxes, scores, classes, num_detections, masks"):
        plots.mask_grid(images, {k: v for k, v in det.items() if k != "masks"}, NAMES, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\]"):
        plots.mask_grid(images, det, NAMES, tmp_path / "x.png", alpha=0)
    assert not (tmp_path / "x.png").exists()


def test_detection_plots_leave_nothing_half_written(tmp_path, monkeypatch):
    import matplotlib.figure

    images, det, _ = _plot_inputs()

    def broken_savefig(self, fname, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    for fn in (plots.detection_grid, plots.mask_grid):
        with pytest.raises(OSError, match="disk full"):
            fn(images, det, NAMES, tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_detection_plot_errors(tmp_path):
    images, det, gt = _plot_inputs()
    with pytest.raises(ValueError, match=r"for the N=2 images"):
        plots.detection_grid(images[:2], det, NAMES, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"class indices < len\(class_names\) = 1"):
        plots.detection_grid(images, det, NAMES[:1], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"score_threshold must be a number in \[0, 1\]"):
        plots.detection_grid(images, det, NAMES, tmp_path / "x.png", score_threshold=2)
    with pytest.raises(ValueError, match=r"ground_truth must be a dict with boxes"):
        plots.detection_grid(images, det, NAMES, tmp_path / "x.png", ground_truth={"boxes": gt["boxes"]})
    assert not (tmp_path / "x.png").exists()
