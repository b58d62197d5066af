"""COCO detection metrics from pycocotools (``COCOeval``), computed in memory from numpy arrays.

``coco_evaluate`` takes the ground truth in the detection contract's target format (``boxes`` xyxy pixels,
``labels`` padded with -1, see ``kerasvk.models.detection.base``) and what ``Detector.detect`` returns,
builds the COCO ground truth and results in memory (no JSON files), and runs pycocotools' own evaluation
(``evaluate``, ``accumulate``, ``summarize``), so the numbers are the ones COCO leaderboards report:
mAP@[.5:.95] averaged over classes, 101-point interpolated precision, at most 100 detections per image,
areas small < 32² ≤ medium < 96² ≤ large (pixels²).

Only numpy and pycocotools are imported: no TensorFlow or Keras.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from kerasvk.models.detection.base import PAD_LABEL

IOU_TYPES = ("bbox", "segm")
_STAT_KEYS = ("mAP", "mAP_50", "mAP_75", "mAP_small", "mAP_medium", "mAP_large",
              "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large")


def _array(d, key, what, ndim):
    if key not in d:
        raise ValueError(f"{what} needs the key {key!r}. Received: keys={sorted(d)}")
    a = np.asarray(d[key])
    if a.ndim != ndim:
        raise ValueError(f"{what}[{key!r}] must be {ndim}-D. Received: shape={a.shape}")
    return a


def _binary(masks):
    """Boolean masks of binary or probability masks (floats: ``>= 0.5``; integers/bools: non-zero)."""
    masks = np.asarray(masks)
    return masks >= 0.5 if np.issubdtype(masks.dtype, np.floating) else masks != 0


def _rle(mask):
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _check(ground_truth, detections, class_names, iou_type, image_shape):
    """The validated arrays (every user error raised here, before any COCO object is built)."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {', '.join(IOU_TYPES)}. Received: iou_type={iou_type!r}")
    if not isinstance(ground_truth, dict) or not isinstance(detections, dict):
        raise ValueError("ground_truth and detections must be dicts of numpy arrays (ground truth: boxes, labels "
                         "[, masks]; detections: boxes, scores, classes, num_detections [, masks]). Received: "
                         f"ground_truth={type(ground_truth).__name__}, detections={type(detections).__name__}")
    names = [str(n) for n in class_names] if class_names is not None and not isinstance(class_names, str) else []
    if not names:
        raise ValueError(f"class_names must be a non-empty list of names. Received: class_names={class_names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be distinct (the per-class APs are keyed by name). Received: {names}")
    num_classes = len(names)

    gt_boxes = _array(ground_truth, "boxes", "ground_truth", 3).astype("float64")
    gt_labels = _array(ground_truth, "labels", "ground_truth", 2)
    n, m = gt_labels.shape
    if gt_boxes.shape != (n, m, 4):
        raise ValueError(f"ground_truth boxes must have shape (images, max_boxes, 4) = ({n}, {m}, 4) to match the "
                         f"labels. Received: boxes.shape={gt_boxes.shape}, labels.shape={gt_labels.shape}")
    if not np.issubdtype(gt_labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(gt_labels, 1), 0)):
            raise ValueError(f"ground_truth labels must be integers. Received: dtype={gt_labels.dtype}")
    gt_labels = gt_labels.astype("int64")
    valid = gt_labels != PAD_LABEL
    bad = valid & ((gt_labels < 0) | (gt_labels >= num_classes))
    if bad.any():
        raise ValueError(f"ground_truth labels must be class indices in [0, {num_classes}) or {PAD_LABEL} for padding. "
                         f"Received: label {int(gt_labels[bad][0])}")
    if not np.isfinite(gt_boxes[valid]).all():
        raise ValueError("ground_truth boxes must be finite numbers. Received: NaN or inf in a non-padding row")

    det_boxes = _array(detections, "boxes", "detections", 3).astype("float64")
    scores = _array(detections, "scores", "detections", 2).astype("float64")
    classes = _array(detections, "classes", "detections", 2)
    num_det = _array(detections, "num_detections", "detections", 1).astype("int64")
    k = scores.shape[1]
    if det_boxes.shape != (len(scores), k, 4) or classes.shape != scores.shape or num_det.shape != (len(scores),):
        raise ValueError("detections must have boxes (N, K, 4), scores (N, K), classes (N, K) and num_detections (N,). "
                         f"Received: boxes.shape={det_boxes.shape}, scores.shape={scores.shape}, "
                         f"classes.shape={classes.shape}, num_detections.shape={num_det.shape}")
    if len(scores) != n:
        raise ValueError(f"ground_truth and detections must cover the same images. Received: {n} ground-truth "
                         f"images and {len(scores)} detection images")
    if (num_det < 0).any() or (num_det > k).any():
        raise ValueError(f"num_detections must be in [0, {k}] (the detections' second axis). "
                         f"Received: range [{num_det.min()}, {num_det.max()}]")
    keep = np.arange(k)[None, :] < num_det[:, None]
    classes = classes.astype("int64")
    bad = keep & ((classes < 0) | (classes >= num_classes))
    if bad.any():
        raise ValueError(f"detection classes must be 0-based class indices in [0, {num_classes}). "
                         f"Received: class {int(classes[bad][0])}")
    if not (np.isfinite(det_boxes[keep]).all() and np.isfinite(scores[keep]).all()):
        raise ValueError("detection boxes and scores must be finite numbers. Received: NaN or inf in a kept detection")

    gt_masks = det_masks = None
    if iou_type == "segm":
        missing = [w for w, d in (("ground_truth", ground_truth), ("detections", detections)) if "masks" not in d]
        if missing:
            raise ValueError("iou_type='segm' needs instance masks on both sides: ground_truth['masks'] (N, M, H, W) "
                             "and detections['masks'] (N, K, H, W); use iou_type='bbox' for boxes only. "
                             f"Received: no 'masks' in {' and '.join(missing)}")
        gt_masks = _array(ground_truth, "masks", "ground_truth", 4)
        det_masks = _array(detections, "masks", "detections", 4)
        if gt_masks.shape[:2] != (n, m) or det_masks.shape[:2] != (n, k) or gt_masks.shape[2:] != det_masks.shape[2:]:
            raise ValueError(f"masks must be ground_truth (N, M, H, W) = ({n}, {m}, H, W) and detections (N, K, H, W) = "
                             f"({n}, {k}, H, W) with the same H, W. Received: ground_truth masks {gt_masks.shape}, "
                             f"detection masks {det_masks.shape}")
    if image_shape is not None:
        shape = tuple(image_shape)
        if len(shape) not in (2, 3) or not all(isinstance(v, (int, np.integer)) and v > 0 for v in shape[:2]):
            raise ValueError(f"image_shape must be (height, width) or (height, width, channels) of positive integers. "
                             f"Received: image_shape={image_shape!r}")
        image_shape = (int(shape[0]), int(shape[1]))
        if gt_masks is not None and image_shape != tuple(gt_masks.shape[2:]):
            raise ValueError(f"image_shape must match the masks' (H, W) = {tuple(gt_masks.shape[2:])}. "
                             f"Received: image_shape={image_shape}")
    elif gt_masks is not None:
        image_shape = tuple(int(v) for v in gt_masks.shape[2:])
    return names, gt_boxes, valid, gt_labels, gt_masks, det_boxes, scores, classes, keep, det_masks, image_shape


