"""Predictions from an exported SavedModel (``kerasvk predict saved_models/NAME/VERSION FILES...``).

Only the export is used (no Keras, no run folder): image files are decoded and resized to the
``serving_default`` input's shape and dtype, and the top-k classes are read off its outputs.
"""

from __future__ import annotations

import numpy as np


def serving_input(fn):
    """``(name, TensorSpec)`` of a one-input signature's input (ValueError for any other signature)."""
    specs = fn.structured_input_signature[1]
    if len(specs) != 1:
        raise ValueError(f"predict needs an image signature with one input; this one takes {sorted(specs)}.")
    return next(iter(specs.items()))


def predict_exported(path, files, top_k=3) -> list[str]:
    """One line per image file: ``FILE: class p, class p, ...`` from the export's ``serving_default``."""
    import tensorflow as tf

    from kerasvk.data.files import read_images
    from kerasvk.export.saved_model import load_exported
    from kerasvk.training.tasks import format_top_k

    if not files:
        raise ValueError("kerasvk predict on an export needs image files: kerasvk predict BASE/NAME/VERSION a.jpg ...")
    loaded = load_exported(path)
    fn = loaded.signatures["serving_default"]
    name, spec = serving_input(fn)
    shape = spec.shape
    if shape.rank != 4 or shape[1] is None or shape[2] is None or shape[3] not in (1, 3):
        raise ValueError(f"{path}: serving_default takes {shape}, not a batch of images with a fixed size.")
    images = read_images(files, (shape[1], shape[2]), shape[3])
    x = tf.constant(np.round(images * 255).astype("uint8")) if spec.dtype == tf.uint8 else tf.constant(images, spec.dtype)
    out = fn(**{name: x})
    if "probabilities" not in out:
        raise ValueError(f"{path}: serving_default has no 'probabilities' output (outputs: {sorted(out)}).")
    probs = out["probabilities"].numpy()
    names = [str(i) for i in range(probs.shape[-1])]
    if "class_names" in out:
        names = [n.decode() for n in out["class_names"].numpy()[0]]
    elif "class_name" in out:  # the argmax's name: at least the top-1 is named
        for cid, cname in zip(out["class_id"].numpy(), out["class_name"].numpy()):
            names[int(cid)] = cname.decode()
    return format_top_k(files, probs, names, top_k)
