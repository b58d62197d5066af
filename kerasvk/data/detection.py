"""The detection data path: validated boxes → seeded split → cache → shuffle → batch → augment → prefetch.

``load_detection(source, ...)`` returns a :class:`DetectionData` whose datasets yield
``(images float32 [0, 1] (B, H, W, 3), {"boxes": (B, M, 4) float32, "labels": (B, M) int32[, "masks":
(B, M, H, W) uint8]})`` — the target convention of ``kerasvk.models.detection.base``: boxes ``xyxy`` in
absolute pixels of the image, ``M = max_boxes`` rows per image, padding rows label -1 and boxes -1
(always after the real rows). An image without any box is a valid element (all rows padding).

Sources (``DETECTION_SOURCES``)::

    shapes[:count=N,size=S,max_objects=K]   the seeded ``kerasvk.data.shapes`` generator (S×S images)
    (images, {"boxes", "labels"[, "masks"]}) arrays: images (N, H, W, 3) uint8 0..255 or float [0, 1],
                                             boxes (N, M, 4) in ``box_format``, labels (N, M) int,
                                             -1 for padding rows; masks (N, M, H, W)

Augmentation (training split only, ``DETECTION_AUGMENTS``), keras core's box-aware layers with
``bounding_box_format="xyxy"``, which transform images, boxes and masks with the same random
parameters inside ``tf.data`` on the TF backend (checked by tests/test_shapes_data.py: every
augmented box encloses its transformed mask):

    flip       keras RandomFlip("horizontal")
    standard   RandomFlip("horizontal") → scale jitter RandomZoom(±25 %, crop/pad back to the image size,
               constant fill: reflecting would copy objects without boxes) → RandomTranslation(±10 %)
               → mild colour jitter (RandomBrightness ±10 %, RandomContrast ±20 %)

After augmentation the boxes are clipped to the image; when masks travel with the batch the boxes
are recomputed as the tight boxes of the transformed masks (exact, where a transformed box would
keep the corners a cut shape no longer has). Boxes that left the image or shrank under
``MIN_BOX_SIZE`` pixels on a side are dropped (label -1, box -1, mask zero) and the rows re-packed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from kerasvk.data.shapes import SHAPE_CLASSES
from kerasvk.data.shapes import shapes as make_shapes
from kerasvk.data.pipeline import split_indices

PAD_LABEL = -1
# keras.utils.bounding_boxes' formats (the rel_* ones are relative to the image size). The data level
# keeps its own tuple: it may not import kerasvk.models (DESIGN "Which way imports run").
BOX_FORMATS = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw",
               "rel_xyxy", "rel_yxyx", "rel_xywh", "rel_center_xywh")
DETECTION_SOURCES = "shapes[:count=N,size=S,max_objects=K] or an (images, {'boxes', 'labels'}) array tuple"
SHAPES_OPTIONS = ("count", "size", "max_objects")
DETECTION_AUGMENTS = ("flip", "standard")
MIN_BOX_SIZE = 2.0  # pixels: augmented boxes with a thinner side are dropped
SHAPES_LIMITS = {"count": 1_000_000, "size": 4096, "max_objects": 1000}  # beyond these: a typo, not a data set
MAX_IMAGE_BYTES = 8 * 2**30  # generated uint8 images (and masks) held in memory at once
SHAPES_DEFAULT_COUNT = 2000  # 1,400 training images at the default splits: what the yolo/ssd recipes are measured on


@dataclass
class DetectionData:
    """Train/val/test detection pipelines of one source, with what a detector needs to be built for it."""

    train: object
    val: object
    test: object
    class_names: list
    num_classes: int
    counts: dict
    input_shape: tuple
    max_boxes: int
    test_arrays: dict
    source: str = "shapes"
    box_report: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- sources


def parse_detection_source(source):
    """``"shapes:count=200,size=64"`` → ``("shapes", {"count": 200, "size": 64})``; an
    ``(images, targets)`` tuple → ``("arrays", {})``. Anything else raises a ``ValueError``."""
    if isinstance(source, (tuple, list)):
        if len(source) == 2 and isinstance(source[1], dict) and {"boxes", "labels"} <= set(source[1]):
            return "arrays", {}
        raise ValueError(
            f"An array detection source must be (images, {{'boxes': ..., 'labels': ...}}). Allowed: "
            f"{DETECTION_SOURCES}. Received: a {type(source).__name__} of {len(source)} items"
            + (f" with keys {sorted(source[1])}" if len(source) == 2 and isinstance(source[1], dict) else "")
        )
    if not isinstance(source, str) or not source:
        raise ValueError(f"Unknown detection source {source!r}. Allowed: {DETECTION_SOURCES}.")
    kind, _, rest = source.partition(":")
    if kind != "shapes":
        close = difflib.get_close_matches(kind, ["shapes"], n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ValueError(f"Unknown detection source {source!r}.{hint} Allowed: {DETECTION_SOURCES}.")
    opts = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in SHAPES_OPTIONS:
            raise ValueError(
                f"Bad option {item!r} in detection source {source!r}. Allowed options: "
                f"{', '.join(k + '=N' for k in SHAPES_OPTIONS)}."
            )
        if key in opts:
            raise ValueError(f"Option {key!r} given twice in detection source {source!r}.")
        try:
            opts[key] = int(value)
        except ValueError:
            raise ValueError(f"Option {key} must be an integer. Received: {item!r} in {source!r}") from None
        if opts[key] < (16 if key == "size" else 1):
            raise ValueError(
                f"Option {key} must be >= {16 if key == 'size' else 1}. Received: {item!r} in {source!r}"
            )
        if opts[key] > SHAPES_LIMITS[key]:
            raise ValueError(f"Option {key} must be at most {SHAPES_LIMITS[key]:,}. Received: {item!r} in {source!r}")
    return kind, opts


def _check_shapes_memory(count, size, max_objects, with_masks, source):
    need = count * size[0] * size[1] * (3 + (max_objects if with_masks else 0))
    if need > MAX_IMAGE_BYTES:
        raise ValueError(
            f"{source} at {size[0]}x{size[1]} would hold {count:,} images{' and masks' if with_masks else ''} = "
            f"{need / 2**30:,.1f} GiB in memory; at most {MAX_IMAGE_BYTES // 2**30} GiB: use a smaller count or size."
        )


# ------------------------------------------------------------------------------------------ box checks


def _pad_rows(boxes, labels):
    """Per-image lists of ``(m_i, 4)`` boxes and ``(m_i,)`` labels → padded ``(N, M, 4)``, ``(N, M)``."""
    if len(boxes) != len(labels):
        raise ValueError(f"boxes and labels differ in length: {len(boxes)} vs {len(labels)} images.")
    rows = [np.asarray(b, "float64").reshape(-1, 4) for b in boxes]
    labs = [np.asarray(la).reshape(-1) for la in labels]
    for i, (b, la) in enumerate(zip(rows, labs)):
        if len(b) != len(la):
            raise ValueError(f"Image {i} has {len(b)} boxes but {len(la)} labels.")
    m = max([len(b) for b in rows] + [1])
    out_b = np.full((len(rows), m, 4), -1.0)
    out_l = np.full((len(rows), m), PAD_LABEL, "int64")
    for i, (b, la) in enumerate(zip(rows, labs)):
        out_b[i, : len(b)] = b
        out_l[i, : len(la)] = la
    return out_b, out_l


def _check_image_size(image_size):
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) not in (2, 3)
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in image_size)
    ):
        raise ValueError(
            f"image_size must be (height, width) positive integers. Received: image_size={image_size!r}"
        )
    return int(image_size[0]), int(image_size[1])


def _check_boxes(boxes, labels, image_size, box_format="xyxy", num_classes=None):
    """``check_boxes`` plus the row order that packs each image's kept rows first (for masks)."""
    if box_format not in BOX_FORMATS:
        raise ValueError(f"Unknown bounding box format {box_format!r}. Allowed: {', '.join(BOX_FORMATS)}.")
    h, w = _check_image_size(image_size)
    if isinstance(boxes, (list, tuple)) and (len(boxes) == 0 or np.ndim(boxes[0]) == 2 or len(boxes[0]) == 0):
        boxes, labels = _pad_rows(boxes, labels)
    boxes = np.asarray(boxes, dtype="float64")
    labels = np.asarray(labels)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:2]:
        raise ValueError(
            "boxes must have shape (images, max_boxes, 4) and labels (images, max_boxes) "
            "(or per-image lists). "
            f"Received: boxes.shape={boxes.shape}, labels.shape={labels.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        as_int = labels.astype("int64")
        if not np.array_equal(as_int, labels):
            raise ValueError(f"labels must be integers (-1 for padding rows). Received: dtype={labels.dtype}")
        labels = as_int
    labels = labels.astype("int64")
    real = labels != PAD_LABEL
    upper = num_classes if num_classes is not None else None
    bad = real & ((labels < 0) | (labels >= upper if upper is not None else False))
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        allowed = f"[0, {upper})" if upper is not None else ">= 0"
        raise ValueError(
            f"Labels must be in {allowed} (-1 marks a padding row). "
            f"Received: labels[{i}, {j}]={labels[i, j]} "
            f"({int(bad.sum())} bad labels in all)"
        )
    finite = np.isfinite(boxes).all(axis=-1)
    if (real & ~finite).any():
        i, j = map(int, np.argwhere(real & ~finite)[0])
        raise ValueError(
            f"Box of image {i}, row {j} is not finite: {boxes[i, j].tolist()} (NaN/inf). "
            f"{int((real & ~finite).sum())} such boxes in all."
        )
    import keras

    xyxy = np.array(
        keras.utils.bounding_boxes.convert_format(
            np.where(real[..., None], boxes, 0.0).astype("float32"), source=box_format, target="xyxy",
            height=h, width=w,
        ),
        dtype="float64",
    )
    flipped = real & ((xyxy[..., 2] < xyxy[..., 0]) | (xyxy[..., 3] < xyxy[..., 1]))
    if flipped.any():
        i, j = map(int, np.argwhere(flipped)[0])
        raise ValueError(
            f"Box of image {i}, row {j} has x2 < x1 or y2 < y1: {boxes[i, j].tolist()} in {box_format!r} "
            f"(xyxy {xyxy[i, j].round(3).tolist()}). Boxes are never swapped silently: fix the data or "
            f"the box_format (allowed: {', '.join(BOX_FORMATS)}). {int(flipped.sum())} such boxes in all."
        )
    clipped_xyxy = xyxy.copy()
    clipped_xyxy[..., 0::2] = np.clip(xyxy[..., 0::2], 0, w)
    clipped_xyxy[..., 1::2] = np.clip(xyxy[..., 1::2], 0, h)
    was_clipped = real & (np.abs(clipped_xyxy - xyxy) > 0).any(axis=-1)
    x1, y1, x2, y2 = np.moveaxis(clipped_xyxy, -1, 0)
    keep = real & (x2 > x1) & (y2 > y1)
    order = np.argsort(~keep, axis=1, kind="stable")
    keep_sorted = np.take_along_axis(keep, order, axis=1)
    out_boxes = np.take_along_axis(clipped_xyxy, order[..., None], axis=1)
    out_labels = np.take_along_axis(labels, order, axis=1)
    out_boxes = np.where(keep_sorted[..., None], out_boxes, -1.0).astype("float32")
    out_labels = np.where(keep_sorted, out_labels, PAD_LABEL).astype("int32")
    report = {
        "images": int(len(boxes)),
        "boxes": int(keep.sum()),
        "clipped": int((was_clipped & keep).sum()),
        "dropped": int((real & ~keep).sum()),
        "images_without_boxes": int((~keep.any(axis=1)).sum()) if len(boxes) else 0,
        "max_boxes_per_image": int(keep.sum(axis=1).max()) if len(boxes) else 0,
    }
    return out_boxes, out_labels, report, order


def check_boxes(boxes, labels, image_size, box_format="xyxy", *, num_classes=None):
    """Validated detection targets: ``(boxes (N, M, 4) xyxy pixels float32, labels (N, M) int32, report)``.

    ``boxes``: ``(N, M, 4)`` in ``box_format`` (any keras format, see ``BOX_FORMATS``) or per-image lists
    of ``(m_i, 4)`` boxes; ``labels``: ``(N, M)`` ints (or per-image lists), -1 marks padding rows;
    ``image_size``: ``(height, width)``. A NaN/inf in a real box, ``x2 < x1`` or ``y2 < y1`` and labels
    outside ``[0, num_classes)`` (``>= 0`` when ``num_classes`` is None) raise ``ValueError`` naming the
    image and row. Boxes partly outside the image are clipped to it; boxes with no area left inside it
    are dropped. Each image's kept rows come first, padding rows are label -1 / box -1. ``report``:
    counts of ``images``, kept ``boxes``, ``clipped``, ``dropped``, ``images_without_boxes`` and
    ``max_boxes_per_image``.
    """
    out_boxes, out_labels, report, _ = _check_boxes(boxes, labels, image_size, box_format, num_classes)
    return out_boxes, out_labels, report


# ----------------------------------------------------------------------------------------- augmentation


class DetectionAugmenter:
    """Batch augmentation of ``(images [0, 1], targets)`` with keras' box-aware layers (see the module
    docstring); a callable for ``dataset.map``. ``targets`` may carry ``"masks"`` ``(B, M, H, W)``: they are
    transformed with the same random parameters and give the exact boxes after augmentation."""

    def __init__(self, name, *, seed=0):
        import keras

        if name not in DETECTION_AUGMENTS:
            close = difflib.get_close_matches(str(name), DETECTION_AUGMENTS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown detection augmentation {name!r}.{hint} Allowed: None, "
                f"{', '.join(repr(a) for a in DETECTION_AUGMENTS)}."
            )
        self.name = name
        self.seed = int(seed)
        fmt = {"bounding_box_format": "xyxy"}
        layers = [keras.layers.RandomFlip("horizontal", seed=self.seed, name="flip", **fmt)]
        if name == "standard":
            layers += [
                keras.layers.RandomZoom((-0.25, 0.25), fill_mode="constant", fill_value=0.0,
                                        seed=self.seed + 1, name="scale_jitter", **fmt),
                keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=0.0,
                                               seed=self.seed + 2, name="translation", **fmt),
                keras.layers.RandomBrightness(0.1, value_range=(0.0, 1.0), seed=self.seed + 3,
                                              name="brightness", **fmt),
                keras.layers.RandomContrast(0.2, value_range=(0.0, 1.0), seed=self.seed + 4,
                                            name="contrast", **fmt),
            ]
        self.layers = layers

    def __repr__(self):
        return f"DetectionAugmenter({self.name!r}, seed={self.seed})"

    def __call__(self, images, targets):
        import tensorflow as tf

        labels_in = tf.cast(targets["labels"], tf.int32)
        data = {
            "images": tf.cast(images, tf.float32),
            "bounding_boxes": {"boxes": tf.cast(targets["boxes"], tf.float32),
                               "labels": tf.cast(labels_in, tf.float32)},
        }
        has_masks = "masks" in targets
        if has_masks:
            data["segmentation_masks"] = tf.transpose(tf.cast(targets["masks"], tf.float32), (0, 2, 3, 1))
        for layer in self.layers:
            data = layer(data, training=True)
        images = tf.clip_by_value(data["images"], 0.0, 1.0)
        h, w = int(images.shape[1]), int(images.shape[2])
        boxes = data["bounding_boxes"]["boxes"]
        keras_labels = tf.cast(tf.round(data["bounding_boxes"]["labels"]), tf.int32)
        keep = (labels_in >= 0) & (keras_labels >= 0)
        masks = None
        if has_masks:
            masks = tf.transpose(tf.cast(data["segmentation_masks"] > 0.5, tf.uint8), (0, 3, 1, 2))
            boxes, nonempty = tight_boxes(masks)
            keep &= nonempty
        boxes = clip_boxes(boxes, h, w)
        keep &= boxes[..., 2] - boxes[..., 0] >= MIN_BOX_SIZE
        keep &= boxes[..., 3] - boxes[..., 1] >= MIN_BOX_SIZE
        out = pack_rows(boxes, labels_in, keep, masks)
        return images, out


