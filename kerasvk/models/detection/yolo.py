"""YOLO (YOLOv8-style): anchor-free, decoupled head, task-aligned assignment, CIoU + DFL losses.

Why this design:

- **Anchor-free** (one point per feature-map cell, FCOS/YOLOv8): no anchor sizes or ratios to tune for a
  dataset whose objects range from a few pixels to most of the image; the box branch predicts the four
  distances (left, top, right, bottom) from the cell centre, in units of the level's stride.
- **Task-aligned assignment** (TAL, TOOD, Feng et al., 2021): a point's fitness for a ground-truth box is
  ``t = s^α · IoU^β`` (α = 0.5, β = 6), ``s`` the predicted score of the box's class and IoU that of the
  predicted box; each box takes the ``top-k`` (10) points by ``t`` among those whose centre lies inside it
  (one box per point, the highest IoU where several claim it). The class target is ``t`` normalised per
  box so its best point gets the box's best IoU: the classification score is trained to *be* the
  localisation quality, so NMS keeps the best-localised box and the ranking is good at high IoU, which
  is what COCO mAP@[.5:.95] rewards.
- **Distribution focal loss** (DFL, GFL, Li et al., 2020): each distance is a softmax over ``reg_max`` bins
  (0 .. reg_max-1 strides) whose expectation is the distance; DFL pushes mass to the two bins around the
  target, CIoU (``keras.utils.bounding_boxes.compute_ciou``) scores the decoded box. Loss weights
  7.5 (box) / 0.5 (class) / 1.5 (DFL) as in YOLOv8, each normalised by the sum of class targets.

- **Levels** ``P2–P5`` (strides 4/8/16/32) by default, as Ultralytics' ``yolov8-p2``; ``levels=("P3", "P4",
  "P5")`` is plain YOLOv8. The default input is small (128×128) and so are its objects: on ``shapes``, 41% of
  the boxes hold at most two stride-8 cell centres (a ≤ 11 px object gets one or two candidate points),
  against 5% at stride 4. Measured (30 epochs, same data and seed): P3–P5 mAP@.5 0.745, mAP@[.5:.95] 0.553;
  P2–P5 0.880 / 0.689 (recall@.5 of 8–12 px boxes 0.76 → 0.91), for 18% more parameters and 4× the points.

Graph: ``kerasvk.backbone(backbone)`` (any registered backbone; ``levels``, default P2–P5; default
resnet18 at width 0.25, ``base.DEFAULT_BACKBONE_KWARGS``) →
``neck.pan_fpn`` (C2f blocks) → per level a decoupled head (box branch: two 3×3 conv–BN–SiLU + 1×1 to
``4·reg_max`` DFL logits; class branch: two 3×3 + 1×1 to ``num_classes`` sigmoid logits, bias prior
−log((1 − 0.01) / 0.01)). The raw output ``predictions`` is ``(batch, points, 4·reg_max + num_classes)``,
points ordered level by level, row-major within a level (cell centres ``(i + 0.5)·stride``, see
``_grid_points``). ``decode_predictions`` gives xyxy pixels and sigmoid scores; ``postprocess``/``detect``/
``serving_default`` add per-class NMS (``kerasvk.models.detection.base``).

The losses live in ``compute_loss`` (TAL runs there on padded targets, label −1 rows ignored; an image
without boxes is all background), so the stock ``fit``/``evaluate`` train and score it and report
``loss``, ``box_loss``, ``class_loss``, ``dfl_loss``. Every BatchNormalization layer, the backbone's
included, uses momentum 0.97 (``base.BN_MOMENTUM``), so inference-mode statistics keep up in short runs.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from kerasvk.layers.replicas import scale_loss
from kerasvk.models.detection.base import (
    NMS_DEFAULTS,
    PAD_LABEL,
    Detector,
    backbone_options,
    check_backbone,
    check_nms_options,
    example_inputs,
    set_batchnorm_momentum,
)
from kerasvk.models.detection.neck import BLOCKS, BN_MOMENTUM, pan_fpn
from kerasvk.registry import PYRAMID_LEVELS, variant
from kerasvk.registry import backbone as build_backbone

V8_LEVELS = ("P3", "P4", "P5")  # YOLOv8's levels, strides 8, 16, 32
LEVELS = ("P2", "P3", "P4", "P5")  # kerasvk's default (Ultralytics' yolov8-p2): small images, small objects
STRIDES = tuple(PYRAMID_LEVELS[lvl] for lvl in LEVELS)  # 4, 8, 16, 32
CLASS_PRIOR = 0.01  # initial foreground probability of the class logits (RetinaNet's prior)
EPS = 1e-9


def _grid_points(image_shape, strides=STRIDES):
    """``(points (P, 2) xy pixel cell centres (i + 0.5)·stride, strides (P,))``, level by level, row-major.

    The convention of ``kerasvk.models.detection.anchors.anchor_points`` (private copy until the two are
    merged).
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    points, point_strides = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        points.append(np.stack([(xs + 0.5) * s, (ys + 0.5) * s], axis=-1).reshape(-1, 2))
        point_strides.append(np.full(points[-1].shape[0], s))
    return np.concatenate(points).astype("float32"), np.concatenate(point_strides).astype("float32")


