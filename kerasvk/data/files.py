"""Image files from disk as model inputs (``kerasvk predict``): decode, convert channels, resize, scale.

The conversion is the one ``folder:PATH`` training data goes through
(``keras.utils.image_dataset_from_directory``: ``tf.io.decode_image``, bilinear ``tf.image.resize``
without antialiasing, rounded to uint8 as ``data/folder.py`` keeps them), followed by the pipeline's
``/ 255`` to [0, 1], so an image predicted
from its file gets the same pixels it would have had as training data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def read_images(paths, image_size, channels) -> np.ndarray:
    """``(n, H, W, channels)`` float32 images in [0, 1] from image files (PNG/JPEG/BMP/GIF).

    A missing file raises ``FileNotFoundError``, an undecodable one ``ValueError``, each naming the file.
    """
    import tensorflow as tf

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("No image files given (PNG, JPEG, BMP or GIF).")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels!r}")
    h, w = (int(image_size[0]), int(image_size[1]))
    out = []
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"Image file not found: {p}")
        try:
            img = tf.io.decode_image(tf.io.read_file(str(p)), channels=channels, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
            raise ValueError(
                f"Cannot decode {p} as an image (allowed: {', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})."
            ) from None
        img = tf.image.resize(tf.cast(img, tf.float32), (h, w), method="bilinear", antialias=False)
        out.append(np.clip(np.round(img.numpy()), 0, 255).astype("uint8"))  # as data/folder.py stores them
    return np.stack(out).astype("float32") / 255.0