def tight_boxes(masks):
    """``(boxes (B, M, 4) xyxy, nonempty (B, M))`` of ``(B, M, H, W)`` masks (exclusive right/bottom)."""
    import tensorflow as tf

    m = tf.cast(masks, tf.bool)
    h, w = tf.shape(m)[2], tf.shape(m)[3]
    rows, cols = tf.reduce_any(m, axis=3), tf.reduce_any(m, axis=2)
    rows_i, cols_i = tf.cast(rows, tf.int32), tf.cast(cols, tf.int32)
    y1 = tf.argmax(rows_i, axis=-1, output_type=tf.int32)
    y2 = h - tf.argmax(tf.reverse(rows_i, [-1]), axis=-1, output_type=tf.int32)
    x1 = tf.argmax(cols_i, axis=-1, output_type=tf.int32)
    x2 = w - tf.argmax(tf.reverse(cols_i, [-1]), axis=-1, output_type=tf.int32)
    boxes = tf.cast(tf.stack([x1, y1, x2, y2], axis=-1), tf.float32)
    return boxes, tf.reduce_any(rows, axis=-1)


def clip_boxes(boxes, height, width):
    """xyxy boxes clipped to ``[0, width] × [0, height]``."""
    import tensorflow as tf

    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    w, h = float(width), float(height)
    return tf.stack([tf.clip_by_value(x1, 0.0, w), tf.clip_by_value(y1, 0.0, h),
                     tf.clip_by_value(x2, 0.0, w), tf.clip_by_value(y2, 0.0, h)], axis=-1)


