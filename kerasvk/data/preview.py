"""Augmentation preview: training images next to augmented variants of each (``kerasvk augment-preview``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasvk.data.augment import Augmenter, describe
from kerasvk.data.pipeline import split_indices
from kerasvk.data.sources import load_arrays


def save_preview(
    source="digits",
    spec="standard",
    path="augment_preview.png",
    *,
    samples=8,
    variants=5,
    seed=0,
    image_size=None,
    channels=None,
) -> Path:
    """A PNG grid: each row one training image, first column the original, then augmented variants."""
    from kerasvk import plots

    if not isinstance(samples, int) or samples < 1 or not isinstance(variants, int) or variants < 1:
        raise ValueError(
            f"samples and variants must be positive integers. Received: {samples!r}, {variants!r}"
        )
    aug = Augmenter(spec, seed=seed)
    x, y, names = load_arrays(source, image_size=image_size, channels=channels, seed=seed)
    train_idx = split_indices(y, seed=seed)[0][:samples]
    base = x[train_idx]
    labels = np.asarray(y[train_idx], "int32")
    if aug.needs_one_hot:
        labels = np.eye(len(names), dtype="float32")[labels]
    rows = [base.astype("float32") / 255.0]
    for _ in range(variants):
        imgs, _ = aug(base, labels)
        rows.append(np.asarray(imgs, "float32") if aug.active else base.astype("float32") / 255.0)
    grid = np.stack(rows, axis=1)  # (samples, 1 + variants, H, W, C)
    row_labels = [str(names[int(c)]) for c in y[train_idx]]
    return plots.augmentation_grid(grid, row_labels, path, title=f"{source} · augment {describe(aug.config)}")