def _xywh(box):
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_evaluate(ground_truth, detections, class_names, *, iou_type="bbox", image_shape=None) -> dict:
    """COCO metrics (pycocotools ``COCOeval``) of detections against the ground truth, as plain floats.

    ``ground_truth``: numpy ``boxes`` ``(N, M, 4)`` xyxy pixels and ``labels`` ``(N, M)`` int, padded rows
    labelled -1 (ignored), and for ``iou_type="segm"`` ``masks`` ``(N, M, H, W)``. ``detections``: what
    ``Detector.detect`` returns: ``boxes`` ``(N, K, 4)`` xyxy pixels, ``scores`` ``(N, K)``, ``classes``
    ``(N, K)`` 0-based and ``num_detections`` ``(N,)`` (rows past it are ignored), and for ``"segm"``
    ``masks`` ``(N, K, H, W)`` (probabilities, thresholded at 0.5, or binary). ``class_names``: one name per
    class index. ``image_shape``: ``(height, width)`` of the images, recorded in COCO's image table; for
    ``"segm"`` it defaults to (and must equal) the masks' ``(H, W)``.

    COCO category ids are class index + 1; every object is ``iscrowd`` 0; an object's area is its box
    area for ``"bbox"`` and its mask area (RLE of the binary mask) for ``"segm"``, which decides whether it
    counts as small (< 32²), medium or large (≥ 96²). At most 100 detections per image count (COCO's
    ``maxDets``), the highest-scored ones.

    Returns ``mAP`` (AP@[.5:.95]), ``mAP_50``, ``mAP_75``, ``mAP_small/medium/large``, ``AR_1``,
    ``AR_10``, ``AR_100``, ``AR_small/medium/large``, ``per_class_AP`` and ``per_class_AP50``
    (``{name: AP}``), ``num_images``, ``num_ground_truth``, ``num_detections`` and ``iou_type``. Where COCO
    has no value (-1: no ground-truth object of that size, or of that class) the entry is ``None``;
    means are over the classes that have ground truth, as COCO's are. With no detections at all the
    metrics are 0.0 (``None`` where there is no ground truth either).
    """
    (names, gt_boxes, valid, gt_labels, gt_masks, det_boxes, scores, classes, keep, det_masks,
     image_shape) = _check(ground_truth, detections, class_names, iou_type, image_shape)
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    n = len(gt_labels)
    images = []
    for i in range(n):
        img = {"id": i + 1}
        if image_shape is not None:
            img.update(height=image_shape[0], width=image_shape[1])
        images.append(img)
    annotations = []
    for i, j in zip(*np.nonzero(valid)):
        bbox = _xywh(gt_boxes[i, j])
        ann = {"id": len(annotations) + 1, "image_id": int(i) + 1, "category_id": int(gt_labels[i, j]) + 1,
               "bbox": bbox, "iscrowd": 0}
        if gt_masks is not None:
            rle = _rle(_binary(gt_masks[i, j]))
            ann.update(segmentation=rle, area=float(mask_utils.area(rle)))
        else:
            ann["area"] = max(bbox[2], 0.0) * max(bbox[3], 0.0)
        annotations.append(ann)
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(names)]

    results = []
    for i, j in zip(*np.nonzero(keep)):
        res = {"image_id": int(i) + 1, "category_id": int(classes[i, j]) + 1, "score": float(scores[i, j])}
        if det_masks is not None:
            # no "bbox": loadRes then takes its segm branch (area = mask area, bbox from the mask)
            res["segmentation"] = _rle(_binary(det_masks[i, j]))
        else:
            res["bbox"] = _xywh(det_boxes[i, j])
        results.append(res)

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes reads results[0]: an empty result set is built directly (COCOeval handles it)
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(images), "annotations": [], "categories": list(categories)}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()

    def plain(v):
        return None if v < 0 else float(v)

    report = {key: plain(v) for key, v in zip(_STAT_KEYS, evaluator.stats)}
    precision = evaluator.eval["precision"]  # (iou thresholds, recall thresholds, classes, areas, max dets)
    area_all = evaluator.params.areaRngLbl.index("all")
    max100 = evaluator.params.maxDets.index(100)
    iou50 = int(np.argmin(np.abs(evaluator.params.iouThrs - 0.5)))
    per_class, per_class50 = {}, {}
    for c, name in enumerate(names):
        p = precision[:, :, c, area_all, max100]
        p50 = precision[iou50, :, c, area_all, max100]
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else None
        per_class50[name] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else None
    report.update(per_class_AP=per_class, per_class_AP50=per_class50, num_images=int(n),
                  num_ground_truth=len(annotations), num_detections=len(results), iou_type=iou_type)
    return report