def pack_rows(boxes, labels, keep, masks=None):
    """Targets with the rows not in ``keep`` made padding (label -1, box -1, mask 0), kept rows first."""
    import tensorflow as tf

    order = tf.argsort(tf.cast(~keep, tf.int32), axis=1, stable=True)
    keep = tf.gather(keep, order, batch_dims=1)
    boxes = tf.where(keep[..., None], tf.gather(boxes, order, batch_dims=1), -1.0)
    labels = tf.where(keep, tf.gather(labels, order, batch_dims=1), PAD_LABEL)
    out = {"boxes": boxes, "labels": labels}
    if masks is not None:
        masks = tf.gather(masks, order, batch_dims=1) * tf.cast(keep, masks.dtype)[..., None, None]
        out["masks"] = masks
    return out


def make_detection_augmenter(augment, *, seed=0):
    """``None`` → None; ``"flip"`` / ``"standard"`` → a :class:`DetectionAugmenter`; else ``ValueError``."""
    if augment is None or isinstance(augment, DetectionAugmenter):
        return augment
    if not isinstance(augment, str):
        raise ValueError(
            f"augment must be None or one of {', '.join(repr(a) for a in DETECTION_AUGMENTS)}. "
            f"Received: augment={augment!r}"
        )
    return DetectionAugmenter(augment, seed=seed)


