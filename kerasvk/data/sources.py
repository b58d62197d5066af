"""One entry point for every image source: embedded names, ``folder:PATH``, arrays, ``tfds:NAME``.

``load(source, ...)`` returns an :class:`ImageData` with train/val/test pipelines, class names and the
input shape the model should be built for. ``load_arrays(name, ...)`` returns the raw uint8 arrays of
an embedded dataset (for generative models and recipes that need them whole).

Source strings::

    digits                          scikit-learn's 1,797 8×8 digits (resized; default 32×32×1)
    digits_photo                    the same digits added onto crops of scikit-learn's sample photos (32×32×3)
    patterns[:classes=5,count=N]    seeded texture generator (default 10 classes, 3,000 images, 32×32×3)
    folder:PATH                     one subfolder per class
    tfds:NAME                       a TensorFlow Datasets name (needs tensorflow-datasets and network)

or a tuple ``(x, y)`` of NumPy arrays (uint8 0..255 or float 0..1 images, integer labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kerasvk.data import embedded
from kerasvk.data.pipeline import make_pipeline, split_indices

EMBEDDED = {
    "digits": {"image_size": (32, 32), "channels": 1},
    "digits_photo": {"image_size": (32, 32), "channels": 3},
    "patterns": {"image_size": (32, 32), "channels": 3},
}
SOURCE_FORMS = "digits, digits_photo, patterns[:classes=5|10,count=N], folder:PATH, tfds:NAME, or an (x, y) array tuple"
MAX_COUNT = 1_000_000  # patterns:count=N beyond this is a typo, not a data set
MAX_IMAGE_BYTES = 8 * 2**30  # generated/resized uint8 images held in memory at once


def check_image_memory(count, image_size, channels, source) -> None:
    """``ValueError`` when ``count`` uint8 images of ``image_size`` × ``channels`` would exceed ``MAX_IMAGE_BYTES``
    (a huge count or image size is answered before NumPy tries to allocate it)."""
    h, w = image_size
    need = int(count) * int(h) * int(w) * int(channels)
    if need > MAX_IMAGE_BYTES:
        raise ValueError(
            f"{source} at {h}x{w}x{channels} would hold {int(count):,} images = {need / 2**30:,.1f} GiB in memory; "
            f"at most {MAX_IMAGE_BYTES // 2**30} GiB: use a smaller count or image size."
        )


@dataclass
class ImageData:
    """Train/val/test pipelines of one source, with what a model needs to be built for it."""

    train: object
    val: object
    test: object
    class_names: list
    input_shape: tuple
    source: str
    counts: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def parse_source(source: str) -> tuple[str, dict | str]:
    """``"patterns:classes=5,count=100"`` → ("patterns", {"classes": 5, "count": 100})."""
    if not isinstance(source, str) or not source:
        raise ValueError(f"Unknown data source {source!r}. Allowed: {SOURCE_FORMS}.")
    kind, _, rest = source.partition(":")
    if kind in ("folder", "tfds"):
        if not rest:
            raise ValueError(f"Data source {source!r} needs a value after ':' (e.g. folder:./images).")
        return kind, rest
    if kind not in EMBEDDED:
        import difflib

        close = difflib.get_close_matches(kind, [*EMBEDDED, "folder", "tfds"], n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"Unknown data source {source!r}.{hint} Allowed: {SOURCE_FORMS}.")
    opts = {}
    for item in filter(None, rest.split(",")):
        k, eq, v = item.partition("=")
        if not eq or k not in ("classes", "count"):
            raise ValueError(
                f"Bad option {item!r} in data source {source!r}. Allowed options: classes=5|10, count=N (patterns only)."
            )
        if k in opts:
            raise ValueError(f"Option {k!r} given twice in data source {source!r}.")
        try:
            opts[k] = int(v)
        except ValueError:
            raise ValueError(f"Option {k} must be an integer. Received: {item!r} in {source!r}") from None
        if k == "count" and not 1 <= opts[k] <= MAX_COUNT:
            raise ValueError(f"Option count must be in [1, {MAX_COUNT:,}]. Received: {item!r} in {source!r}")
    if opts and kind != "patterns":
        raise ValueError(f"Data source {kind!r} takes no options. Received: {source!r}")
    return kind, opts


def load_arrays(source="digits", *, image_size=None, channels=None, seed=0):
    """Raw ``(uint8 images, int32 labels, class_names)`` of an embedded source string."""
    kind, opts = parse_source(source)
    if kind not in EMBEDDED:
        raise ValueError(f"load_arrays takes an embedded source ({', '.join(EMBEDDED)}). Received: {source!r}")
    size = tuple(image_size or EMBEDDED[kind]["image_size"])
    ch = channels or EMBEDDED[kind]["channels"]
    check_image_memory(opts.get("count", 3000) if kind == "patterns" else 1797, size,
                       3 if kind == "digits_photo" else ch, source)
    if kind == "digits":
        return embedded.digits(image_size=size, channels=ch)
    if kind == "digits_photo":
        x, y, names = embedded.digits_on_photos(image_size=size, seed=seed)
        return (x if ch == 3 else np.round(x.mean(axis=-1, keepdims=True)).astype("uint8")), y, names
    return embedded.patterns(
        count=opts.get("count", 3000), num_classes=opts.get("classes", 10), image_size=size, channels=ch, seed=seed
    )


def _arrays_to_uint8(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"Image arrays must have shape (N, H, W) or (N, H, W, C). Received: shape={x.shape}")
    if x.dtype == np.uint8:
        return x
    x = x.astype("float32")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(
            f"Image arrays must be uint8 0..255 or floats in [0, 1] or [0, 255]. Received range [{x.min()}, {x.max()}]"
        )
    scale = 255.0 if x.size and x.max() <= 1.0 else 1.0
    return np.clip(np.round(x * scale), 0, 255).astype("uint8")


def load(
    source="digits",
    *,
    image_size=None,
    channels=None,
    batch_size=64,
    val_split=0.1,
    test_split=0.2,
    seed=0,
    augment=None,
    one_hot=False,
    class_names=None,
    train_dtype="float32",
) -> ImageData:
    """Train/val/test ``tf.data`` pipelines of ``source`` with a seeded, stratified, stable split.

    ``train_dtype="uint8"``: the training split hands out uint8 batches (the uint8 input path, see
    ``kerasvk.data.pipeline``); validation and test batches stay float32 in [0, 1].
    """
    import tensorflow as tf

    name = source if isinstance(source, str) else "arrays"
    if isinstance(source, (tuple, list)) and len(source) == 2:
        x, y = _arrays_to_uint8(source[0]), np.asarray(source[1]).astype("int32")
        if len(x) != len(y):
            raise ValueError(f"Images and labels differ in length: {len(x)} vs {len(y)}.")
        if image_size is not None and tuple(image_size) != x.shape[1:3]:
            x = embedded._resize_uint8(x, tuple(image_size))
        if channels is not None:
            x = embedded._to_channels(x, channels)
        names = list(class_names) if class_names is not None else [str(i) for i in range(int(y.max()) + 1)]
        base, labels = None, y
    elif isinstance(source, str):
        kind, opts = parse_source(source)
        if kind in EMBEDDED:
            x, labels, names = load_arrays(source, image_size=image_size, channels=channels, seed=seed)
            base = None
        elif kind == "folder":
            from kerasvk.data.folder import folder_dataset

            size = tuple(image_size or (32, 32))
            base, labels, names = folder_dataset(opts, image_size=size, channels=channels or 3)
            x = None
        else:  # tfds
            return _load_tfds(opts, image_size, channels, batch_size, val_split, test_split, seed, augment, one_hot,
                              train_dtype)
    else:
        raise ValueError(f"Unknown data source {source!r}. Allowed: {SOURCE_FORMS}.")

    tr, va, te = split_indices(labels, val_split, test_split, seed)
    num_classes = len(names)
    kw = dict(batch_size=batch_size, seed=seed, num_classes=num_classes, one_hot=one_hot)
    if base is None:
        parts = [(x[i], labels[i]) for i in (tr, va, te)]  # in-memory: batches gathered by shuffled position
        input_shape = tuple(x.shape[1:])
    else:
        which = np.zeros(len(labels), "int64")
        which[va], which[te] = 1, 2
        which_t = tf.constant(which)
        enum = base.enumerate()
        parts = [
            enum.filter(lambda i, xy, k=k: tf.equal(tf.gather(which_t, i), k)).map(lambda i, xy: xy)
            for k in (0, 1, 2)
        ]
        input_shape = (*(image_size or (32, 32)), channels or 3)
    return ImageData(
        train=make_pipeline(parts[0], training=True, augment=augment, image_dtype=train_dtype, **kw),
        val=make_pipeline(parts[1], **kw),
        test=make_pipeline(parts[2], **kw),
        class_names=list(names),
        input_shape=tuple(int(d) for d in input_shape),
        source=name,
        counts={"train": len(tr), "val": len(va), "test": len(te)},
    )


def _load_tfds(name, image_size, channels, batch_size, val_split, test_split, seed, augment, one_hot, train_dtype="float32"):
    """TensorFlow Datasets source (online users): uses the dataset's own train/test split."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ValueError("Data source tfds:NAME needs tensorflow-datasets (pip install tensorflow-datasets).") from None
    import tensorflow as tf

    try:
        (train, test), info = tfds.load(name, split=["train", "test"], as_supervised=True, with_info=True)
    except Exception as e:
        raise ValueError(f"Cannot load tfds dataset {name!r}: {str(e).splitlines()[0]}") from None
    names = info.features["label"].names
    feat_shape = info.features["image"].shape
    size = tuple(image_size or feat_shape[:2])
    ch = channels or feat_shape[-1]

    def prep(img, lab):
        img = tf.image.resize(img, size) if img.shape[:2] != size else tf.cast(img, tf.float32)
        if ch == 3 and img.shape[-1] == 1:
            img = tf.image.grayscale_to_rgb(img)
        elif ch == 1 and img.shape[-1] == 3:
            img = tf.image.rgb_to_grayscale(img)
        return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8), tf.cast(lab, tf.int32)

    train = train.map(prep, num_parallel_calls=tf.data.AUTOTUNE)
    test = test.map(prep, num_parallel_calls=tf.data.AUTOTUNE)
    n_train = int(info.splits["train"].num_examples)
    n_val = int(n_train * val_split)
    train = train.shuffle(10_000, seed=seed, reshuffle_each_iteration=False)
    val, train = train.take(n_val), train.skip(n_val)
    kw = dict(batch_size=batch_size, seed=seed, num_classes=len(names), one_hot=one_hot)
    return ImageData(
        train=make_pipeline(train, training=True, augment=augment, image_dtype=train_dtype, **kw),
        val=make_pipeline(val, **kw),
        test=make_pipeline(test, **kw),
        class_names=list(names),
        input_shape=(*size, ch),
        source=f"tfds:{name}",
        counts={"train": n_train - n_val, "val": n_val, "test": int(info.splits["test"].num_examples)},
    )
