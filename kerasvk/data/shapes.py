"""``shapes``: a seeded, embedded detection dataset with boxes, labels and instance masks.

Each image is a textured background (a smooth colour gradient, low-frequency colour noise and, on
about half the images, soft stripes of a random colour, frequency and direction) with 1–6 solid shapes
of random class, size, colour, position and rotation drawn on it. Later shapes occlude earlier ones.

Guarantees (what the tests check):

- ``masks[i, j]`` are the **visible** pixels of instance ``j`` (after occlusion and the image border);
  ``boxes[i, j]`` is the tight xyxy box of that mask in absolute pixels with exclusive right/bottom
  edges (a mask covering columns 3..7 gives ``x1=3, x2=8``); padding rows have label -1, box -1 and
  an all-zero mask, and always come after the real rows.
- No target is invisible and no drawn pixel is unlabelled: a shape whose visible part would be under
  ``MIN_VISIBLE_FRACTION`` of its full area or under ``MIN_VISIBLE_PIXELS`` pixels — cut by the border,
  or because it would hide too much of an earlier shape — is not drawn (a new size and position is
  tried, up to ``PLACEMENT_TRIES`` times).
- Every shape's colour is far (RGB distance ≥ ``MIN_CONTRAST`` where possible) from the mean colour
  of the pixels around it, so a human sees it.
- Sizes (side / diameter) are log-uniform in ``[min_size, max_size]`` plus an extra share of small
  ones (``≤ 12`` px), so small objects are common. The same ``seed`` gives the same arrays.
"""

from __future__ import annotations

import numpy as np

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")
MIN_VISIBLE_FRACTION = 0.4
MIN_VISIBLE_PIXELS = 12
MIN_CONTRAST = 110.0  # RGB distance (0..441) of a shape's colour to its surroundings' mean
PLACEMENT_TRIES = 12
SMALL_SIZE = 12
_SMALL_SHARE = 0.15  # extra share of sizes drawn uniformly in [min_size, SMALL_SIZE]
_CHUNK = 128  # images per vectorised background chunk


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"shapes: {name} must be an integer >= {low}. Received: {name}={value!r}")
    return int(value)


def _resolve_classes(classes):
    if classes is None:
        return list(SHAPE_CLASSES)
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    classes = list(classes)
    bad = [c for c in classes if c not in SHAPE_CLASSES]
    if not classes or bad or len(set(classes)) != len(classes):
        raise ValueError(
            f"shapes: classes must be distinct names among {', '.join(SHAPE_CLASSES)}. "
            f"Received: classes={classes!r}"
        )
    return classes


def _interp_matrix(out, n):
    """``(out, n)`` linear-interpolation weights from ``n`` grid points to ``out`` samples (align corners)."""
    pos = np.linspace(0, n - 1, out, dtype="float32")
    i0 = np.minimum(pos.astype(int), n - 2)
    f = pos - i0
    m = np.zeros((out, n), "float32")
    m[np.arange(out), i0] = 1 - f
    m[np.arange(out), i0 + 1] = f
    return m


def _backgrounds(n, h, w, rng):
    """``(n, h, w, 3)`` float32 textured backgrounds in about 0..255, vectorised over the batch.

    Computed channels-first (the inner loops run over a whole row, not over 3 channels) and returned
    as a channels-last view.
    """
    yy = np.linspace(-0.5, 0.5, h, dtype="float32")[None, None, :, None]
    xx = np.linspace(-0.5, 0.5, w, dtype="float32")[None, None, None, :]
    base = rng.uniform(40, 215, (n, 3, 1, 1)).astype("float32")
    # smooth gradient: a random direction, a colour change of up to ±70 across the image
    angle = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1)).astype("float32")
    slope = rng.uniform(-70, 70, (n, 3, 1, 1)).astype("float32")
    img = (base + slope * np.cos(angle) * xx) + slope * np.sin(angle) * yy
    # low-frequency colour noise: a coarse random grid, bilinearly upsampled (two small matmuls)
    grid = int(rng.integers(3, 6))
    amp = rng.uniform(8, 30, (n, 1, 1, 1)).astype("float32")
    coarse = amp * rng.normal(0, 1, (n, 3, grid, grid)).astype("float32")
    img += _interp_matrix(h, grid) @ coarse @ _interp_matrix(w, grid).T
    # soft stripes of a random colour on about half the images
    on = (rng.uniform(size=(n, 1, 1, 1)) < 0.5).astype("float32")
    freq = rng.uniform(2, 8, (n, 1, 1, 1)).astype("float32")
    theta = rng.uniform(0, np.pi, (n, 1, 1, 1)).astype("float32")
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1)).astype("float32")
    colour = rng.uniform(-35, 35, (n, 3, 1, 1)).astype("float32")
    stripes = np.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
    img += (on * colour) * stripes
    return img.transpose(0, 2, 3, 1)


