"""The anchor core of one-stage detectors: anchor boxes and points, IoU matching, box coding.

- ``anchor_boxes(image_shape, strides, sizes, aspect_ratios, scales, extra_sizes)`` → ``(A, 4)`` xyxy pixels,
  ordered level by level, then row-major cells (y, then x), then (scale, ratio) with the scale outer, then
  the optional extra ratio-1 box of the cell (SSD's √(s_k·s_{k+1}) box). Cell ``(i, j)`` of a level of stride
  ``s`` is centred at ``((j + 0.5)·s, (i + 0.5)·s)``; a level has ``ceil(H / s) × ceil(W / s)`` cells (what a
  "same"-padded stride-2 conv chain gives). A box of size ``z`` and aspect ratio ``r`` (width / height) is
  ``z·√r`` wide and ``z/√r`` high. ``anchor_counts`` gives the number per level.
- ``anchor_points(image_shape, strides)`` → ``(points (P, 2) xy pixels, strides (P,))``: the cell centres of
  anchor-free heads (YOLOv8, FCOS), in the same level/row-major order.
- ``match_anchors(anchors, gt_boxes, gt_labels, ...)``: SSD/RetinaNet IoU matching of a padded batch
  (``kerasvk.models.detection.base``'s targets; label -1 rows never match).
- ``encode_boxes`` / ``decode_boxes``: the ``center_xywh`` delta coding with variances
  ``((cx − acx)/(aw·v₀), (cy − acy)/(ah·v₁), log(w/aw)/v₂, log(h/ah)/v₃)`` through keras'
  ``encode_box_to_deltas`` / ``decode_deltas_to_boxes`` (they divide by the variance on encoding and
  multiply on decoding, so the pair is an exact inverse).

Everything is ``keras.ops`` (any backend); image shapes, strides and sizes are static Python numbers.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops
from keras.utils import bounding_boxes as kbb

DEFAULT_STRIDES = (8, 16, 32)
DEFAULT_ASPECT_RATIOS = (1.0, 2.0, 0.5)
DEFAULT_VARIANCE = (0.1, 0.1, 0.2, 0.2)


# ----- validation --------------------------------------------------------------------------------
def _image_hw(image_shape):
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if shape is None or len(shape) not in (2, 3) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape[:2]
    ):
        raise ValueError(
            "image_shape must be (height, width) or (height, width, channels) of positive ints. "
            f"Received: image_shape={image_shape!r}"
        )
    return int(shape[0]), int(shape[1])


def _strides(strides):
    s = tuple(strides) if isinstance(strides, (tuple, list)) else None
    if not s or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in s):
        raise ValueError(f"strides must be a non-empty sequence of positive ints. Received: strides={strides!r}")
    return tuple(int(v) for v in s)


def _positive_numbers(values, key):
    v = tuple(values) if isinstance(values, (tuple, list)) else None
    if not v or not all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and x > 0 for x in v):
        raise ValueError(f"{key} must be a non-empty sequence of positive numbers. Received: {key}={values!r}")
    return tuple(float(x) for x in v)


def _per_level(values, levels, key, *, allow_none=False):
    """``values`` as one tuple per level: a flat sequence is shared by all levels, a nested one is per level."""
    if allow_none and values is None:
        return (None,) * levels
    if isinstance(values, (tuple, list)) and values and all(isinstance(v, (tuple, list)) for v in values):
        if len(values) != levels:
            raise ValueError(
                f"{key} given per level must have one entry per stride ({levels}). Received: {key}={values!r}"
            )
        return tuple(_positive_numbers(v, key) for v in values)
    return (_positive_numbers(values, key),) * levels


def _sizes(sizes, strides, key="sizes", allow_none=False):
    if sizes is None:
        if allow_none:
            return (None,) * len(strides)
        return tuple(4.0 * s for s in strides)
    v = tuple(sizes) if isinstance(sizes, (tuple, list)) else None
    if v is None or len(v) != len(strides) or not all(
        (allow_none and x is None) or (isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and x > 0)
        for x in v
    ):
        raise ValueError(
            f"{key} must be {'None or ' if allow_none else ''}one positive number per stride ({len(strides)} for "
            f"strides={strides}). Received: {key}={sizes!r}"
        )
    return tuple(None if x is None else float(x) for x in v)


def _grid(h, w, stride):
    return math.ceil(h / stride), math.ceil(w / stride)


# ----- anchors -------------------------------------------------------------------------------------
def anchor_counts(image_shape, strides=DEFAULT_STRIDES, aspect_ratios=DEFAULT_ASPECT_RATIOS, scales=(1.0,),
                  extra_sizes=None):
    """Anchors per level (a list of ints, one per stride) of ``anchor_boxes`` with the same arguments."""
    h, w = _image_hw(image_shape)
    strides = _strides(strides)
    ratios = _per_level(aspect_ratios, len(strides), "aspect_ratios")
    scales = _positive_numbers(scales, "scales")
    extra = _sizes(extra_sizes, strides, "extra_sizes", allow_none=True)
    counts = []
    for s, r, e in zip(strides, ratios, extra):
        gh, gw = _grid(h, w, s)
        counts.append(gh * gw * (len(scales) * len(r) + (e is not None)))
    return counts


def boxes_per_cell(strides=DEFAULT_STRIDES, aspect_ratios=DEFAULT_ASPECT_RATIOS, scales=(1.0,), extra_sizes=None):
    """Boxes per cell of each level (what a head predicts per location)."""
    strides = _strides(strides)
    ratios = _per_level(aspect_ratios, len(strides), "aspect_ratios")
    scales = _positive_numbers(scales, "scales")
    extra = _sizes(extra_sizes, strides, "extra_sizes", allow_none=True)
    return [len(scales) * len(r) + (e is not None) for r, e in zip(ratios, extra)]


def anchor_boxes(image_shape, strides=DEFAULT_STRIDES, sizes=None, aspect_ratios=DEFAULT_ASPECT_RATIOS,
                 scales=(1.0,), extra_sizes=None):
    """``(A, 4)`` float32 xyxy anchor boxes in pixels (order and geometry: see the module docstring).

    ``sizes``: one base size per level in pixels (default ``4·stride``); ``aspect_ratios``: width/height
    ratios, shared by all levels or one sequence per level; ``scales``: multipliers of the base size;
    ``extra_sizes``: None or one size (or None) per level for an extra ratio-1 box per cell (SSD).
    """
    h, w = _image_hw(image_shape)
    strides = _strides(strides)
    sizes = _sizes(sizes, strides)
    ratios = _per_level(aspect_ratios, len(strides), "aspect_ratios")
    scales = _positive_numbers(scales, "scales")
    extra = _sizes(extra_sizes, strides, "extra_sizes", allow_none=True)
    levels = []
    for stride, size, level_ratios, extra_size in zip(strides, sizes, ratios, extra):
        gh, gw = _grid(h, w, stride)
        wh = [(size * sc * math.sqrt(r), size * sc / math.sqrt(r)) for sc in scales for r in level_ratios]
        if extra_size is not None:
            wh.append((extra_size, extra_size))
        wh = ops.convert_to_tensor(np.asarray(wh, "float32"))  # (K, 2)
        cy, cx = ops.meshgrid(
            (ops.arange(gh, dtype="float32") + 0.5) * stride,
            (ops.arange(gw, dtype="float32") + 0.5) * stride,
            indexing="ij",
        )
        centres = ops.stack([ops.reshape(cx, (-1,)), ops.reshape(cy, (-1,))], axis=-1)  # (gh·gw, 2) xy
        centres = ops.expand_dims(centres, 1)  # (cells, 1, 2)
        half = ops.expand_dims(wh, 0) / 2.0  # (1, K, 2)
        boxes = ops.concatenate([centres - half, centres + half], axis=-1)  # (cells, K, 4)
        levels.append(ops.reshape(boxes, (-1, 4)))
    return ops.concatenate(levels, axis=0)


def anchor_points(image_shape, strides=DEFAULT_STRIDES):
    """``(points (P, 2) xy pixels, strides (P,) float32)``: cell centres level by level, row-major."""
    h, w = _image_hw(image_shape)
    strides = _strides(strides)
    points, point_strides = [], []
    for stride in strides:
        gh, gw = _grid(h, w, stride)
        cy, cx = ops.meshgrid(
            (ops.arange(gh, dtype="float32") + 0.5) * stride,
            (ops.arange(gw, dtype="float32") + 0.5) * stride,
            indexing="ij",
        )
        points.append(ops.stack([ops.reshape(cx, (-1,)), ops.reshape(cy, (-1,))], axis=-1))
        point_strides.append(ops.full((gh * gw,), float(stride), dtype="float32"))
    return ops.concatenate(points, axis=0), ops.concatenate(point_strides, axis=0)


# ----- matching ------------------------------------------------------------------------------------
def _check_thresholds(positive_iou, negative_iou, prefix=""):
    """``prefix``: how the caller's arguments are named (Faster R-CNN's ``rpn_positive_iou``: ``"rpn_"``)."""
    pos, neg = f"{prefix}positive_iou", f"{prefix}negative_iou"
    for key, v in ((pos, positive_iou), (neg, negative_iou)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{key} must be a number in [0, 1]. Received: {key}={v!r}")
    if negative_iou > positive_iou:
        raise ValueError(
            f"{neg} must be <= {pos} (anchors with IoU in between are ignored). "
            f"Received: {pos}={positive_iou}, {neg}={negative_iou}"
        )


def match_anchors(anchors, gt_boxes, gt_labels, positive_iou=0.5, negative_iou=0.5, force_match=True):
    """Match every anchor of a batch to its ground truth by IoU (SSD / RetinaNet rule).

    ``anchors`` ``(A, 4)`` xyxy; ``gt_boxes`` ``(B, M, 4)`` xyxy, ``gt_labels`` ``(B, M)`` with -1 padding (padded
    rows never match). An anchor is *positive* if its best IoU with a real box is ``>= positive_iou``, *ignored*
    if it lies in ``[negative_iou, positive_iou)``, negative otherwise. With ``force_match`` every real box also
    takes its own best anchor (positive even below the threshold; when two boxes want the same anchor the one
    with the higher IoU gets it). An image without boxes has only negatives.

    Returns a dict of ``(B, A)`` tensors: ``matched_gt`` (int32 index into M; 0 where not positive),
    ``positive`` and ``ignore`` (bool), ``iou`` (IoU with the matched box), ``labels`` (int32 class of the
    matched box, -1 where not positive) and ``boxes`` ``(B, A, 4)`` (the matched box; zeros where not positive).
    """
    _check_thresholds(positive_iou, negative_iou)
    anchors = ops.cast(anchors, "float32")
    gt_boxes = ops.cast(gt_boxes, "float32")
    gt_labels = ops.cast(gt_labels, "int32")
    batch = ops.shape(gt_boxes)[0]
    # one padded row more, so every reduction over M has something to reduce (M may be 0)
    gt_boxes = ops.concatenate([gt_boxes, -ops.ones((batch, 1, 4), "float32")], axis=1)
    gt_labels = ops.concatenate([gt_labels, -ops.ones((batch, 1), "int32")], axis=1)
    valid = gt_labels >= 0  # (B, M)
    iou = kbb.compute_iou(gt_boxes, anchors, "xyxy")  # (B, M, A)
    iou = ops.where(ops.expand_dims(valid, -1), iou, -1.0)

    best_gt = ops.cast(ops.argmax(iou, axis=1), "int32")  # (B, A)
    best_iou = ops.max(iou, axis=1)
    positive = best_iou >= positive_iou
    ignore = ops.logical_and(best_iou >= negative_iou, ops.logical_not(positive))
    matched = best_gt
    if force_match:
        num_anchors = ops.shape(anchors)[0]
        best_anchor = ops.argmax(iou, axis=2)  # (B, M)
        wants = ops.logical_and(valid, ops.max(iou, axis=2) > 0.0)  # real boxes that overlap some anchor
        claim = ops.one_hot(best_anchor, num_anchors, dtype="float32") * ops.expand_dims(
            ops.cast(wants, "float32"), -1
        )  # (B, M, A)
        forced = ops.max(claim, axis=1) > 0.0  # (B, A)
        forced_gt = ops.cast(ops.argmax(claim * (iou + 2.0), axis=1), "int32")  # the highest-IoU claimant
        matched = ops.where(forced, forced_gt, best_gt)
        positive = ops.logical_or(positive, forced)
        ignore = ops.logical_and(ignore, ops.logical_not(forced))
    matched = ops.where(positive, matched, 0)
    matched_iou = ops.squeeze(ops.take_along_axis(iou, ops.expand_dims(matched, 1), axis=1), 1)
    labels = ops.take_along_axis(gt_labels, matched, axis=1)
    boxes = ops.take_along_axis(gt_boxes, ops.expand_dims(matched, -1), axis=1)
    return {
        "matched_gt": matched,
        "positive": positive,
        "ignore": ignore,
        "iou": ops.where(positive, matched_iou, ops.maximum(best_iou, 0.0)),
        "labels": ops.where(positive, labels, -1),
        "boxes": ops.where(ops.expand_dims(positive, -1), boxes, 0.0),
    }


# ----- box coding ----------------------------------------------------------------------------------
def _variance(variance):
    v = tuple(variance) if isinstance(variance, (tuple, list)) else None
    if v is None or len(v) != 4 or not all(
        isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and x > 0 for x in v
    ):
        raise ValueError(f"variance must be 4 positive numbers. Received: variance={variance!r}")
    return [float(x) for x in v]


def encode_boxes(boxes, anchors, variance=DEFAULT_VARIANCE):
    """Deltas ``(…, A, 4)`` of xyxy ``boxes`` (``(A, 4)`` or ``(B, A, 4)``) relative to xyxy ``anchors`` ``(A, 4)``."""
    return kbb.encode_box_to_deltas(
        anchors=ops.cast(anchors, "float32"),
        boxes=ops.cast(boxes, "float32"),
        anchor_format="xyxy",
        box_format="xyxy",
        encoding_format="center_xywh",
        variance=_variance(variance),
    )


def decode_boxes(deltas, anchors, variance=DEFAULT_VARIANCE):
    """xyxy boxes of ``deltas`` (``(A, 4)`` or ``(B, A, 4)``) relative to xyxy ``anchors``: ``encode_boxes``⁻¹."""
    return kbb.decode_deltas_to_boxes(
        anchors=ops.cast(anchors, "float32"),
        boxes_delta=ops.cast(deltas, "float32"),
        anchor_format="xyxy",
        box_format="xyxy",
        encoded_format="center_xywh",
        variance=_variance(variance),
    )


__all__ = [
    "anchor_boxes",
    "anchor_counts",
    "anchor_points",
    "boxes_per_cell",
    "match_anchors",
    "encode_boxes",
    "decode_boxes",
    "DEFAULT_VARIANCE",
]