# ----------------------------------------------------------------------------------------- box maths
def distances_to_boxes(distances, points, strides):
    """xyxy pixel boxes of ``(…, P, 4)`` distances (l, t, r, b in stride units) from ``points`` ``(P, 2)``."""
    d = distances * strides[:, None]
    xy = points
    return ops.concatenate([xy - d[..., :2], xy + d[..., 2:]], axis=-1)


def boxes_to_distances(boxes, points, strides):
    """The inverse of ``distances_to_boxes``: (l, t, r, b) of xyxy ``boxes`` ``(…, P, 4)`` in stride units."""
    lt = points - boxes[..., :2]
    rb = boxes[..., 2:] - points
    return ops.concatenate([lt, rb], axis=-1) / strides[:, None]


def pairwise_iou(boxes1, boxes2):
    """IoU of every pair: ``(B, M, 4)`` × ``(B, P, 4)`` xyxy → ``(B, M, P)`` (degenerate boxes give 0)."""
    a = boxes1[:, :, None, :]
    b = boxes2[:, None, :, :]
    iw = ops.maximum(ops.minimum(a[..., 2], b[..., 2]) - ops.maximum(a[..., 0], b[..., 0]), 0.0)
    ih = ops.maximum(ops.minimum(a[..., 3], b[..., 3]) - ops.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = iw * ih
    area_a = ops.maximum(a[..., 2] - a[..., 0], 0.0) * ops.maximum(a[..., 3] - a[..., 1], 0.0)
    area_b = ops.maximum(b[..., 2] - b[..., 0], 0.0) * ops.maximum(b[..., 3] - b[..., 1], 0.0)
    return inter / ops.maximum(area_a + area_b - inter, EPS)


def ciou_loss(pred_boxes, target_boxes):
    """``1 − CIoU`` per box pair (``keras.utils.bounding_boxes.compute_ciou``, xyxy); 0 for identical boxes."""
    return 1.0 - keras.utils.bounding_boxes.compute_ciou(pred_boxes, target_boxes, "xyxy")


def distribution_focal_loss(dist_logits, target):
    """DFL (Li et al., 2020) per point: ``(…, 4, R)`` logits, ``(…, 4)`` targets in [0, R − 1) → ``(…)``.

    Cross-entropy towards the two bins around the target, weighted by closeness (mean over the 4 sides).
    """
    reg_max = dist_logits.shape[-1]
    logp = ops.log_softmax(dist_logits, axis=-1)
    left = ops.floor(target)
    w_left = left + 1.0 - target
    left_i = ops.cast(left, "int32")
    lp_left = ops.sum(logp * ops.one_hot(left_i, reg_max, dtype=logp.dtype), axis=-1)
    lp_right = ops.sum(logp * ops.one_hot(left_i + 1, reg_max, dtype=logp.dtype), axis=-1)
    return ops.mean(-(lp_left * w_left + lp_right * (1.0 - w_left)), axis=-1)


def sigmoid_cross_entropy(targets, logits):
    """Element-wise binary cross-entropy of logits (numerically stable form)."""
    return ops.maximum(logits, 0.0) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


# ------------------------------------------------------------------------------------- assignment
def task_aligned_assign(pred_scores, pred_boxes, points, gt_boxes, gt_labels, *, topk=10, alpha=0.5, beta=6.0):
    """Task-aligned assignment (TOOD / YOLOv8) of a padded batch; see the module docstring.

    ``pred_scores`` ``(B, P, C)`` probabilities, ``pred_boxes`` ``(B, P, 4)`` xyxy pixels, ``points``
    ``(P, 2)``, ``gt_boxes`` ``(B, M, 4)`` xyxy pixels, ``gt_labels`` ``(B, M)`` (``PAD_LABEL`` rows are
    ignored). Returns a dict: ``fg_mask`` ``(B, P)`` bool, ``target_boxes`` ``(B, P, 4)`` (zeros on
    background), ``target_scores`` ``(B, P, C)`` (one-hot class × normalised alignment), ``assigned``
    ``(B, M, P)`` float 0/1 (point p is a positive of box m; at most one box per point).
    """
    pred_scores = ops.cast(pred_scores, "float32")
    pred_boxes = ops.cast(pred_boxes, "float32")
    gt_boxes = ops.cast(gt_boxes, "float32")
    gt_labels = ops.cast(gt_labels, "int32")
    num_classes = pred_scores.shape[-1]
    num_points = pred_scores.shape[1]
    num_gt = gt_boxes.shape[1]
    if num_gt == 0:  # no box slots at all: one padded row keeps every reduction over M defined
        gt_boxes = ops.zeros_like(pred_boxes[:, :1, :]) - 1.0
        gt_labels = ops.cast(gt_boxes[..., 0], "int32") * 0 + PAD_LABEL
        num_gt = 1
    valid = ops.cast(gt_labels >= 0, "float32")  # (B, M)
    onehot = ops.one_hot(ops.maximum(gt_labels, 0), num_classes, dtype="float32") * valid[..., None]  # (B, M, C)

    # the score of each box's class at every point, and the IoU of every predicted box with it
    scores = ops.einsum("bmc,bpc->bmp", onehot, pred_scores)
    iou = ops.clip(pairwise_iou(gt_boxes, pred_boxes), 0.0, 1.0)
    px, py = points[:, 0], points[:, 1]
    inside = ops.minimum(
        ops.minimum(px[None, None] - gt_boxes[..., 0:1], py[None, None] - gt_boxes[..., 1:2]),
        ops.minimum(gt_boxes[..., 2:3] - px[None, None], gt_boxes[..., 3:4] - py[None, None]),
    ) > EPS
    candidates = ops.cast(inside, "float32") * valid[..., None]  # (B, M, P)
    align = ops.power(scores, alpha) * ops.power(iou, beta) * candidates

    # the top-k candidates of each box (points outside it rank last; ties among zeros by index)
    k = min(int(topk), int(num_points))
    _, top = ops.top_k(ops.where(candidates > 0, align, -1.0), k)  # (B, M, k)
    topk_mask = ops.sum(ops.one_hot(top, num_points, dtype="float32"), axis=-2)
    assigned = ops.minimum(topk_mask, 1.0) * candidates

    # one box per point: where several claim it, the one with the highest IoU keeps it
    claims = ops.sum(assigned, axis=1)  # (B, P)
    best = ops.argmax(ops.where(assigned > 0, iou, -1.0), axis=1)  # (B, P)
    best_onehot = ops.transpose(ops.one_hot(best, num_gt, dtype="float32"), (0, 2, 1))  # (B, M, P)
    assigned = ops.where((claims > 1)[:, None, :], best_onehot, assigned)
    fg = ops.sum(assigned, axis=1) > 0

    # normalised alignment: per box, its best point's target is its best IoU among its positives
    align_pos = align * assigned
    max_align = ops.max(align_pos, axis=-1, keepdims=True)
    max_iou = ops.max(iou * assigned, axis=-1, keepdims=True)
    norm = ops.max(align_pos * max_iou / (max_align + EPS), axis=1)  # (B, P)
    target_scores = ops.einsum("bmp,bmc->bpc", assigned, onehot) * norm[..., None]
    target_boxes = ops.einsum("bmp,bmd->bpd", assigned, gt_boxes)
    return {"fg_mask": fg, "target_boxes": target_boxes, "target_scores": target_scores, "assigned": assigned}


# ------------------------------------------------------------------------------------------ model
def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")


def _check_levels(levels):
    """``levels`` as a tuple of consecutive pyramid levels, fine to coarse (e.g. P3-P5, or P2-P5)."""
    lv = tuple(levels) if isinstance(levels, (list, tuple)) else None
    names = list(PYRAMID_LEVELS)
    ok = bool(lv) and all(isinstance(v, str) and v in PYRAMID_LEVELS for v in lv) and len(set(lv)) == len(lv)
    if ok:
        lv = tuple(sorted(lv, key=PYRAMID_LEVELS.get))
        idx = [names.index(v) for v in lv]
        ok = idx == list(range(idx[0], idx[0] + len(idx)))
    if not ok:
        raise ValueError(
            f"YOLO levels must be consecutive pyramid levels among {', '.join(names)}, e.g. ('P3', 'P4', 'P5') "
            f"or ('P2', 'P3', 'P4', 'P5'). Received: levels={levels!r}"
        )
    return lv


def _validate(input_shape, num_classes, backbone, backbone_kwargs, neck_width, neck_depth, neck_block, head_width,
              reg_max, class_names, score_threshold, iou_threshold, max_detections, topk, alpha, beta, loss_weights,
              levels=LEVELS):
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
    levels = _check_levels(levels)
    largest = PYRAMID_LEVELS[levels[-1]]
    if (shape is None or len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, (int, np.integer))
                                                for d in shape) or shape[2] < 1):
        raise ValueError(f"YOLO input_shape must be (height, width, channels) of ints. Received: input_shape={input_shape!r}")
    if shape[0] < largest or shape[1] < largest or shape[0] % largest or shape[1] % largest:
        raise ValueError(
            f"YOLO's height and width must be multiples of its largest stride, {largest} (e.g. 64, 128, 320, 640), "
            f"so every pyramid level tiles the image exactly. Received: input_shape={tuple(input_shape)}"
        )
    _check_int("num_classes", num_classes, 1)
    check_backbone(backbone, levels, "YOLO")
    if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
        raise ValueError(f"backbone_kwargs must be a dict or None. Received: backbone_kwargs={backbone_kwargs!r}")
    for key, v in (("neck_width", neck_width), ("neck_depth", neck_depth), ("head_width", head_width)):
        _check_int(key, v, 1)
    if neck_block not in BLOCKS:
        raise ValueError(f"Unknown neck_block {neck_block!r}. Allowed: {', '.join(BLOCKS)}.")
    _check_int("reg_max", reg_max, 2)
    _check_int("topk", topk, 1)
    if class_names is not None:
        names = list(class_names) if isinstance(class_names, (list, tuple)) else None
        if names is None or len(names) != num_classes or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"class_names must be None or {num_classes} strings (one per class). Received: class_names={class_names!r}"
            )
    check_nms_options(score_threshold, iou_threshold, max_detections)
    for key, v in (("alpha", alpha), ("beta", beta)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError(f"{key} must be a number >= 0. Received: {key}={v!r}")
    w = tuple(loss_weights) if isinstance(loss_weights, (list, tuple)) else ()
    if len(w) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in w):
        raise ValueError(
            "loss_weights must be three numbers >= 0 (box, class, dfl). "
            f"Received: loss_weights={loss_weights!r}"
        )
    return tuple(int(d) for d in shape), levels


