"""Matplotlib figures for run folders: training curves, confusion matrix, prediction and sample grids,
detections and instance masks.

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


# ------------------------------------------------------------------------------------------ detection
def _class_colors(num_classes):
    """One RGB colour per class (tab10, tab20, then evenly spaced hues)."""
    plt = _plt()
    if num_classes <= 10:
        cmap = plt.get_cmap("tab10")
        return [tuple(cmap(i)[:3]) for i in range(num_classes)]
    if num_classes <= 20:
        cmap = plt.get_cmap("tab20")
        return [tuple(cmap(i)[:3]) for i in range(num_classes)]
    cmap = plt.get_cmap("hsv")
    return [tuple(cmap(i / num_classes)[:3]) for i in range(num_classes)]


def _check_detection_plot(images, detections, class_names, ground_truth, max_images, cols, score_threshold,
                          need_masks=False):
    """Validated ``(images, detections, ground_truth)`` as numpy arrays (a ``ValueError`` for user errors)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch (N, H, W, 1 or 3), uint8 or float in [0, 1]. "
                         f"Received: shape={images.shape}")
    if not class_names or isinstance(class_names, str):
        raise ValueError(f"class_names must be a non-empty list of names. Received: class_names={class_names!r}")
    for key, v in (("max_images", max_images), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{key} must be an integer >= 1. Received: {key}={v!r}")
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float)) or not 0 <= score_threshold <= 1:
        raise ValueError(f"score_threshold must be a number in [0, 1]. Received: score_threshold={score_threshold!r}")
    keys = ("boxes", "scores", "classes", "num_detections") + (("masks",) if need_masks else ())
    if not isinstance(detections, dict) or any(k not in detections for k in keys):
        got = sorted(detections) if isinstance(detections, dict) else type(detections).__name__
        raise ValueError(f"detections must be a dict with {', '.join(keys)} (what Detector.detect returns"
                         f"{'; masks (N, K, H, W) for mask_grid' if need_masks else ''}). Received: {got}")
    det = {k: np.asarray(detections[k]) for k in keys}
    n, k = len(images), det["scores"].shape[1] if det["scores"].ndim == 2 else -1
    if (det["boxes"].shape != (n, k, 4) or det["classes"].shape != (n, k) or det["num_detections"].shape != (n,)
            or (need_masks and (det["masks"].ndim != 4 or det["masks"].shape[:2] != (n, k)))):
        raise ValueError(f"detections must have boxes (N, K, 4), scores and classes (N, K), num_detections (N,)"
                         f"{' and masks (N, K, H, W)' if need_masks else ''} for the N={n} images. Received: "
                         + ", ".join(f"{key}.shape={v.shape}" for key, v in det.items()))
    gt = None
    if ground_truth is not None:
        if not isinstance(ground_truth, dict) or "boxes" not in ground_truth or "labels" not in ground_truth:
            raise ValueError("ground_truth must be a dict with boxes (N, M, 4) xyxy pixels and labels (N, M) "
                             "(-1 for padding). Received: "
                             f"{sorted(ground_truth) if isinstance(ground_truth, dict) else type(ground_truth).__name__}")
        gt = {"boxes": np.asarray(ground_truth["boxes"]), "labels": np.asarray(ground_truth["labels"])}
        if gt["labels"].ndim != 2 or len(gt["labels"]) != n or gt["boxes"].shape != (*gt["labels"].shape, 4):
            raise ValueError(f"ground_truth must have boxes (N, M, 4) and labels (N, M) for the N={n} images. "
                             f"Received: boxes.shape={gt['boxes'].shape}, labels.shape={gt['labels'].shape}")
    for what, cls in (("detection classes", det["classes"]), ("ground-truth labels", None if gt is None else gt["labels"])):
        if cls is not None and cls.size and int(cls.max()) >= len(class_names):
            raise ValueError(f"{what} must be class indices < len(class_names) = {len(class_names)}. "
                             f"Received: {int(cls.max())}")
    return images, det, gt


def _kept(det, i, score_threshold):
    """Indices of image ``i``'s detections with score >= ``score_threshold`` (rows past num_detections dropped)."""
    n = int(det["num_detections"][i])
    return [j for j in range(min(n, det["scores"].shape[1])) if det["scores"][i, j] >= score_threshold]


def _box(ax, box, color, dashed=False, lw=1.6):
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=lw,
                           linestyle=(0, (3, 2)) if dashed else "-"))


