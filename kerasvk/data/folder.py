"""Image folders (one subfolder per class) through ``keras.utils.image_dataset_from_directory``.

Files are checked before anything is decoded in the pipeline, so a missing folder, an empty one or
an unreadable image gives one clear error naming the path instead of a failure mid-epoch.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def scan_folder(path) -> tuple[list[Path], list[str]]:
    """Validate ``path`` and return (image files, class names). Raises FileNotFoundError/ValueError."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"Image folder not found: {root}. Expected one subfolder per class.")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder. Expected a folder with one subfolder per class.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ValueError(
            f"Image folder {root} has {len(classes)} class subfolder(s); at least 2 are needed "
            "(layout: ROOT/CLASS_NAME/IMAGE.png)."
        )
    files = []
    for c in classes:
        found = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not found:
            raise ValueError(f"Class folder {root / c} has no images (allowed: {', '.join(IMAGE_EXTENSIONS)}).")
        files.extend(found)
    from PIL import Image

    for f in files:
        try:
            with Image.open(f) as im:
                im.verify()
        except Exception as e:
            raise ValueError(f"Unreadable image {f}: {type(e).__name__}: {e}") from None
    return files, classes


def folder_dataset(path, image_size=(32, 32), channels=3):
    """Unbatched ``(uint8 image, int label)`` dataset of a class-per-subfolder tree.

    Returns ``(dataset, labels, class_names)``; ``labels`` (NumPy, in dataset order) lets the caller
    make a stratified split without decoding any image.
    """
    import tensorflow as tf
    import keras

    _, classes = scan_folder(path)
    color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    if color_mode is None:
        raise ValueError(f"channels must be 1, 3 or 4 for image folders. Received: channels={channels!r}")
    ds = keras.utils.image_dataset_from_directory(
        str(path),
        labels="inferred",
        label_mode="int",
        class_names=classes,
        color_mode=color_mode,
        batch_size=None,
        image_size=tuple(image_size),
        shuffle=False,
        verbose=False,
    )
    import numpy as np

    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[Path(p).relative_to(path).parts[0]] for p in ds.file_paths], dtype="int32")
    ds = ds.map(
        lambda x, y: (tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8), tf.cast(y, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds, labels, classes