def _shape_mask(kind, size, cx, cy, angle, x0, y0, ww, wh):
    """Boolean mask ``(wh, ww)`` of a shape over the window with top-left pixel ``(x0, y0)``.

    A pixel is inside when its centre is; ``size`` is the diameter (circle) or side (others).
    """
    px = np.arange(x0, x0 + ww, dtype="float32")[None, :] + 0.5 - cx
    py = np.arange(y0, y0 + wh, dtype="float32")[:, None] + 0.5 - cy
    c, s = np.cos(angle), np.sin(angle)
    u = c * px + s * py
    v = -s * px + c * py
    half = size / 2.0
    if kind == "circle":
        return px * px + py * py <= half * half
    if kind == "square":
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if kind == "triangle":
        # equilateral, side = size, centred on its centroid, apex up before rotation
        r = size / np.sqrt(3.0)  # circumradius
        inside = np.ones(np.broadcast_shapes(u.shape, v.shape), bool)
        for k in range(3):
            a = -np.pi / 2 + k * 2 * np.pi / 3 + np.pi  # outward normals of the three edges
            inside &= np.cos(a) * u + np.sin(a) * v <= r / 2.0
        return inside
    if kind == "cross":
        arm = size / 6.0  # half the arm width: arms are a third of the size wide
        au, av = np.abs(u), np.abs(v)
        return ((au <= half) & (av <= arm)) | ((av <= half) & (au <= arm))
    raise ValueError(f"Unknown shape {kind!r}")