# ----------------------------------------------------------------------------------------------- loading


def _as_uint8_images(x):
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"Detection images must have shape (N, H, W, 3). Received: shape={x.shape}")
    if x.dtype == np.uint8:
        return x
    x = x.astype("float32")
    if x.size and not np.isfinite(x).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        what = "NaN" if np.isnan(x[idx]) else "Inf"
        raise ValueError(f"Detection images contain {what} at index {idx} (image {idx[0]}): clean or drop those images.")
    if x.size and (x.min() < 0 or x.max() > 1.0):
        raise ValueError(
            "Detection images must be uint8 0..255 or floats in [0, 1]. "
            f"Received range [{x.min()}, {x.max()}]"
        )
    return np.clip(np.round(x * 255.0), 0, 255).astype("uint8")


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        allowed = "a positive integer" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}. Received: {name}={value!r}")
    return int(value)


def load_detection(
    source="shapes",
    *,
    image_size=None,
    batch_size=16,
    val_split=0.1,
    test_split=0.2,
    seed=0,
    augment=None,
    max_boxes=None,
    with_masks=False,
    num_classes=None,
    box_format="xyxy",
    class_names=None,
) -> DetectionData:
    """Train/val/test detection pipelines of ``source`` (``DETECTION_SOURCES``) with a seeded split.

    ``image_size``: ``(height, width)`` of generated ``shapes`` images (default 128×128; a ``size=S``
    option in the source string wins); array sources keep their size (a different ``image_size``
    raises: resize the images and boxes first). ``max_boxes``: rows per image ``M`` (default: the
    source's, i.e. ``max_objects`` for shapes); fewer than an image's boxes raises. ``num_classes``:
    shapes uses the first ``num_classes`` of ``SHAPE_CLASSES``; arrays check labels against it
    (default ``max label + 1``). ``box_format``/``class_names``: of array sources. ``augment``: None,
    ``"flip"`` or ``"standard"`` (training split only). ``with_masks``: targets carry ``"masks"``
    ``(B, M, H, W)`` uint8 (shapes always can; arrays need ``targets["masks"]``).
    """
    import tensorflow as tf

    kind, opts = parse_detection_source(source)
    batch_size = _positive_int("batch_size", batch_size)
    max_boxes = _positive_int("max_boxes", max_boxes, allow_none=True)
    num_classes = _positive_int("num_classes", num_classes, allow_none=True)
    augmenter = make_detection_augmenter(augment, seed=seed)
    if image_size is not None:
        image_size = _check_image_size(image_size)
    split_indices(np.zeros(1), val_split, test_split, seed)  # validates the fractions before any work

    masks = None
    if kind == "shapes":
        if num_classes is not None and num_classes > len(SHAPE_CLASSES):
            raise ValueError(
                f"shapes has {len(SHAPE_CLASSES)} classes ({', '.join(SHAPE_CLASSES)}). "
                f"Received: num_classes={num_classes}"
            )
        size = (opts["size"], opts["size"]) if "size" in opts else tuple(image_size or (128, 128))
        _check_shapes_memory(opts.get("count", SHAPES_DEFAULT_COUNT), size, opts.get("max_objects", 6), with_masks, source)
        d = make_shapes(
            opts.get("count", SHAPES_DEFAULT_COUNT),
            image_size=size,
            seed=seed,
            max_objects=opts.get("max_objects", 6),
            classes=SHAPE_CLASSES[: num_classes or len(SHAPE_CLASSES)],
            with_masks=with_masks,
        )
        images, names = d["images"], d["class_names"]
        boxes, labels, report, order = _check_boxes(d["boxes"], d["labels"], size, "xyxy", len(names))
        masks = d.get("masks")
        name = source
    else:
        images = _as_uint8_images(source[0])
        targets = source[1]
        size = images.shape[1:3]
        if image_size is not None and tuple(image_size) != tuple(size):
            raise ValueError(
                f"Array images are {size[0]}x{size[1]} but image_size={tuple(image_size)}: resize the images "
                "and scale their boxes first (or leave image_size=None)."
            )
        labels_raw = targets["labels"]
        if num_classes is None:
            flat = np.concatenate([np.asarray(la).reshape(-1) for la in labels_raw] or [np.zeros(0)])
            num_classes = int(flat.max()) + 1 if flat.size and flat.max() >= 0 else 1
        boxes, labels, report, order = _check_boxes(
            targets["boxes"], labels_raw, tuple(size), box_format, num_classes
        )
        if len(boxes) != len(images):
            raise ValueError(f"Images and boxes differ in length: {len(images)} vs {len(boxes)} images.")
        if report["boxes"] == 0:  # every row padding, or every box outside its image: nothing to learn
            why = (f"all {report['dropped']} boxes lie outside their images (or have no area) at {size[0]}x{size[1]}; "
                   "boxes are xyxy pixels of the image as given" if report["dropped"] else "every label is -1 (padding)")
            raise ValueError(f"The array source has no box to learn from: {why}. A detector needs at least one box.")
        if with_masks:
            if "masks" not in targets:
                raise ValueError(
                    "with_masks=True needs targets['masks'] of shape (N, M, H, W) in the array source."
                )
            masks = np.asarray(targets["masks"])
            expected = (len(images), np.asarray(targets["boxes"]).shape[1], *size)
            if masks.shape != expected:
                raise ValueError(
                    f"targets['masks'] must have shape (N, M, H, W) = {expected}. "
                    f"Received: shape={masks.shape}"
                )
        if class_names is not None:
            names = [str(c) for c in class_names]
            if len(names) != num_classes:
                raise ValueError(f"class_names has {len(names)} names for num_classes={num_classes}.")
        else:
            names = [str(i) for i in range(num_classes)]
        name = "arrays"
    if masks is not None:
        masks = (np.take_along_axis(masks, order[..., None, None], axis=1) > 0).astype("uint8")
        masks *= (labels >= 0)[..., None, None].astype("uint8")
        masks = masks if with_masks else None

    # rows per image
    need = max(report["max_boxes_per_image"], 1)
    m = max_boxes if max_boxes is not None else max(boxes.shape[1], 1)
    if m < need:
        raise ValueError(
            f"max_boxes={m} is less than the {need} boxes of the fullest image. Use max_boxes >= {need}."
        )
    if m != boxes.shape[1]:
        keep = min(m, boxes.shape[1])
        pad = m - keep
        boxes = np.concatenate([boxes[:, :keep], -np.ones((len(boxes), pad, 4), "float32")], axis=1)
        labels = np.concatenate([labels[:, :keep], np.full((len(labels), pad), PAD_LABEL, "int32")], axis=1)
        if masks is not None:
            empty = np.zeros((len(masks), pad, *masks.shape[2:]), "uint8")
            masks = np.concatenate([masks[:, :keep], empty], axis=1)

    tr, va, te = split_indices(np.zeros(len(images)), val_split, test_split, seed)

    def part(idx, training):
        targets = {"boxes": boxes[idx], "labels": labels[idx]}
        if masks is not None:
            targets["masks"] = masks[idx]
        ds = tf.data.Dataset.from_tensor_slices((images[idx], targets)).cache()
        if training:
            ds = ds.shuffle(max(len(idx), 1), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if training and augmenter is not None:
            # sequential: the layers' seed generators advance once per batch in order, so a seed gives
            # the same augmented stream on every run
            ds = ds.map(augmenter)
        return ds.prefetch(tf.data.AUTOTUNE)

    test_arrays = {"images": images[te].astype("float32") / 255.0, "boxes": boxes[te], "labels": labels[te]}
    if masks is not None:
        test_arrays["masks"] = masks[te]
    return DetectionData(
        train=part(tr, True),
        val=part(va, False),
        test=part(te, False),
        class_names=list(names),
        num_classes=len(names),
        counts={"train": len(tr), "val": len(va), "test": len(te)},
        input_shape=(int(size[0]), int(size[1]), 3),
        max_boxes=int(m),
        test_arrays=test_arrays,
        source=name,
        box_report=report,
    )


def _to_float(images, targets):
    import tensorflow as tf

    return tf.cast(images, tf.float32) * (1.0 / 255.0), targets