def _as_config(value):
    """``value`` as its ``.keras`` config will read back (tuples become lists), so configs compare equal."""
    if isinstance(value, dict):
        return {k: _as_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_config(v) for v in value]
    return value


def _head(features, num_classes, reg_max, width, levels=LEVELS):
    """Decoupled per-level heads → ``(batch, points, 4·reg_max + num_classes)`` named ``predictions``."""

    def cba(x, name):
        from kerasvk.layers.blocks import conv_bn_act

        return conv_bn_act(x, width, 3, activation="silu", bn_momentum=BN_MOMENTUM, act_suffix="act", name=name)

    prior = -math.log((1.0 - CLASS_PRIOR) / CLASS_PRIOR)
    outputs = []
    for level in levels:
        f, p = features[level], f"head_{level.lower()}"
        h, w = f.shape[1], f.shape[2]
        box = cba(cba(f, f"{p}_box1"), f"{p}_box2")
        box = keras.layers.Conv2D(4 * reg_max, 1, bias_initializer=keras.initializers.Constant(1.0),
                                  name=f"{p}_box_pred")(box)
        cls = cba(cba(f, f"{p}_cls1"), f"{p}_cls2")
        cls = keras.layers.Conv2D(num_classes, 1, bias_initializer=keras.initializers.Constant(prior),
                                  name=f"{p}_cls_pred")(cls)
        box = keras.layers.Reshape((h * w, 4 * reg_max), name=f"{p}_box_flat")(box)
        cls = keras.layers.Reshape((h * w, num_classes), name=f"{p}_cls_flat")(cls)
        outputs.append(keras.layers.Concatenate(axis=-1, name=f"{p}_out")([box, cls]))
    return keras.layers.Concatenate(axis=1, name="predictions", dtype="float32")(outputs)  # float32 under mixed precision


