"""SSD: Single Shot MultiBox Detector (Liu et al., 2016) on any kerasvk backbone.

Graph: ``kerasvk.registry.backbone(backbone, levels=levels)`` (default P3–P5, strides 8–32) → optional FPN
neck (``neck="fpn"``: 1×1 laterals, top-down nearest upsampling + add, 3×3 smoothing, as SSD-FPN /
RetinaNet) → ``extra_levels`` SSD extra feature layers after the top level (1×1 conv to half width, 3×3
stride-2 conv; strides 64, 128) → per level a box head (``4·k`` channels) and a class head (``k·(C + 1)``
channels, column 0 = background), ``conv`` (one 3×3 conv, SSD) or ``separable`` (3×3 depthwise + BN + ReLU6
+ 1×1 conv, SSDLite) → ``{"boxes": (B, A, 4) encoded offsets, "classes": (B, A, C + 1) logits}``.

Default boxes (``anchors``): on level k of m, base size ``s_k·min(H, W)`` with ``s_k`` linear from
``min_scale`` to ``max_scale`` (the paper's rule) or explicit ``anchor_sizes`` in pixels, boxes of each
``aspect_ratios`` and the extra ratio-1 box of size ``√(s_k·s_{k+1})`` (``s_{m+1} = s_m + Δ``, capped at 1).

Loss (``compute_loss``, keras.ops only): anchors match ground truth at ``positive_iou`` (plus each box's
best anchor, ``match_anchors``); localisation = smooth-L1 over the encoded offsets (variances 0.1/0.2) of the
positives; confidence = softmax cross-entropy over C + 1 classes on the positives and the hardest
negatives (ranked by their background loss, ``neg_pos_ratio`` per positive in each image; an image without
objects keeps ``neg_pos_ratio`` negatives so background-only images still teach something); both summed
and divided by the number of positives in the batch (≥ 1). ``fit`` reports ``loss``, ``box_loss``,
``class_loss``.

``decode_predictions`` → xyxy pixel boxes and softmax scores without the background column; the
``Detector`` mixin (``kerasvk.models.detection.base``) adds NMS, ``detect`` and the serving signature.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from kerasvk.layers.blocks import conv_bn_act
from kerasvk.layers.replicas import scale_loss
from kerasvk.models.checks import is_int
from kerasvk.models.detection import anchors as anchor_lib
from kerasvk.models.detection.base import (
    NMS_DEFAULTS,
    Detector,
    backbone_options,
    set_batchnorm_momentum,
    check_backbone,
    check_nms_options,
    example_inputs,
)
from kerasvk.registry import PYRAMID_LEVELS, backbone as make_backbone, variant

HEADS = ("conv", "separable")
NECKS = (None, "fpn")
_DELTA_CLIP = math.log(1000.0 / 16.0)  # torchvision's bound on decoded log-size offsets

def _validate(input_shape, num_classes, class_names, backbone, levels, extra_levels, head, neck,
              min_scale, max_scale, anchor_sizes, aspect_ratios, neg_pos_ratio, box_loss_weight):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(is_int(d) and d >= 1 for d in shape) or shape[2] != 3:
        raise ValueError(f"SSD input_shape must be (height, width, 3). Received: input_shape={input_shape!r}")
    if not is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1 (background is added). Received: num_classes={num_classes!r}")
    if class_names is not None:
        names = list(class_names)
        if len(names) != num_classes or len(set(map(str, names))) != len(names):
            raise ValueError(
                f"class_names must be None or {num_classes} distinct names (one per class). "
                f"Received: class_names={class_names!r}"
            )
    lv = (levels,) if isinstance(levels, str) else tuple(levels)
    if not lv or any(v not in PYRAMID_LEVELS for v in lv) or len(set(lv)) != len(lv):
        raise ValueError(f"levels must be distinct pyramid levels of {', '.join(PYRAMID_LEVELS)}. Received: levels={levels!r}")
    lv = tuple(sorted(lv, key=PYRAMID_LEVELS.get))
    if not is_int(extra_levels) or extra_levels < 0:
        raise ValueError(f"extra_levels must be an integer >= 0. Received: extra_levels={extra_levels!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}. Received: head={head!r}")
    if neck not in NECKS:
        raise ValueError(f"neck must be one of {NECKS}. Received: neck={neck!r}")
    check_backbone(backbone, lv, "SSD")
    strides = [PYRAMID_LEVELS[v] for v in lv]
    strides += [strides[-1] * 2 ** (i + 1) for i in range(extra_levels)]
    top = strides[-1]
    h, w = shape[:2]
    if h % top or w % top:
        ok = [top * k for k in range(1, 5)]
        raise ValueError(
            f"SSD input height and width must be multiples of the largest stride {top} (levels {lv} + "
            f"{extra_levels} extra levels: strides {strides}), e.g. {ok}. Received: input_shape={shape}"
        )
    if anchor_sizes is None:
        if not (isinstance(min_scale, (int, float)) and isinstance(max_scale, (int, float))
                and 0 < min_scale <= max_scale <= 1):
            raise ValueError(
                f"min_scale and max_scale must satisfy 0 < min_scale <= max_scale <= 1. "
                f"Received: min_scale={min_scale!r}, max_scale={max_scale!r}"
            )
    else:
        a = tuple(anchor_sizes) if isinstance(anchor_sizes, (tuple, list)) else ()
        if len(a) != len(strides) or not all(isinstance(x, (int, float)) and x > 0 for x in a):
            raise ValueError(
                f"anchor_sizes must be None or one positive pixel size per level ({len(strides)}: strides "
                f"{strides}). Received: anchor_sizes={anchor_sizes!r}"
            )
    ratios = tuple(aspect_ratios) if isinstance(aspect_ratios, (tuple, list)) else ()
    if not ratios or not all(isinstance(r, (int, float)) and r > 0 for r in ratios):
        raise ValueError(f"aspect_ratios must be positive numbers (width/height). Received: aspect_ratios={aspect_ratios!r}")
    if not isinstance(neg_pos_ratio, (int, float)) or isinstance(neg_pos_ratio, bool) or neg_pos_ratio <= 0:
        raise ValueError(f"neg_pos_ratio must be a number > 0. Received: neg_pos_ratio={neg_pos_ratio!r}")
    if not isinstance(box_loss_weight, (int, float)) or box_loss_weight < 0:
        raise ValueError(f"box_loss_weight must be a number >= 0. Received: box_loss_weight={box_loss_weight!r}")
    return shape, lv, strides


def ssd_anchor_sizes(image_shape, num_levels, min_scale=0.2, max_scale=0.9):
    """``(sizes, extra_sizes)`` in pixels: the paper's linear scales ``s_k`` and ``√(s_k·s_{k+1})``."""
    side = float(min(image_shape[:2]))
    step = (max_scale - min_scale) / (num_levels - 1) if num_levels > 1 else 0.0
    scales = [min_scale + step * k for k in range(num_levels)]
    nxt = scales[1:] + [min(1.0, scales[-1] + (step or 0.1))]
    return [s * side for s in scales], [math.sqrt(a * b) * side for a, b in zip(scales, nxt)]


