"""Datasets that need no network: scikit-learn's bundled digits and a seeded texture generator.

Both return ``(images, labels, class_names)`` with images as ``uint8`` NHWC arrays (0..255) and labels
as ``int32``; the pipeline converts to float32 in [0, 1] as its last step.
"""

from __future__ import annotations

import numpy as np


def _resize_uint8(images: np.ndarray, size) -> np.ndarray:
    """Bilinear (antialiased) resize of a uint8 NHWC batch, returned as uint8."""
    h, w = size
    if images.shape[1:3] == (h, w):
        return images
    import tensorflow as tf

    out = tf.image.resize(tf.convert_to_tensor(images, tf.float32), (h, w), method="bilinear", antialias=True)
    return np.clip(np.round(out.numpy()), 0, 255).astype("uint8")


def _to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    c = images.shape[-1]
    if channels == c:
        return images
    if c == 1:
        return np.repeat(images, channels, axis=-1)
    if channels == 1:
        gray = images.astype("float32") @ np.array([0.299, 0.587, 0.114][:c], "float32")
        return np.clip(np.round(gray), 0, 255).astype("uint8")[..., None]
    raise ValueError(f"Cannot convert {c}-channel images to {channels} channels. Allowed channels: 1 or 3.")


def digits(image_size=(32, 32), channels=1):
    """scikit-learn's 1,797 handwritten 8×8 digits (values 0..16), scaled to 0..255 and resized."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype("uint8")[..., None]
    images = _resize_uint8(images, image_size)
    images = _to_channels(images, channels)
    return images, d.target.astype("int32"), [str(i) for i in range(10)]


def digits_on_photos(image_size=(32, 32), seed=0):
    """The digits added onto random crops of scikit-learn's two sample photos (``china.jpg``,
    ``flower.jpg``): ``clip(crop + digit, 0, 255)``, RGB — an MNIST-M-style domain shift of ``digits``
    (same images, same labels, same order; crops and photo choice seeded)."""
    from sklearn.datasets import load_sample_images

    x, y, names = digits(image_size=image_size, channels=1)
    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    h, w = x.shape[1:3]
    out = np.empty((len(x), h, w, 3), "uint8")
    for i in range(len(x)):
        photo = photos[rng.integers(len(photos))]
        r, c = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
        out[i] = np.clip(photo[r : r + h, c : c + w].astype("int16") + x[i].astype("int16"), 0, 255)
    return out, y, names


PATTERN_CLASSES_5 = ("horizontal", "vertical", "diagonal", "circular", "noise")
PATTERN_CLASSES_10 = (
    "horizontal",
    "vertical",
    "diagonal",
    "antidiagonal",
    "circular",
    "checkerboard",
    "radial",
    "blobs",
    "dots",
    "noise",
)


def _pattern(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One grey-level pattern in [-1, 1] of shape (h, w)."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h, endpoint=False), np.linspace(0, 1, w, endpoint=False), indexing="ij")
    freq = rng.uniform(2.0, 6.0)
    phase = rng.uniform(0, 2 * np.pi)
    jitter = rng.uniform(-0.08, 0.08)  # small orientation jitter keeps classes from being single templates
    if kind == "horizontal":
        return np.sin(2 * np.pi * freq * (yy + jitter * xx) + phase)
    if kind == "vertical":
        return np.sin(2 * np.pi * freq * (xx + jitter * yy) + phase)
    if kind == "diagonal":
        return np.sin(2 * np.pi * freq * (xx + yy) / np.sqrt(2) * (1 + jitter) + phase)
    if kind == "antidiagonal":
        return np.sin(2 * np.pi * freq * (xx - yy) / np.sqrt(2) * (1 + jitter) + phase)
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    if kind == "circular":
        return np.sin(2 * np.pi * freq * 1.5 * r + phase)
    if kind == "radial":
        theta = np.arctan2(yy - cy, xx - cx)
        return np.sin(rng.integers(3, 9) * theta + phase)
    if kind == "checkerboard":
        return np.sign(np.sin(2 * np.pi * freq * xx + phase) * np.sin(2 * np.pi * freq * yy + phase)) * 0.9
    if kind == "blobs":
        coarse = rng.normal(size=(4, 4))
        # bilinear upsampling of a coarse 4x4 random field
        ys = np.linspace(0, 3, h)
        xs = np.linspace(0, 3, w)
        y0 = np.clip(ys.astype(int), 0, 2)
        x0 = np.clip(xs.astype(int), 0, 2)
        fy = (ys - y0)[:, None]
        fx = (xs - x0)[None, :]
        c = coarse
        f = (
            c[y0][:, x0] * (1 - fy) * (1 - fx)
            + c[y0 + 1][:, x0] * fy * (1 - fx)
            + c[y0][:, x0 + 1] * (1 - fy) * fx
            + c[y0 + 1][:, x0 + 1] * fy * fx
        )
        return np.tanh(1.5 * f)
    if kind == "dots":
        period = 1.0 / freq
        d = np.sqrt(((yy + phase / 10) % period - period / 2) ** 2 + ((xx + phase / 10) % period - period / 2) ** 2)
        return np.where(d < period * 0.25, 1.0, -1.0)
    if kind == "noise":
        return rng.uniform(-1, 1, size=(h, w))
    raise ValueError(f"Unknown pattern kind {kind!r}")


def patterns(count=3000, num_classes=10, image_size=(32, 32), channels=3, seed=0, noise=0.15):
    """Seeded textured images in 5 or 10 classes (waves of four orientations, circles, noise, ...).

    Each image draws its own frequency, phase, centre, contrast, colour and additive noise, so the
    classes are textures rather than templates. The same ``seed`` always gives the same images.
    """
    if num_classes not in (5, 10):
        raise ValueError(f"patterns: num_classes must be 5 or 10. Received: num_classes={num_classes!r}")
    if not isinstance(count, int) or count < num_classes:
        raise ValueError(f"patterns: count must be an integer >= num_classes. Received: count={count!r}")
    h, w = image_size
    if h < 4 or w < 4:
        raise ValueError(f"patterns: image_size must be at least 4x4. Received: image_size={image_size!r}")
    names = PATTERN_CLASSES_5 if num_classes == 5 else PATTERN_CLASSES_10
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype="int32") % num_classes
    rng.shuffle(labels)
    images = np.empty((count, h, w, channels), dtype="uint8")
    for i, label in enumerate(labels):
        base = _pattern(names[label], h, w, rng)
        contrast = rng.uniform(0.5, 1.0)
        colour = rng.uniform(0.4, 1.0, size=channels)
        offset = rng.uniform(0.3, 0.7, size=channels)
        img = offset + 0.5 * contrast * colour * base[..., None]
        img = img + rng.normal(0, noise, size=img.shape)
        images[i] = np.clip(np.round(img * 255), 0, 255).astype("uint8")
    return images, labels, list(names)
