"""What every kerasvk detector shares: the target convention, NMS, ``detect`` and the serving signature.

Conventions (keras' ``bounding_boxes`` dict, made explicit):

- **Inputs**: float images in [0, 1], ``(batch, height, width, 3)`` at the model's fixed ``image_shape``.
- **Targets** (what ``fit`` passes as ``y``): ``{"boxes": (batch, max_boxes, 4), "labels": (batch,
  max_boxes)}``, boxes in ``BOX_FORMAT`` (``"xyxy"``, absolute pixels of the model input), padded rows
  with label ``PAD_LABEL`` (-1) and boxes -1 (keras-cv's padding). A model's ``compute_loss`` ignores
  padded rows, so a batch without any object is valid (every anchor is background).
- **Raw outputs**: ``model(images)`` returns the head's raw tensors (what ``compute_loss`` takes as
  ``y_pred``); ``model.decode_predictions(y_pred)`` turns them into ``(boxes (batch, anchors, 4) xyxy
  pixels, scores (batch, anchors, num_classes) in [0, 1])``.
- **Detections**: ``model.postprocess(y_pred)`` runs per-class NMS (``non_max_suppression``) and returns
  ``{"boxes" (batch, max_detections, 4) xyxy pixels, "scores", "classes" (int32, 0-based),
  "num_detections" (int32)}``, padded past ``num_detections`` with zeros; ``model.detect(images)`` is
  the same for arrays (numpy out, batched).
- **Serving** (``serving_endpoints``): ``serving_default(images)`` takes a ``uint8`` batch of any size,
  resizes it in the graph to the model's input size and returns the TF Object Detection API names
  ``detection_boxes`` (``(batch, max_detections, 4)``, normalised ``[ymin, xmin, ymax, xmax]`` of the
  image as sent — the resize keeps relative coordinates), ``detection_scores``, ``detection_classes``
  (int32, 0-based), ``num_detections`` (int32) and, when the model knows its class names,
  ``detection_class_names``.

A detector is a functional ``keras.Model`` subclass that also derives from ``Detector`` and sets
``image_shape``, ``num_classes``, ``class_names`` and its NMS settings (``score_threshold``,
``iou_threshold``, ``max_detections``) in ``__init__``.
"""

from __future__ import annotations

import numpy as np

BOX_FORMAT = "xyxy"
PAD_LABEL = -1
DETECTION_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
# keras.utils.bounding_boxes' formats (the rel_* ones are relative to the image size)
BOX_FORMATS = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw",
               "rel_xyxy", "rel_yxyx", "rel_xywh", "rel_center_xywh")
NMS_DEFAULTS = {"score_threshold": 0.05, "iou_threshold": 0.5, "max_detections": 100}
# backbone family options used when a detector's backbone_kwargs is None: small, fast backbones at
# 128×128 on a CPU (1.4M parameters for YOLO on resnet18 at width 0.25)
DEFAULT_BACKBONE_KWARGS = {
    "resnet18": {"width_multiplier": 0.25},
    "mobilenet_v2": {"alpha": 0.35},
    "mobilenet_v3_small": {"alpha": 0.5},
}
# BatchNormalization momentum of every detector layer (YOLOv5/v8's 0.97, torch momentum 0.03). keras'
# default 0.99 leaves the moving statistics far behind the weights for the first few hundred steps of a
# short from-scratch run: measured, a YOLO after 6 epochs (264 steps) at 128x128 scored mAP@.5 0.34
# with batch statistics but 0.00 in inference mode.
BN_MOMENTUM = 0.97


def set_batchnorm_momentum(model, momentum=BN_MOMENTUM):
    """Set ``momentum`` on every ``BatchNormalization`` layer of ``model``, nested models included."""
    import keras

    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
        stack.extend(getattr(layer, "layers", None) or [])


def backbone_options(backbone, backbone_kwargs) -> dict:
    """A copy of ``backbone_kwargs``, or the detectors' default options for ``backbone`` when None
    (``DEFAULT_BACKBONE_KWARGS``); ``ValueError`` when it is not a dict."""
    if backbone_kwargs is None:
        return dict(DEFAULT_BACKBONE_KWARGS.get(backbone, {}))
    if not isinstance(backbone_kwargs, dict):
        raise ValueError(f"backbone_kwargs must be None or a dict. Received: backbone_kwargs={backbone_kwargs!r}")
    return dict(backbone_kwargs)


