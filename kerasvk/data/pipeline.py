"""Split and pipeline: the one place raw examples become batched, augmented, prefetched datasets.

Order (DESIGN "data path"): split (seeded, stratified) → cache → shuffle (train only) → batch →
augment (train only, whole batches, AUTOTUNE) → scale uint8 → float32 [0, 1] → prefetch.
Images stay uint8 until the last step: it is four times less memory to cache and move.

``image_dtype="uint8"`` (the uint8 input path) skips the last scaling: batches leave ``tf.data`` and
cross to the device as uint8 (augmented batches rounded to uint8), and the model's train step scales
them there (``kerasvk.training.device_input``) with the same ``cast · 1/255`` — a quarter of the bytes
to produce, copy and transfer. In-memory arrays (a ``(images, labels)`` pair instead of a dataset) are
shuffled as indices and gathered a batch at a time: the same batches as the per-example pipeline
(the same seeded shuffle of positions), without a per-example step.
"""

from __future__ import annotations

import numpy as np


def split_indices(labels, val_split=0.1, test_split=0.2, seed=0):
    """Stratified, seeded split of ``range(len(labels))`` into (train, val, test) index arrays.

    Stable: the same labels, fractions and seed always give the same indices, whatever the machine.
    """
    labels = np.asarray(labels)
    for nm, v in (("val_split", val_split), ("test_split", test_split)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{nm} must be in [0, 1). Received: {nm}={v!r}")
    if val_split + test_split >= 1.0:
        raise ValueError(
            f"val_split + test_split must be < 1 to leave training data. Received: {val_split} + {test_split}"
        )
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_split))
        n_val = int(round(len(idx) * val_split))
        test.extend(idx[:n_test])
        val.extend(idx[n_test : n_test + n_val])
        train.extend(idx[n_test + n_val :])
    return tuple(np.sort(np.asarray(s, dtype="int64")) for s in (train, val, test))


def to_float(images, labels, num_classes=None):
    """Last pipeline step: uint8 (or float 0..255) images → float32 in [0, 1]; optional one-hot labels."""
    import tensorflow as tf

    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) * (1.0 / 255.0)
    if num_classes is not None and labels.dtype.is_integer:
        labels = tf.one_hot(labels, num_classes)
    return images, labels


IMAGE_DTYPES = ("float32", "uint8")


def to_uint8(images, labels):
    """Last step of the uint8 path: uint8 kept; float images in [0, 1] (a custom augment's) rounded to 0..255."""
    import tensorflow as tf

    if images.dtype != tf.uint8:
        images = tf.cast(tf.clip_by_value(tf.floor(tf.cast(images, tf.float32) * 255.0 + 0.5), 0.0, 255.0), tf.uint8)
    return images, labels


def resolve_augment(augment, *, num_classes=None, seed=0):
    """``augment`` as a batch function: None, a config string/dict or ``Augmenter`` (through
    ``make_augmenter``; a config that augments nothing gives None), or a callable passed through."""
    if augment is None:
        return None
    from kerasvk.data.augment import AUGMENT_FORMS, Augmenter, make_augmenter

    if isinstance(augment, (str, dict, Augmenter)):
        return make_augmenter(augment, num_classes=num_classes, seed=seed)
    if callable(augment):
        return augment
    raise ValueError(
        f"augment must be None, an augmentation config ({AUGMENT_FORMS}), an Augmenter or a callable "
        f"(images, labels) -> (images, labels). Received: augment={augment!r}"
    )


def make_pipeline(
    ds,
    *,
    batch_size=64,
    training=False,
    seed=0,
    augment=None,
    num_classes=None,
    one_hot=False,
    cache=True,
    shuffle_buffer=None,
    drop_remainder=False,
    image_dtype="float32",
):
    """Turn an unbatched ``(image, label)`` dataset (or an ``(images, labels)`` pair of in-memory arrays)
    into the batched pipeline the models train on.

    ``augment``: applied to whole training batches (never to validation/test data): an augmentation
    config as the CLI takes it (``"standard,rotation=30"``, a dict, an ``Augmenter``; see
    ``kerasvk.data.augment``) or any callable ``(images, labels) -> (images, labels)``. ``one_hot=True``
    one-hot encodes labels with ``num_classes`` before augmentation (CutMix/MixUp configs one-hot integer
    labels themselves when ``num_classes`` is known). ``image_dtype``: ``"float32"`` (images in [0, 1]) or
    ``"uint8"`` (0..255, for a model whose train step scales them; see the module docstring).
    """
    import tensorflow as tf

    augment = resolve_augment(augment, num_classes=num_classes, seed=seed)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    if one_hot and num_classes is None:
        raise ValueError("one_hot=True needs num_classes.")
    if image_dtype not in IMAGE_DTYPES:
        raise ValueError(f"image_dtype must be one of {', '.join(IMAGE_DTYPES)}. Received: image_dtype={image_dtype!r}")
    if isinstance(ds, (tuple, list)):
        ds = _array_batches(ds, batch_size, training, seed, shuffle_buffer, drop_remainder)
    else:
        if cache:
            ds = ds.cache()
        if training:
            n = int(ds.cardinality())
            buffer = shuffle_buffer or (n if n > 0 else 10_000)
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    if one_hot:
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment is not None:
        from kerasvk.data.augment import Augmenter

        if isinstance(augment, Augmenter):  # stateful draws in order, the heavy stage in parallel
            for fn, parallel in augment.stages(image_dtype):
                ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE if parallel else None)
        else:
            ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    if image_dtype == "float32":
        ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    elif training and augment is not None:  # a custom augment may hand out floats in [0, 1]
        ds = ds.map(to_uint8, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _array_batches(arrays, batch_size, training, seed, shuffle_buffer, drop_remainder):
    """Batches of in-memory ``(images, labels)``: positions shuffled (as ``Dataset.shuffle`` shuffles the
    examples themselves: the same seed gives the same order) and gathered one batch at a time."""
    import tensorflow as tf

    if len(arrays) != 2:
        raise ValueError(f"Array data must be a pair (images, labels). Received {len(arrays)} arrays.")
    images, labels = (tf.convert_to_tensor(np.asarray(a)) for a in arrays)
    n = int(images.shape[0])
    if int(labels.shape[0]) != n:
        raise ValueError(f"images and labels differ in length: {n} images, {int(labels.shape[0])} labels.")
    positions = tf.data.Dataset.range(n)
    if training:
        positions = positions.shuffle(shuffle_buffer or max(n, 1), seed=seed, reshuffle_each_iteration=True)
    positions = positions.batch(batch_size, drop_remainder=drop_remainder)
    return positions.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)), num_parallel_calls=tf.data.AUTOTUNE)


def dataset_arrays(dataset):
    """``(images, labels)`` NumPy arrays of a finite batched ``(images, labels)`` dataset, in its order."""
    import numpy as np

    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)