def _label(ax, box, text, color):
    ax.text(float(box[0]), float(box[1]), text, fontsize=6, color="white", va="bottom", ha="left", clip_on=True,
            bbox={"facecolor": color, "edgecolor": "none", "pad": 1.0, "alpha": 0.85})


def _detection_figure(images, det, gt, class_names, max_images, cols, score_threshold, title, draw_masks, alpha):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _plt()
    colors = _class_colors(len(class_names))
    n = min(len(images), max_images)
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    height = 2.3 * rows + 0.8
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, height), squeeze=False)
    fig.subplots_adjust(bottom=0.45 / height, top=1 - 0.5 / height, hspace=0.25)
    used = set()
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        h, w = images[i].shape[:2]
        _show(ax, images[i])
        ax.images[0].set_extent((0, w, h, 0))  # pixel j spans [j, j + 1), as box coordinates do
        kept = sorted(_kept(det, i, score_threshold), key=lambda j: det["scores"][i, j])
        if draw_masks and kept:
            masks = det["masks"][i]
            mh, mw = masks.shape[1:]
            overlay = np.zeros((mh, mw, 4), "float32")
            xs, ys = (np.arange(mw) + 0.5) * w / mw, (np.arange(mh) + 0.5) * h / mh
            for j in kept:  # ascending score: the most confident mask ends on top
                m = masks[j] >= 0.5 if np.issubdtype(masks.dtype, np.floating) else masks[j] != 0
                c = colors[int(det["classes"][i, j])]
                overlay[m] = (*c, alpha)
                if m.any() and not m.all():
                    ax.contour(xs, ys, m.astype("float32"), levels=[0.5], colors=[c], linewidths=0.8)
            ax.imshow(overlay, extent=(0, w, h, 0), interpolation="nearest")
        num_gt = 0
        if gt is not None:
            for j in np.nonzero(gt["labels"][i] >= 0)[0]:
                c = int(gt["labels"][i, j])
                _box(ax, gt["boxes"][i, j], colors[c], dashed=True, lw=1.0)
                used.add(c)
                num_gt += 1
        for j in kept:
            c = int(det["classes"][i, j])
            _box(ax, det["boxes"][i, j], colors[c])
            _label(ax, det["boxes"][i, j], f"{class_names[c]} {float(det['scores'][i, j]):.2f}", colors[c])
            used.add(c)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_title(f"#{i}: {len(kept)} detected" + (f", {num_gt} true" if gt is not None else ""), fontsize=7)
    handles = [Patch(facecolor=colors[c], label=str(class_names[c])) for c in sorted(used)]
    if gt is not None:
        handles.append(Line2D([], [], color="grey", linestyle=(0, (3, 2)), label="ground truth"))
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False)
    fig.suptitle(title or f"detections (score >= {score_threshold:g})", fontsize=9)
    return fig


def detection_grid(images, detections, class_names, path, ground_truth=None, max_images=16, cols=4,
                   score_threshold=0.3, title=None) -> Path:
    """Images with their predicted boxes (class colour, ``"name 0.93"``) and, if given, the true boxes dashed.

    ``detections``: what ``Detector.detect`` returns (``boxes`` xyxy pixels, ``scores``, ``classes``,
    ``num_detections``); detections below ``score_threshold`` or past ``num_detections`` are not drawn.
    ``ground_truth``: the target dict (``boxes`` xyxy pixels, ``labels`` with -1 padding).
    """
    images, det, gt = _check_detection_plot(images, detections, class_names, ground_truth, max_images, cols,
                                            score_threshold)
    fig = _detection_figure(images, det, gt, class_names, max_images, cols, score_threshold, title, False, 0.0)
    return save_figure(fig, path)


def mask_grid(images, detections, class_names, path, ground_truth=None, max_images=16, cols=4, score_threshold=0.3,
              alpha=0.45, title=None) -> Path:
    """Images with coloured semi-transparent instance masks, their outlines, boxes and ``"name 0.93"`` labels.

    ``detections`` as for ``detection_grid`` plus ``masks`` ``(N, K, H, W)`` (probabilities, drawn where
    >= 0.5, or binary; any resolution: a mask covers its whole image). ``alpha``: the masks' opacity.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ValueError(f"alpha must be a number in (0, 1]. Received: alpha={alpha!r}")
    images, det, gt = _check_detection_plot(images, detections, class_names, ground_truth, max_images, cols,
                                            score_threshold, need_masks=True)
    fig = _detection_figure(images, det, gt, class_names, max_images, cols, score_threshold,
                            title or f"instance masks (score >= {score_threshold:g})", True, float(alpha))
    return save_figure(fig, path)