def hard_negative_mask(negative_loss, candidates, num_positives, neg_pos_ratio=3.0):
    """Per image the ``neg_pos_ratio·max(num_positives, 1)`` candidates with the largest ``negative_loss``.

    ``negative_loss``, ``candidates`` (bool): ``(B, A)``; ``num_positives``: ``(B,)``. Returns a bool ``(B, A)``.
    """
    candidates = ops.convert_to_tensor(candidates)
    neg = ops.where(candidates, ops.cast(negative_loss, "float32"), -1.0)  # a CE is >= 0: candidates first
    order = ops.argsort(-neg, axis=1)
    rank = ops.argsort(order, axis=1)
    budget = ops.cast(
        ops.floor(float(neg_pos_ratio) * ops.maximum(ops.cast(num_positives, "float32"), 1.0)), "int32"
    )
    budget = ops.minimum(budget, ops.sum(ops.cast(candidates, "int32"), axis=1))
    return ops.logical_and(rank < ops.expand_dims(budget, 1), candidates)


def _head(x, channels, kind, name):
    if kind == "separable":
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_dwbn")(x)
        x = keras.layers.ReLU(6.0, name=f"{name}_dwrelu")(x)
        return keras.layers.Conv2D(channels, 1, name=f"{name}_conv")(x)
    return keras.layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv")(x)


