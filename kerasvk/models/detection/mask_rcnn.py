"""Mask R-CNN (He et al., 2017): Faster R-CNN + FPN plus a mask head, trained by ``fit``.

On top of ``FasterRCNN`` (``faster_rcnn.py``: graph, RPN, RoI sampling, box losses):

- **Mask head** (nested model ``mask_head``): ``mask_convs`` 3×3 conv + ReLU layers of ``mask_filters`` on
  ``mask_roi_size``×``mask_roi_size`` RoIAlign features (``mask_roi_align``, the same multi-level
  assignment), a 2×2 stride-2 transposed conv + ReLU and a 1×1 conv → ``2·mask_roi_size`` square logits per
  class.
- **Training**: the positive RoIs (``sample_rois`` puts them first, so the mask branch runs on the first
  ``floor(roi_batch_size · roi_positive_fraction)`` slots, static-shaped) get ``mask_targets``: the
  instance mask of the matched ground-truth box, RoIAligned (bilinear, aligned, 2×2 samples per bin) into
  the RoI box and thresholded at 0.5. Loss: per-pixel sigmoid BCE on the ground-truth class's channel
  only, averaged over pixels and positive RoIs (``mask_loss``).
- **Targets**: ``{"boxes", "labels", "masks": (batch, max_boxes, H, W)}`` (``load_detection(...,
  with_masks=True)``; the trainer asks for them for the ``mask_rcnn`` family). A missing ``masks`` or one
  of another shape raises a ``ValueError`` naming the expected shape.
- **Inference**: ``postprocess`` adds ``"masks"`` ``(batch, max_detections, H, W)`` uint8: the mask head on
  each detection box, the detected class's channel, sigmoid, pasted into the box at image size
  (``paste_masks``: bilinear) and thresholded at ``mask_threshold``. The serving signature adds
  ``detection_masks`` ``(batch, max_detections, height, width)`` uint8 at the size of the image as sent.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kerasvk.layers.roi_align import RoIAlign, interpolation_weights
from kerasvk.models.checks import check_int, check_number
from kerasvk.models.detection.base import example_inputs
from kerasvk.models.detection.faster_rcnn import LEVELS, TRAIN_RECIPE, FasterRCNN, _TINY

MASK_TRAIN_RECIPE = {**TRAIN_RECIPE, "epochs": 8}  # the measured recipe (README "Detection")
from kerasvk.registry import variant


def mask_targets(masks, gt_index, rois, mask_size=28):
    """``(B, K, S, S)`` float 0/1 training masks: instance ``gt_index`` of ``masks`` ``(B, M, H, W)`` in ``rois``.

    The matched instance mask is RoIAligned into the RoI (xyxy pixels, aligned, 2×2 samples per bin) and
    thresholded at 0.5; an out-of-range ``gt_index`` (e.g. a padding slot) gives an empty mask.
    """
    masks = ops.cast(masks, "float32")
    h, w = int(masks.shape[2]), int(masks.shape[3])
    pick = ops.one_hot(ops.cast(gt_index, "int32"), int(masks.shape[1]), dtype="float32")  # (B, K, M)
    inst = ops.einsum("bkm,bmhw->bkhw", pick, masks)
    rois = ops.cast(rois, "float32")
    wy = interpolation_weights(rois[..., 1], rois[..., 3], h, mask_size, 2, True, 1.0)  # (B, K, S, H)
    wx = interpolation_weights(rois[..., 0], rois[..., 2], w, mask_size, 2, True, 1.0)  # (B, K, S, W)
    t = ops.einsum("bkph,bkhw->bkpw", wy, inst)
    t = ops.einsum("bkpw,bkqw->bkpq", t, wx)
    return ops.cast(t >= 0.5, "float32")


def _paste_weights(lo, hi, n, size):
    """``(B, D, n, size)``: image pixel ``i`` (centre ``i + 0.5``) inside the box ← bilinear in the mask grid."""
    pix = ops.arange(n, dtype="float32") + 0.5
    lo, hi = ops.expand_dims(lo, -1), ops.expand_dims(hi, -1)
    v = (pix - lo) / ops.maximum(hi - lo, 1e-3) * size - 0.5
    inside = ops.cast(ops.logical_and(pix >= lo, pix < hi), "float32")
    v = ops.clip(v, 0.0, float(size - 1))
    tent = ops.maximum(0.0, 1.0 - ops.abs(ops.expand_dims(v, -1) - ops.arange(size, dtype="float32")))
    return tent * ops.expand_dims(inside, -1)


def paste_masks(probs, boxes, image_hw):
    """Box-relative mask probabilities ``(B, D, S, S)`` pasted into xyxy ``boxes`` → ``(B, D, H, W)`` (0 outside)."""
    probs = ops.cast(probs, "float32")
    size = int(probs.shape[-1])
    boxes = ops.cast(boxes, "float32")
    ay = _paste_weights(boxes[..., 1], boxes[..., 3], int(image_hw[0]), size)
    ax = _paste_weights(boxes[..., 0], boxes[..., 2], int(image_hw[1]), size)
    out = ops.einsum("bdys,bdst->bdyt", ay, probs)
    return ops.einsum("bdyt,bdxt->bdyx", out, ax)


def _mask_head(roi_size, channels, filters, convs, num_classes):
    x_in = keras.Input((roi_size, roi_size, channels), name="mask_roi_features")
    x = x_in
    for i in range(convs):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"mask_head_conv{i + 1}")(x)
    x = keras.layers.Conv2DTranspose(filters, 2, strides=2, activation="relu", name="mask_head_upsample")(x)
    logits = keras.layers.Conv2D(num_classes, 1, name="mask_head_logits", dtype="float32")(x)
    return keras.Model(x_in, logits, name="mask_head")


@keras.saving.register_keras_serializable(package="kerasvk")
class MaskRCNN(FasterRCNN):
    """Mask R-CNN; see the module docstring. Build with ``kerasvk.build("mask_rcnn", ...)``."""

    def __init__(self, mask_roi_size=14, mask_filters=64, mask_convs=2, mask_threshold=0.5,
                 max_detections=50, name="mask_rcnn", **kwargs):
        for key, v, low in (("mask_roi_size", mask_roi_size, 1), ("mask_filters", mask_filters, 1),
                            ("mask_convs", mask_convs, 0)):
            check_int(key, v, low)
        check_number("mask_threshold", mask_threshold, 0, 1, low_open=True, high_open=True)
        super().__init__(max_detections=max_detections, name=name, **kwargs)
        self.mask_roi_size = int(mask_roi_size)
        self.mask_size = 2 * self.mask_roi_size
        self.mask_threshold = float(mask_threshold)
        self.mask_rois = max(1, int(self.roi_batch_size * self.roi_positive_fraction))
        self.mask_roi_align = RoIAlign(self.mask_roi_size, 2, levels=tuple(int(v[1:]) for v in LEVELS),
                                       canonical_size=self._hp["roi_canonical_size"], canonical_level=4,
                                       name="mask_roi_align")
        self.mask_head = _mask_head(self.mask_roi_size, self._hp["fpn_filters"], int(mask_filters), int(mask_convs),
                                    self.num_classes)
        self._hp.update({"mask_roi_size": self.mask_roi_size, "mask_filters": int(mask_filters),
                         "mask_convs": int(mask_convs), "mask_threshold": self.mask_threshold})
        self.mask_loss_tracker = keras.metrics.Mean(name="mask_loss")

    @property
    def metrics(self):
        return super().metrics + [self.mask_loss_tracker]

    def _trackers(self):
        return {**super()._trackers(), "mask_loss": self.mask_loss_tracker}

    def _check_masks(self, y):
        h, w = self.image_shape[:2]
        m = None if not isinstance(y, dict) else y.get("masks")
        if m is None:
            raise ValueError(
                "Mask R-CNN trains on targets {'boxes', 'labels', 'masks': (batch, max_boxes, height, width)} "
                "(load_detection(..., with_masks=True)). Received: no 'masks' in the targets")
        shape = tuple(m.shape)
        boxes = tuple(y["boxes"].shape)
        if len(shape) != 4 or shape[2:] != (h, w) or (shape[1] is not None and boxes[1] is not None
                                                      and shape[1] != boxes[1]):
            raise ValueError(
                f"targets['masks'] must have shape (batch, max_boxes, height, width) = (batch, {boxes[1]}, {h}, {w}) "
                f"(one mask per box row, at the model's input size). Received: shape={shape}")

    def mask_loss(self, y, sample, y_pred):
        """Sigmoid BCE of the ground-truth class's mask logits on the positive RoIs (mean over pixels)."""
        k = self.mask_rois
        rois = sample["rois"][:, :k]
        pos = ops.cast(sample["positive"][:, :k], "float32")
        cls = ops.clip(sample["labels"][:, :k] - 1, 0, self.num_classes - 1)
        logits = self._mask_logits(y_pred, rois, cls)  # (B, K, S, S)
        target = ops.stop_gradient(mask_targets(y["masks"], sample["gt_index"][:, :k], rois, self.mask_size))
        bce = ops.maximum(logits, 0.0) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))
        per_roi = ops.mean(ops.reshape(bce, (ops.shape(bce)[0], k, -1)), axis=-1)
        return ops.sum(per_roi * pos) / ops.maximum(ops.sum(pos), 1.0)

    def _mask_logits(self, y_pred, boxes, classes):
        """Mask logits ``(B, K, S, S)`` of ``classes`` ``(B, K)`` (0-based) in ``boxes`` ``(B, K, 4)``."""
        maps = [y_pred[v] for v in LEVELS]
        feats = self.mask_roi_align([boxes, *maps])  # (B, K, R, R, F)
        b, k = ops.shape(feats)[0], ops.shape(feats)[1]
        r, f = self.mask_roi_size, int(feats.shape[-1])
        logits = self.mask_head(ops.reshape(feats, (-1, r, r, f)))
        logits = ops.reshape(logits, (b, k, self.mask_size, self.mask_size, self.num_classes))
        pick = ops.one_hot(ops.cast(classes, "int32"), self.num_classes, dtype=logits.dtype)
        return ops.sum(logits * pick[:, :, None, None, :], axis=-1)

    def loss_terms(self, y, y_pred):
        self._check_targets(y)
        self._check_masks(y)
        rpn_cls, rpn_box, _ = self.rpn_loss(y, y_pred)
        sample = self.sample_rois(y, y_pred)
        rcnn_cls, rcnn_box = self.rcnn_loss(sample, y_pred)
        return {"rpn_class_loss": rpn_cls, "rpn_box_loss": rpn_box, "rcnn_class_loss": rcnn_cls,
                "rcnn_box_loss": rcnn_box, "mask_loss": self.mask_loss(y, sample, y_pred)}

    # ----- outputs ------------------------------------------------------------------------------
    def postprocess(self, y_pred, *, score_threshold=None, iou_threshold=None, max_detections=None):
        """``FasterRCNN``'s detections plus ``"masks"`` ``(B, D, H, W)`` uint8 (module docstring)."""
        det = super().postprocess(y_pred, score_threshold=score_threshold, iou_threshold=iou_threshold,
                                  max_detections=max_detections)
        probs = ops.sigmoid(self._mask_logits(y_pred, det["boxes"], det["classes"]))
        pasted = paste_masks(probs, det["boxes"], self.image_shape[:2])
        det["masks"] = ops.cast(pasted >= self.mask_threshold, "uint8")
        return det

    def extra_serving_outputs(self, det, images):
        """``detection_masks`` (B, D, H, W) uint8, resized to the size of the image sent."""
        import tensorflow as tf

        masks = tf.transpose(tf.cast(det["masks"], tf.float32), (0, 2, 3, 1))  # (B, h, w, D)
        masks = tf.image.resize(masks, tf.shape(images)[1:3], method="bilinear")
        return {"detection_masks": tf.cast(tf.transpose(masks, (0, 3, 1, 2)) >= 0.5, tf.uint8)}


def example_inputs_with_masks(model, batch_size=2, seed=0):
    """``example_inputs`` plus ``masks``: each box filled (a rectangle instance), padding rows empty."""
    images, targets = example_inputs(model, batch_size, seed)
    h, w = model.image_shape[:2]
    boxes, labels = targets["boxes"], targets["labels"]
    masks = np.zeros((*labels.shape, h, w), "uint8")
    for b, j in zip(*np.nonzero(labels >= 0)):
        x1, y1, x2, y2 = np.round(boxes[b, j]).astype(int)
        masks[b, j, max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)] = 1
    return images, {**targets, "masks": masks}


mask_rcnn = variant(
    MaskRCNN,
    "mask_rcnn",
    task="detection",
    family="mask_rcnn",
    fixed={},
    description="Mask R-CNN: Faster R-CNN + FPN (P2-P5) + a small FCN mask head (14x14 RoIAlign -> 28x28 "
    "per-class masks); boxes, scores, classes and instance masks; trained end to end by fit.",
    test_kwargs={**_TINY, "mask_filters": 8, "mask_roi_size": 7},
    example_inputs=example_inputs_with_masks,
    train_defaults=MASK_TRAIN_RECIPE,
)