def check_backbone(backbone, levels, model="detector"):
    """The registry spec of ``backbone``, a registered model with (at least) pyramid ``levels``; else a
    ``ValueError`` naming ``backbone`` and listing the registered models that have those levels (the
    closest name first, for a typo)."""
    import difflib

    from kerasvk.registry import get_spec, list_models

    levels = tuple(levels)
    names = list_models()
    allowed = [n for n in names if set(levels) <= set(get_spec(n).pyramid_levels)]
    if isinstance(backbone, str) and backbone in names:
        spec = get_spec(backbone)
        if set(levels) <= set(spec.pyramid_levels):
            return spec
        why = f"{backbone!r} has " + (f"only {', '.join(spec.pyramid_levels)}" if spec.pyramid_levels else "none")
    else:
        close = difflib.get_close_matches(backbone, allowed, n=1) if isinstance(backbone, str) else []
        why = f"{backbone!r} is not a registered model" + (f" (did you mean {close[0]!r}?)" if close else "")
    raise ValueError(
        f"{model} needs a backbone with pyramid levels {', '.join(levels)}; {why}. Allowed backbones: "
        f"{', '.join(allowed)}. Received: backbone={backbone!r}"
    )


def check_box_format(fmt) -> str:
    """``fmt`` if keras knows it, else a ``ValueError`` listing the formats."""
    if fmt not in BOX_FORMATS:
        raise ValueError(f"Unknown bounding box format {fmt!r}. Allowed: {', '.join(BOX_FORMATS)}.")
    return fmt


def check_nms_options(score_threshold, iou_threshold, max_detections):
    for key, v in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{key} must be a number in [0, 1]. Received: {key}={v!r}")
    if isinstance(max_detections, bool) or not isinstance(max_detections, (int, np.integer)) or max_detections < 1:
        raise ValueError(f"max_detections must be an integer >= 1. Received: max_detections={max_detections!r}")


def non_max_suppression(boxes, scores, image_shape, *, score_threshold=0.05, iou_threshold=0.5, max_detections=100):
    """Per-class NMS of a batch (``tf.image.combined_non_max_suppression``), padded to ``max_detections``.

    ``boxes``: ``(batch, anchors, 4)`` xyxy pixels (class-agnostic) or ``(batch, anchors, classes, 4)``
    (class-specific, two-stage detectors); ``scores``: ``(batch, anchors, classes)`` in [0, 1];
    ``image_shape``: ``(height, width)`` the boxes are clipped to. Returns ``{"boxes", "scores",
    "classes" (int32), "num_detections" (int32)}``; boxes are xyxy pixels.
    """
    import tensorflow as tf

    h, w = float(image_shape[0]), float(image_shape[1])
    boxes = tf.cast(boxes, tf.float32)
    scores = tf.cast(scores, tf.float32)
    scale = tf.constant([w, h, w, h], tf.float32)
    rel = boxes / scale  # TF's NMS clips to [0, 1] with clip_boxes=True; IoU is the same in xy or yx order
    if rel.shape.rank == 3:
        rel = rel[:, :, None, :]
    nmsed_boxes, nmsed_scores, nmsed_classes, valid = tf.image.combined_non_max_suppression(
        rel,
        scores,
        max_output_size_per_class=int(max_detections),
        max_total_size=int(max_detections),
        iou_threshold=float(iou_threshold),
        score_threshold=float(score_threshold),
        pad_per_class=False,
        clip_boxes=True,
    )
    return {
        "boxes": nmsed_boxes * scale,
        "scores": nmsed_scores,
        "classes": tf.cast(nmsed_classes, tf.int32),
        "num_detections": tf.cast(valid, tf.int32),
    }