def _draw_image(canvas, kinds, n_objects, min_size, max_size, rng):
    """Draw up to ``n_objects`` shapes on ``canvas`` (h, w, 3 float, in place).

    Returns ``(owner (h, w) int16 with -1 for background, labels list)``.
    """
    h, w = canvas.shape[:2]
    owner = np.full((h, w), -1, np.int16)
    full_area, visible, labels = [], [], []
    # every random number this image may need, drawn at once (the loop below only consumes them)
    t = n_objects * PLACEMENT_TRIES
    cls = rng.integers(len(kinds), size=t)
    small = rng.uniform(size=t) < _SMALL_SHARE if max_size > min_size else np.zeros(t, bool)
    sizes = np.where(
        small,
        rng.uniform(min_size, min(SMALL_SIZE, max_size), t),
        np.exp(rng.uniform(np.log(min_size), np.log(max_size), t)),
    )
    turns = rng.uniform(0, 1, t)
    pos = rng.uniform(0, 1, (t, 2))
    colours = rng.uniform(0, 255, (t, 8, 3))
    shades = rng.uniform(-12, 12, (t, 3))
    k = -1
    for _ in range(n_objects):
        for _try in range(PLACEMENT_TRIES):
            k += 1
            label = int(cls[k])
            kind = kinds[label]
            size = float(sizes[k])
            if kind in ("square", "triangle"):
                angle = 2 * np.pi * turns[k]
            elif kind == "cross":
                angle = (turns[k] - 0.5) * (2 * np.pi / 9)  # ±20°
            else:
                angle = 0.0
            # the centre may lie a little outside the image: shapes can be cut by the border
            cx = -0.2 * size + pos[k, 0] * (w + 0.4 * size)
            cy = -0.2 * size + pos[k, 1] * (h + 0.4 * size)
            reach = int(np.ceil(size * 0.75)) + 1
            x0, y0 = int(np.floor(cx)) - reach, int(np.floor(cy)) - reach
            win = 2 * reach + 1
            full = _shape_mask(kind, size, cx, cy, angle, x0, y0, win, win)
            area = int(np.count_nonzero(full))
            # the part inside the image
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + win, w), min(y0 + win, h)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            m = full[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            ys, xs = np.nonzero(m)
            inside = len(ys)
            if inside < max(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRACTION * area):
                continue
            sub_owner = owner[cy0:cy1, cx0:cx1]
            hidden = sub_owner[ys, xs]
            hidden = hidden[hidden >= 0]
            if hidden.size:
                counts = np.bincount(hidden, minlength=len(labels))
                left = np.asarray(visible) - counts
                need = np.maximum(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRACTION * np.asarray(full_area))
                if (left < need).any():
                    continue  # it would hide too much of an earlier shape
                visible = list(left)
            # a colour far from the local background (a 2-px margin around the shape's window)
            surround = canvas[max(cy0 - 2, 0) : cy1 + 2, max(cx0 - 2, 0) : cx1 + 2].mean(axis=(0, 1))
            dist = np.linalg.norm(colours[k] - surround, axis=1)
            far = np.flatnonzero(dist >= MIN_CONTRAST)
            colour = colours[k, far[0] if far.size else int(dist.argmax())]
            # mild vertical shading inside the shape so it is not a flat template
            rel = ys / max(cy1 - cy0 - 1, 1) - 0.5
            canvas[cy0 + ys, cx0 + xs] = colour + rel[:, None] * shades[k]
            sub_owner[ys, xs] = len(labels)
            labels.append(label)
            full_area.append(area)
            visible.append(inside)
            break
    return owner, labels


def shapes(
    count=1000,
    image_size=(128, 128),
    seed=0,
    *,
    min_objects=1,
    max_objects=6,
    min_size=8,
    max_size=None,
    classes=None,
    with_masks=True,
) -> dict:
    """Seeded detection data: ``{"images", "boxes", "labels"[, "masks"], "class_names"}``.

    ``images`` uint8 ``(count, H, W, 3)``; ``boxes`` float32 ``(count, max_objects, 4)`` xyxy absolute
    pixels (tight boxes of the visible masks, exclusive right/bottom edges); ``labels`` int32
    ``(count, max_objects)``; padding rows are label -1 / box -1. ``masks`` uint8 ``(count, max_objects,
    H, W)`` of the visible pixels (1) per instance, zero rows for padding (only with ``with_masks``).
    ``classes``: a subset of ``SHAPE_CLASSES`` (their order gives the label ids); default all.
    An image gets ``U{min_objects..max_objects}`` shapes; one that cannot be placed visibly in
    ``PLACEMENT_TRIES`` tries is left out, so a few images have fewer.
    """
    count = _check_int("count", count, 0)
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 16 for s in image_size)
    ):
        raise ValueError(
            f"shapes: image_size must be (height, width) integers >= 16. Received: image_size={image_size!r}"
        )
    h, w = int(image_size[0]), int(image_size[1])
    min_objects = _check_int("min_objects", min_objects, 0)
    max_objects = _check_int("max_objects", max_objects, 1)
    if max_objects < min_objects:
        raise ValueError(
            "shapes: max_objects must be >= min_objects. "
            f"Received: min_objects={min_objects}, max_objects={max_objects}"
        )
    min_size = _check_int("min_size", min_size, 4)
    if max_size is None:
        max_size = max(min_size, int(0.5 * min(h, w)))
    max_size = _check_int("max_size", max_size, min_size)
    if max_size > min(h, w):
        raise ValueError(
            f"shapes: max_size must be <= min(image_size)={min(h, w)}. Received: max_size={max_size}"
        )
    kinds = _resolve_classes(classes)

    rng = np.random.default_rng(seed)
    images = np.empty((count, h, w, 3), np.uint8)
    owners = np.empty((count, h, w), np.int16)
    labels = np.full((count, max_objects), -1, np.int32)
    for start in range(0, count, _CHUNK):
        stop = min(start + _CHUNK, count)
        canvas = _backgrounds(stop - start, h, w, rng)
        for i in range(stop - start):
            n = int(rng.integers(min_objects, max_objects + 1))
            owner, labs = _draw_image(canvas[i], kinds, n, min_size, max_size, rng)
            owners[start + i] = owner
            labels[start + i, : len(labs)] = labs
        flat = canvas.transpose(0, 3, 1, 2)  # the contiguous channels-first buffer
        flat += rng.integers(-4, 5, flat.shape, dtype=np.int8)  # faint sensor noise
        flat += 0.5  # round on the cast
        np.clip(flat, 0, 255, out=flat)
        images[start:stop] = flat.astype(np.uint8).transpose(0, 2, 3, 1)

    boxes = np.full((count, max_objects, 4), -1, np.float32)
    masks = np.zeros((count, max_objects, h, w), np.uint8) if with_masks else None
    for j in range(max_objects):
        m = owners == j  # (count, h, w)
        if masks is not None:
            masks[:, j] = m
        rows, cols = m.any(axis=2), m.any(axis=1)
        real = rows.any(axis=1)
        y1 = rows.argmax(axis=1)
        y2 = h - rows[:, ::-1].argmax(axis=1)
        x1 = cols.argmax(axis=1)
        x2 = w - cols[:, ::-1].argmax(axis=1)
        boxes[real, j] = np.stack([x1, y1, x2, y2], axis=1)[real].astype(np.float32)
    out = {"images": images, "boxes": boxes, "labels": labels, "class_names": list(kinds)}
    if masks is not None:
        out["masks"] = masks
    return out