@keras.saving.register_keras_serializable(package="kerasvk")
class YOLO(Detector, keras.Model):
    """YOLOv8-style detector (see the module docstring). Build with ``kerasvk.build("yolo", num_classes=...)``."""

    def __init__(
        self,
        input_shape=(128, 128, 3),
        num_classes=3,
        backbone="resnet18",
        backbone_kwargs=None,
        neck_width=64,
        neck_depth=1,
        neck_block="c2f",
        head_width=64,
        reg_max=16,
        class_names=None,
        score_threshold=NMS_DEFAULTS["score_threshold"],
        iou_threshold=NMS_DEFAULTS["iou_threshold"],
        max_detections=NMS_DEFAULTS["max_detections"],
        topk=10,
        alpha=0.5,
        beta=6.0,
        loss_weights=(7.5, 0.5, 1.5),
        levels=LEVELS,
        name="yolo",
        **kwargs,
    ):
        shape, levels = _validate(input_shape, num_classes, backbone, backbone_kwargs, neck_width, neck_depth,
                                  neck_block, head_width, reg_max, class_names, score_threshold, iou_threshold,
                                  max_detections, topk, alpha, beta, loss_weights, levels)
        backbone_kwargs = backbone_options(backbone, backbone_kwargs)
        features_model = build_backbone(backbone, input_shape=shape, levels=levels, **backbone_kwargs)
        images = keras.Input(shape, name="images")
        features = pan_fpn(features_model(images), width=int(neck_width), depth=int(neck_depth), block=neck_block)
        outputs = _head(features, int(num_classes), int(reg_max), int(head_width), levels)
        super().__init__(images, outputs, name=name, **kwargs)
        set_batchnorm_momentum(self)
        self.backbone = features_model
        self.image_shape = shape
        self.num_classes = int(num_classes)
        self.class_names = None if class_names is None else tuple(str(n) for n in class_names)
        self.reg_max = int(reg_max)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.topk, self.alpha, self.beta = int(topk), float(alpha), float(beta)
        self.loss_weights = tuple(float(v) for v in loss_weights)
        self.levels = levels
        self.strides = tuple(PYRAMID_LEVELS[lv] for lv in levels)
        self.points, self.point_strides = _grid_points(shape, self.strides)
        self._hp = dict(
            input_shape=shape, num_classes=self.num_classes, backbone=backbone,
            backbone_kwargs=_as_config(backbone_kwargs),
            neck_width=int(neck_width), neck_depth=int(neck_depth), neck_block=neck_block,
            head_width=int(head_width), reg_max=self.reg_max,
            class_names=None if class_names is None else [str(n) for n in class_names],
            score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
            max_detections=self.max_detections, topk=self.topk, alpha=self.alpha, beta=self.beta,
            loss_weights=list(self.loss_weights), levels=list(levels),
        )
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.box_loss_tracker = keras.metrics.Mean(name="box_loss")
        self.class_loss_tracker = keras.metrics.Mean(name="class_loss")
        self.dfl_loss_tracker = keras.metrics.Mean(name="dfl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.box_loss_tracker, self.class_loss_tracker, self.dfl_loss_tracker]

    # ----- decoding ---------------------------------------------------------------------------
    def _split(self, y_pred):
        """``(DFL logits (B, P, 4, R), class logits (B, P, C), distances (B, P, 4), boxes (B, P, 4))``."""
        y_pred = ops.cast(y_pred, "float32")
        r = self.reg_max
        dist_logits = ops.reshape(y_pred[..., : 4 * r], (-1, y_pred.shape[1], 4, r))
        cls_logits = y_pred[..., 4 * r:]
        bins = ops.arange(r, dtype="float32")
        distances = ops.sum(ops.softmax(dist_logits, axis=-1) * bins, axis=-1)
        boxes = distances_to_boxes(distances, ops.convert_to_tensor(self.points),
                                   ops.convert_to_tensor(self.point_strides))
        return dist_logits, cls_logits, distances, boxes

    def decode_predictions(self, y_pred):
        """``(boxes (B, P, 4) xyxy pixels, scores (B, P, C) sigmoid)`` of the raw ``predictions``."""
        _, cls_logits, _, boxes = self._split(y_pred)
        return boxes, ops.sigmoid(cls_logits)

    # ----- loss -------------------------------------------------------------------------------
    def loss_terms(self, y, y_pred):
        """``(box_loss, class_loss, dfl_loss)`` of a batch (each normalised by the sum of class targets)."""
        dist_logits, cls_logits, _, boxes = self._split(y_pred)
        points = ops.convert_to_tensor(self.points)
        strides = ops.convert_to_tensor(self.point_strides)
        a = task_aligned_assign(
            ops.stop_gradient(ops.sigmoid(cls_logits)), ops.stop_gradient(boxes), points,
            y["boxes"], y["labels"], topk=self.topk, alpha=self.alpha, beta=self.beta,
        )
        a = {k: ops.stop_gradient(v) for k, v in a.items()}
        target_scores, fg = a["target_scores"], ops.cast(a["fg_mask"], "float32")
        total = ops.maximum(ops.sum(target_scores), 1.0)
        class_loss = ops.sum(sigmoid_cross_entropy(target_scores, cls_logits)) / total
        weight = ops.sum(target_scores, axis=-1) * fg
        # background points get their own predicted box as target: finite CIoU and DFL, weight 0
        target_boxes = ops.where(fg[..., None] > 0, a["target_boxes"], ops.stop_gradient(boxes))
        box_loss = ops.sum(ciou_loss(boxes, target_boxes) * weight) / total
        target_dist = ops.clip(boxes_to_distances(target_boxes, points, strides), 0.0, self.reg_max - 1.01)
        dfl_loss = ops.sum(distribution_focal_loss(dist_logits, target_dist) * weight) / total
        return box_loss, class_loss, dfl_loss

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y, dict) or "boxes" not in y or "labels" not in y:
            raise ValueError(
                "YOLO trains on targets {'boxes': (batch, max_boxes, 4) xyxy pixels, 'labels': (batch, max_boxes) "
                f"int, -1 padded}}. Received: y={type(y).__name__}"
                + (f" with keys {sorted(y)}" if isinstance(y, dict) else "")
            )
        box_loss, class_loss, dfl_loss = self.loss_terms(y, y_pred)
        wb, wc, wd = self.loss_weights
        total = wb * box_loss + wc * class_loss + wd * dfl_loss
        if self.losses:
            total = total + ops.sum(ops.stack([ops.cast(v, total.dtype) for v in self.losses]))
        self.total_loss_tracker.update_state(total)
        self.box_loss_tracker.update_state(box_loss)
        self.class_loss_tracker.update_state(class_loss)
        self.dfl_loss_tracker.update_state(dfl_loss)
        return scale_loss(total)  # / replicas under a strategy (kerasvk.layers.replicas)

    # ----- serialization ------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._hp}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_TINY = {
    "input_shape": (64, 64, 3),
    "num_classes": 3,
    "backbone_kwargs": {"width_multiplier": 0.125, "blocks_per_stage": (1, 1, 1, 1)},
    "neck_width": 8,
    "head_width": 8,
    "reg_max": 8,
}

yolo = variant(
    YOLO,
    "yolo",
    task="detection",
    family="yolo",
    fixed={},
    description="YOLOv8-style anchor-free detector: backbone P3-P5 → PAN-FPN (C2f) → decoupled DFL/class heads; "
    "task-aligned assignment, CIoU + DFL + BCE losses.",
    test_kwargs=_TINY,
    example_inputs=example_inputs,
    train_defaults={"epochs": 30, "batch_size": 32, "lr": 2e-3, "optimizer": "adamw", "schedule": "cosine",
                    "warmup": 1, "augment": "flip"},
)