class Detector:
    """Mixin for detectors (see the module docstring); subclasses implement ``decode_predictions``."""

    image_shape = None
    num_classes = None
    class_names = None
    score_threshold = NMS_DEFAULTS["score_threshold"]
    iou_threshold = NMS_DEFAULTS["iou_threshold"]
    max_detections = NMS_DEFAULTS["max_detections"]

    def decode_predictions(self, y_pred):
        """``(boxes (batch, anchors, 4) xyxy pixels, scores (batch, anchors, classes))`` of raw outputs."""
        raise NotImplementedError

    def postprocess(self, y_pred, *, score_threshold=None, iou_threshold=None, max_detections=None):
        """Decoded, NMS-ed detections of raw outputs (TensorFlow tensors; see the module docstring)."""
        boxes, scores = self.decode_predictions(y_pred)
        return non_max_suppression(
            boxes,
            scores,
            self.image_shape[:2],
            score_threshold=self.score_threshold if score_threshold is None else score_threshold,
            iou_threshold=self.iou_threshold if iou_threshold is None else iou_threshold,
            max_detections=self.max_detections if max_detections is None else max_detections,
        )

    def detect(self, images, *, batch_size=32, score_threshold=None, iou_threshold=None, max_detections=None):
        """Detections of float images in [0, 1] (or uint8 0..255) at the model's input size, as numpy arrays.

        ``ValueError`` for anything else: another shape, a non-numeric array, a NaN/Inf pixel or a float outside
        [0, 1] (named by its index: 0..255 floats gave detections of a white image), bad NMS settings.
        """
        import tensorflow as tf

        raw = np.asarray(images)
        expected = tuple(self.image_shape)
        if raw.dtype.kind not in "biuf" or raw.ndim != 4 or tuple(raw.shape[1:]) != expected:
            raise ValueError(
                f"{self.name}.detect takes float images of shape (batch, {', '.join(map(str, expected))}) "
                f"in [0, 1]. Received: {'shape=' + str(raw.shape) if raw.dtype.kind in 'biuf' else 'dtype ' + str(raw.dtype)}. "
                "Resize first (or export the model: its serving signature resizes images of any size)."
            )
        images = raw.astype("float32") / 255.0 if raw.dtype == np.uint8 else raw.astype("float32")
        bad = ~np.isfinite(images) | (images < -1e-3) | (images > 1.0 + 1e-3)  # resampling rounds a little over
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{self.name}.detect takes float images in [0, 1] (or uint8 0..255). Received: images{list(idx)}="
                f"{raw[idx].item()!r} (image {idx[0]}). Scale 0..255 floats by 1/255; clean non-finite pixels."
            )
        check_nms_options(self.score_threshold if score_threshold is None else score_threshold,
                          self.iou_threshold if iou_threshold is None else iou_threshold,
                          self.max_detections if max_detections is None else max_detections)
        fn = _cached_postprocess(self, score_threshold, iou_threshold, max_detections)
        parts = [fn(tf.constant(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
        if not parts:
            n = int(self.max_detections if max_detections is None else max_detections)
            return {"boxes": np.zeros((0, n, 4), "float32"), "scores": np.zeros((0, n), "float32"),
                    "classes": np.zeros((0, n), "int32"), "num_detections": np.zeros((0,), "int32")}
        return {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}

    def serving_endpoints(self):
        """``serving_default(images)``: uint8 images of any size → the TF Object Detection API outputs."""
        import tensorflow as tf

        h, w, c = self.image_shape
        names = tf.constant([str(n) for n in self.class_names]) if self.class_names else None

        def serve(images):
            x = tf.image.resize(tf.cast(images, tf.float32), (h, w), method="bilinear") / 255.0
            det = self.postprocess(self(x, training=False))
            x1, y1, x2, y2 = tf.unstack(det["boxes"], axis=-1)
            out = {
                "detection_boxes": tf.stack([y1 / h, x1 / w, y2 / h, x2 / w], axis=-1),
                "detection_scores": det["scores"],
                "detection_classes": det["classes"],
                "num_detections": det["num_detections"],
            }
            if names is not None:
                out["detection_class_names"] = tf.gather(names, det["classes"])
            out.update(self.extra_serving_outputs(det, images))
            return out

        spec = [tf.TensorSpec((None, None, None, c), tf.uint8, name="images")]
        return {"serving_default": (serve, spec)}

    def extra_serving_outputs(self, det, images):
        """Outputs a subclass adds to ``serving_default`` (e.g. Mask R-CNN's ``detection_masks``), from the
        postprocessed detections ``det`` and the served uint8 ``images``; none here."""
        return {}


def _cached_postprocess(model, score_threshold, iou_threshold, max_detections):
    """A ``tf.function`` of images → detections, cached on the model per NMS setting."""
    import tensorflow as tf

    cache = model.__dict__.setdefault("_kerasvk_detect_fns", {})
    key = (score_threshold, iou_threshold, max_detections)
    if key not in cache:
        @tf.function(reduce_retracing=True)
        def fn(images):
            return model.postprocess(model(images, training=False), score_threshold=score_threshold,
                                     iou_threshold=iou_threshold, max_detections=max_detections)

        cache[key] = fn
    return cache[key]


def example_targets(image_shape, batch_size=2, max_boxes=4, num_classes=3, seed=0):
    """A small valid target dict (random boxes of 8–40 % of the image; the last image has none)."""
    rng = np.random.default_rng(seed)
    h, w = image_shape[:2]
    boxes = -np.ones((batch_size, max_boxes, 4), "float32")
    labels = np.full((batch_size, max_boxes), PAD_LABEL, "int32")
    for b in range(batch_size - 1 if batch_size > 1 else batch_size):
        for j in range(int(rng.integers(1, max_boxes + 1))):
            bw, bh = rng.uniform(0.08, 0.4) * w, rng.uniform(0.08, 0.4) * h
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            boxes[b, j] = (x1, y1, x1 + bw, y1 + bh)
            labels[b, j] = int(rng.integers(0, num_classes))
    return {"boxes": boxes, "labels": labels}


def example_inputs(model, batch_size=2, seed=0):
    """``(images, targets)`` for the registry's shared tests (``ModelSpec.example_inputs``)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (batch_size, *model.image_shape)).astype("float32")
    return images, example_targets(model.image_shape, batch_size, num_classes=model.num_classes, seed=seed)