def _fmt(v):
    return "    -" if v is None else f"{v:.4f}"


def _summary_lines(report, prefix=""):
    r = {k: report.get(prefix + k) for k in _STAT_KEYS}
    return [
        f"mAP@[.5:.95] {_fmt(r['mAP'])}   mAP@.5 {_fmt(r['mAP_50'])}   mAP@.75 {_fmt(r['mAP_75'])}",
        f"mAP small {_fmt(r['mAP_small'])}   medium {_fmt(r['mAP_medium'])}   large {_fmt(r['mAP_large'])}",
        f"AR@1 {_fmt(r['AR_1'])}   AR@10 {_fmt(r['AR_10'])}   AR@100 {_fmt(r['AR_100'])}",
        f"AR small {_fmt(r['AR_small'])}   medium {_fmt(r['AR_medium'])}   large {_fmt(r['AR_large'])}",
    ]


def format_detection_report(report: dict) -> str:
    """The printable COCO summary of a ``coco_evaluate`` report (what ``kerasvk evaluate RUN`` prints).

    The mAP/AR rows and a per-class AP table; a trainer report that also carries the mask metrics under
    ``segm_`` keys (Mask R-CNN) gets their rows and table columns too. ``-`` marks a value COCO does not
    define (no ground truth of that size or class).
    """
    iou_type = report.get("iou_type", "bbox")
    objects = "boxes" if iou_type == "bbox" else "masks"
    lines = [f"COCO {iou_type} (pycocotools): {report['num_images']} images, {report['num_ground_truth']} "
             f"ground-truth {objects}, {report['num_detections']} detections"]
    lines += _summary_lines(report)
    segm = "segm_mAP" in report and "segm_per_class_AP" in report
    if segm:
        lines.append(f"COCO segm: {report.get('segm_num_detections', report['num_detections'])} detections")
        lines += _summary_lines(report, "segm_")
    names = list(report["per_class_AP"])
    w = max(10, *(len(n) for n in names)) if names else 10
    header = f"{'class':<{w}}  AP@[.5:.95]  AP@.5"
    if segm:
        header += "  mask AP@[.5:.95]  mask AP@.5"
    lines.append(header)
    for name in names:
        row = f"{name:<{w}}  {_fmt(report['per_class_AP'][name]):>11}  {_fmt(report['per_class_AP50'][name]):>6}"
        if segm:
            row += (f"  {_fmt(report['segm_per_class_AP'].get(name)):>16}"
                    f"  {_fmt(report['segm_per_class_AP50'].get(name)):>10}")
        lines.append(row)
    return "\n".join(lines)