def _jsonable(value):
    """Tuples as lists (what a ``.keras`` config reads back), so ``get_config`` round-trips exactly."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _concat(parts, name):
    # the model's outputs: float32 under a mixed precision policy too (the losses read them)
    if len(parts) == 1:
        return keras.layers.Identity(name=name, dtype="float32")(parts[0])
    return keras.layers.Concatenate(axis=1, name=name, dtype="float32")(parts)


@keras.saving.register_keras_serializable(package="kerasvk")
class SSD(Detector, keras.Model):
    """SSD detector; see the module docstring. Build with ``kerasvk.build("ssd", num_classes=...)``."""

    def __init__(
        self,
        input_shape=(128, 128, 3),
        num_classes=4,
        class_names=None,
        backbone="resnet18",
        backbone_kwargs=None,
        levels=("P2", "P3", "P4", "P5"),
        extra_levels=1,
        extra_filters=128,
        neck="fpn",
        neck_filters=64,
        head="conv",
        min_scale=0.06,
        max_scale=0.6,
        anchor_sizes=None,
        aspect_ratios=(1.0, 2.0, 0.5),
        variance=anchor_lib.DEFAULT_VARIANCE,
        positive_iou=0.5,
        negative_iou=0.5,
        neg_pos_ratio=3.0,
        box_loss_weight=1.0,
        score_threshold=NMS_DEFAULTS["score_threshold"],
        iou_threshold=NMS_DEFAULTS["iou_threshold"],
        max_detections=NMS_DEFAULTS["max_detections"],
        name="ssd",
        **kwargs,
    ):
        backbone_kwargs = backbone_options(backbone, backbone_kwargs)
        shape, levels, strides = _validate(
            input_shape, num_classes, class_names, backbone, levels, extra_levels, head, neck,
            min_scale, max_scale, anchor_sizes, aspect_ratios, neg_pos_ratio, box_loss_weight,
        )
        anchor_lib._check_thresholds(positive_iou, negative_iou)
        anchor_lib._variance(variance)
        check_nms_options(score_threshold, iou_threshold, max_detections)
        if anchor_sizes is None:
            sizes, extra_sizes = ssd_anchor_sizes(shape, len(strides), min_scale, max_scale)
        else:
            sizes = [float(s) for s in anchor_sizes]
            nxt = sizes[1:] + [min(float(min(shape[:2])), 2 * sizes[-1] - (sizes[-2] if len(sizes) > 1 else 0))]
            extra_sizes = [math.sqrt(a * max(b, a)) for a, b in zip(sizes, nxt)]
        ratios = tuple(float(r) for r in aspect_ratios)
        per_cell = anchor_lib.boxes_per_cell(strides, ratios, extra_sizes=extra_sizes)

        features = make_backbone(backbone, input_shape=shape, levels=levels, **backbone_kwargs)
        images = keras.Input(shape, name="images")
        pyramid = features(images)
        maps = [pyramid[v] for v in levels]
        if neck == "fpn":
            lateral = [keras.layers.Conv2D(neck_filters, 1, name=f"fpn_lateral{v[1:]}")(m) for v, m in zip(levels, maps)]
            outs = [lateral[-1]]
            for i in range(len(levels) - 2, -1, -1):
                up = keras.layers.UpSampling2D(
                    PYRAMID_LEVELS[levels[i + 1]] // PYRAMID_LEVELS[levels[i]], name=f"fpn_up{levels[i][1:]}"
                )(outs[0])
                outs.insert(0, keras.layers.Add(name=f"fpn_merge{levels[i][1:]}")([lateral[i], up]))
            maps = [
                conv_bn_act(m, neck_filters, 3, name=f"fpn_output{v[1:]}") for v, m in zip(levels, outs)
            ]
        x = maps[-1]
        top_level = int(levels[-1][1:])
        for i in range(extra_levels):
            tag = f"extra{top_level + i + 1}"
            x = conv_bn_act(x, max(extra_filters // 2, 8), 1, name=f"{tag}_reduce")
            x = conv_bn_act(x, extra_filters, 3, strides=2, name=f"{tag}_conv")
            maps.append(x)
        box_parts, class_parts = [], []
        for level, (m, k) in enumerate(zip(maps, per_cell)):
            tag = f"head{level}"
            b = _head(m, 4 * k, head, f"{tag}_box")
            c = _head(m, k * (num_classes + 1), head, f"{tag}_class")
            box_parts.append(keras.layers.Reshape((-1, 4), name=f"{tag}_box_reshape")(b))
            class_parts.append(keras.layers.Reshape((-1, num_classes + 1), name=f"{tag}_class_reshape")(c))
        outputs = {"boxes": _concat(box_parts, "boxes"), "classes": _concat(class_parts, "classes")}
        super().__init__(images, outputs, name=name, **kwargs)
        set_batchnorm_momentum(self)

        self.backbone = features
        self.image_shape = shape
        self.num_classes = int(num_classes)
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.strides = tuple(strides)
        self.variance = tuple(float(v) for v in variance)
        self.positive_iou = float(positive_iou)
        self.negative_iou = float(negative_iou)
        self.neg_pos_ratio = float(neg_pos_ratio)
        self.box_loss_weight = float(box_loss_weight)
        self.anchor_sizes = tuple(sizes)
        self.anchors = np.asarray(
            anchor_lib.anchor_boxes(shape, strides, sizes, ratios, extra_sizes=extra_sizes), "float32"
        )
        expected = int(outputs["boxes"].shape[1])
        if expected != len(self.anchors):  # the graph and the anchor table must agree (a programming error)
            raise RuntimeError(f"SSD: {expected} predictions but {len(self.anchors)} anchors.")
        self._hp = dict(
            input_shape=shape,
            num_classes=int(num_classes),
            class_names=self.class_names,
            backbone=backbone,
            backbone_kwargs=_jsonable(backbone_kwargs),
            levels=levels,
            extra_levels=int(extra_levels),
            extra_filters=int(extra_filters),
            neck=neck,
            neck_filters=int(neck_filters),
            head=head,
            min_scale=float(min_scale),
            max_scale=float(max_scale),
            anchor_sizes=None if anchor_sizes is None else [float(s) for s in anchor_sizes],
            aspect_ratios=ratios,
            variance=self.variance,
            positive_iou=self.positive_iou,
            negative_iou=self.negative_iou,
            neg_pos_ratio=self.neg_pos_ratio,
            box_loss_weight=self.box_loss_weight,
            score_threshold=self.score_threshold,
            iou_threshold=self.iou_threshold,
            max_detections=self.max_detections,
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.box_loss_tracker = keras.metrics.Mean(name="box_loss")
        self.class_loss_tracker = keras.metrics.Mean(name="class_loss")

    # ----- loss -------------------------------------------------------------------------------
    @property
    def metrics(self):
        return [self.loss_tracker, self.box_loss_tracker, self.class_loss_tracker]

    def loss_terms(self, y, y_pred):
        """``(box_loss, class_loss, details)`` of a batch; both normalised by the positives (≥ 1)."""
        deltas = ops.cast(y_pred["boxes"], "float32")
        logits = ops.cast(y_pred["classes"], "float32")
        match = anchor_lib.match_anchors(
            self.anchors, y["boxes"], y["labels"], self.positive_iou, self.negative_iou, force_match=True
        )
        positive = match["positive"]
        pos_f = ops.cast(positive, "float32")
        num_pos = ops.sum(pos_f, axis=1)  # (B,)
        normaliser = ops.maximum(ops.sum(num_pos), 1.0)

        target = anchor_lib.encode_boxes(ops.where(ops.expand_dims(positive, -1), match["boxes"], self.anchors),
                                         self.anchors, self.variance)
        diff = ops.abs(deltas - ops.stop_gradient(target))
        smooth_l1 = ops.sum(ops.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5), axis=-1)  # (B, A)
        box_loss = ops.sum(smooth_l1 * pos_f) / normaliser

        cls_target = ops.where(positive, match["labels"] + 1, 0)
        ce = keras.losses.sparse_categorical_crossentropy(cls_target, logits, from_logits=True)  # (B, A)
        candidates = ops.logical_and(ops.logical_not(positive), ops.logical_not(match["ignore"]))
        hard = hard_negative_mask(ops.stop_gradient(ce), candidates, num_pos, self.neg_pos_ratio)
        selected = ops.logical_or(positive, hard)
        class_loss = ops.sum(ce * ops.cast(selected, "float32")) / normaliser
        return box_loss, class_loss, {"positive": positive, "hard_negative": hard, "match": match}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        box_loss, class_loss, _ = self.loss_terms(y, y_pred)
        total = self.box_loss_weight * box_loss + class_loss
        if self.losses:
            total = total + ops.sum(ops.stack([ops.cast(v, total.dtype) for v in self.losses]))
        self.loss_tracker.update_state(total)
        self.box_loss_tracker.update_state(box_loss)
        self.class_loss_tracker.update_state(class_loss)
        return scale_loss(total)  # / replicas under a strategy (kerasvk.layers.replicas)

    # ----- outputs ------------------------------------------------------------------------------
    def decode_predictions(self, y_pred):
        """``(boxes (B, A, 4) xyxy pixels, scores (B, A, num_classes))``: softmax without the background."""
        deltas = ops.cast(y_pred["boxes"], "float32")
        v = self.variance
        bound = ops.convert_to_tensor([1e9, 1e9, _DELTA_CLIP / v[2], _DELTA_CLIP / v[3]], "float32")
        deltas = ops.minimum(deltas, bound)
        boxes = anchor_lib.decode_boxes(deltas, self.anchors, self.variance)
        scores = ops.softmax(ops.cast(y_pred["classes"], "float32"), axis=-1)[..., 1:]
        return boxes, scores

    # ----- serialization ------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._hp}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("input_shape", "levels", "aspect_ratios", "variance"):
            if config.get(key) is not None:
                config[key] = tuple(config[key])
        return cls(**config)


# Recipe for `kerasvk train ssd --data shapes`. Measured on the shapes test split (128×128, seed 0, 2026-12-06):
# 30 epochs + flip 0.488 mAP / 0.737 mAP@.5; 60 epochs + flip 0.563 / 0.805 (validation loss flat after epoch ~20:
# 1,400 training images overfit); 60 epochs + "standard" (flip, scale jitter, translation, brightness, contrast)
# 0.713 / 0.938. A wider FPN (neck_filters 128) changed nothing (0.565 / 0.804 at 60 epochs + flip).
TRAIN_RECIPE = {
    "epochs": 60,
    "batch_size": 32,
    "optimizer": "adamw",
    "lr": 2e-3,
    "schedule": "cosine",
    "warmup": 1,
    "augment": "standard",
}

_TINY = {
    "input_shape": (64, 64, 3),
    "num_classes": 3,
    "backbone": "resnet18",
    "backbone_kwargs": {"width_multiplier": 0.125, "blocks_per_stage": (1, 1, 1, 1)},
    "levels": ("P3", "P4", "P5"),
    "extra_levels": 1,
    "extra_filters": 16,
    "neck": None,
    "min_scale": 0.1,
}


# Why P2 (stride 4) and min_scale 0.06 by default: on `shapes` a quarter of the boxes are <= 11 px; with
# default boxes from stride 8 only 67% of ground-truth boxes have an anchor at IoU >= 0.5 (39% of the small
# ones) -- the rest are matched only by the forced best anchor -- against 96% (89%) with P2.
ssd = variant(
    SSD,
    "ssd",
    task="detection",
    family="ssd",
    fixed={},
    description="SSD (Liu et al. 2016): multi-scale default boxes on a kerasvk backbone + extra layers, "
    "hard-negative mining.",
    test_kwargs=_TINY,
    example_inputs=example_inputs,
    train_defaults=TRAIN_RECIPE,
)
