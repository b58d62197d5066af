"""Matplotlib figures for run folders: training curves, confusion matrix, prediction and sample grids.

Every function writes a PNG atomically (through ``kerasvk.io``: temporary file, then rename) and
returns its path. The Agg backend is used so nothing needs a display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasvk.io import save_figure as _save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=110) -> Path:
    """Save ``fig`` to ``path`` atomically and close it (``kerasvk.io.save_figure``, Agg backend)."""
    _plt()
    return _save_figure(fig, path, dpi=dpi)


def _show(ax, img):
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img, 0.0, 1.0)
    if img.ndim == 3 and img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255 if img.dtype == np.uint8 else 1)
    else:
        ax.imshow(img)
    ax.set_xticks([])
    ax.set_yticks([])


def history_curves(history: dict, path, title=None) -> Path:
    """Loss and accuracy (and any other metric) per epoch, train vs validation."""
    plt = _plt()
    metrics = [k for k in history if not k.startswith("val_") and k not in ("learning_rate", "lr")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        epochs = np.arange(1, len(history[m]) + 1)
        ax.plot(epochs, history[m], label="train")
        if f"val_{m}" in history:
            ax.plot(epochs, history[f"val_{m}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(m)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def confusion_matrix(cm, class_names, path, normalize=False, title="Confusion matrix") -> Path:
    """Heat map of a confusion matrix (rows: true class, columns: predicted class)."""
    plt = _plt()
    cm = np.asarray(cm)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    im = ax.imshow(shown, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    thresh = shown.max() / 2 if shown.size else 0
    for i in range(k):
        for j in range(k):
            txt = f"{shown[i, j]:.2f}" if normalize else str(int(cm[i, j]))
            ax.text(j, i, txt, ha="center", va="center", fontsize=7, color="white" if shown[i, j] > thresh else "black")
    ax.set_title(title)
    return save_figure(fig, path)


def prediction_grid(images, y_true, probs, class_names, path, max_images=32, cols=8) -> Path:
    """Test images titled ``true → predicted (confidence)``; wrong predictions in red."""
    plt = _plt()
    n = min(len(images), max_images)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    pred = np.argmax(probs, axis=-1)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        _show(ax, images[i])
        ok = pred[i] == y_true[i]
        ax.set_title(
            f"{class_names[y_true[i]]}→{class_names[pred[i]]} ({probs[i, pred[i]]:.2f})",
            fontsize=7,
            color="black" if ok else "red",
        )
    return save_figure(fig, path)


def image_grid(images, path, titles=None, cols=8, title=None, cell=1.4) -> Path:
    """A grid of images (uint8 0..255 or float [0, 1]; grey or RGB), optionally titled."""
    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    cols = min(cols, n) or 1
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols, cell * rows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        _show(ax, images[i])
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def augmentation_grid(grid, row_labels, path, title=None) -> Path:
    """``grid`` ``(rows, 1 + variants, H, W, C)`` in [0, 1]: originals in the first column, variants after."""
    plt = _plt()
    grid = np.asarray(grid)
    rows, cols = grid.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows), squeeze=False)
    gray = grid.shape[-1] == 1
    for i in range(rows):
        for j in range(cols):
            ax = axes[i, j]
            img = np.clip(grid[i, j], 0, 1)
            ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if j == 0 else f"aug {j}", fontsize=8)
        axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
