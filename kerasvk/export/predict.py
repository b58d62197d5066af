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
    """One line per image file: ``FILE: class p, class p, ...`` from the export's classifier signature.

    The file bytes go to ``serving_bytes`` (decoded and resized in the exported graph) when the export
    has it, else the images are decoded here and sent to ``serving_default``.
    """
    import tensorflow as tf

    from kerasvk.data.files import read_images
    from kerasvk.export.saved_model import load_exported

    if not files:
        raise ValueError("kerasvk predict on an export needs image files: kerasvk predict BASE/NAME/VERSION a.jpg ...")
    loaded = load_exported(path)
    if "serving_bytes" in loaded.signatures:
        from pathlib import Path

        for f in files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"Image file not found: {f}")
        read_images(files, (8, 8), 3)  # the same clear error for an undecodable file as from a run
        out = loaded.signatures["serving_bytes"](image_bytes=tf.constant([Path(f).read_bytes() for f in files]))
    else:
        fn = loaded.signatures["serving_default"]
        name, spec = serving_input(fn)
        shape = spec.shape
        if shape.rank != 4 or shape[1] is None or shape[2] is None or shape[3] not in (1, 3):
            raise ValueError(f"{path}: serving_default takes {shape}, not a batch of images with a fixed size.")
        images = read_images(files, (shape[1], shape[2]), shape[3])
        out = fn(**{name: tf.constant(images, spec.dtype)})
    if "probabilities" not in out:
        raise ValueError(f"{path}: its signature has no 'probabilities' output (outputs: {sorted(out)}); not a classifier.")
    k = min(int(top_k), int(out["probabilities"].shape[-1]))
    if "top_k_scores" in out and k <= out["top_k_scores"].shape[-1]:
        scores = out["top_k_scores"].numpy()[:, :k]
        names = out["top_k_classes"].numpy()[:, :k] if "top_k_classes" in out else out["top_k_ids"].numpy()[:, :k]
        names = [[n.decode() if isinstance(n, bytes) else str(n) for n in row] for row in names]
    else:  # more classes asked than the signature ranks: rank the probabilities here (classes by id)
        probs = out["probabilities"].numpy()
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        scores = np.take_along_axis(probs, order, axis=-1)
        names = [[str(i) for i in row] for row in order]
    return [f"{f}: " + ", ".join(f"{n} {p:.4f}" for n, p in zip(row_n, row_p)) for f, row_n, row_p in zip(files, names, scores)]
