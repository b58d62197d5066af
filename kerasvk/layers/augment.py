"""Augmentation layers keras core lacks in the form a fast uint8 pipeline needs.

Everything here works on whole NHWC batches, runs inside ``tf.data`` *and* as layers inside a model,
and mirrors the keras core layer it stands in for:

- :class:`RandomAffine` — flip + rotation + zoom + translation in **one** affine resampling, with the
  exact parameter meaning, sampling, matrices, fill modes and interpolation of ``keras.layers.RandomFlip
  → RandomRotation → RandomZoom → RandomTranslation`` (same output as that chain for one transform at a
  time; the fused version interpolates once instead of up to four times). uint8 in → uint8 out.
- :class:`RandomColor` — brightness ``I·α`` (multiplicative, which core's additive ``RandomBrightness``
  is not) and contrast ``α(I−μ)+μ`` (per-image, per-channel mean μ, exactly ``keras.layers.RandomContrast``)
  in one multiply-add and one clip.
- :class:`CutMix` — keras' ``CutMix`` draws a fractional box and labels it with the fractional area, so
  the label weight is not the share of pixels actually pasted. Here the box is snapped to whole pixels
  and the label weight *is* the pasted share.

MixUp, hue, saturation and RandAugment come from keras core unchanged (see ``kerasvk.data.augment``).

Why fused: ``ImageProjectiveTransformV3`` (what keras' geometric layers call) costs ~60 ns per output
*element* on CPU; a keras chain of three geometric layers on float32 batches reaches under half the
speed of a per-image OpenCV loop. :func:`augment_batch` is the same sampling written as four gathers
and a blend, with the colour multiply-add (μ from the *source* image: colour comes first) applied to
the four neighbours as they are read, which XLA compiles into one loop over output pixels (see
:func:`compiled`) — ``augment_batch(x, t, b, c) == RandomAffine(RandomColor(x))``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

FILL_MODES = ("reflect", "constant", "nearest")  # TF's "wrap" has edge quirks not worth copying
INTERPOLATIONS = ("bilinear", "nearest")
FLIP_MODES = (None, "horizontal", "vertical", "horizontal_and_vertical")


def _range(value, name, *, allow_negative_lower=True):
    """``f`` → ``(-f, f)``; ``(lo, hi)`` kept. Rejects negative magnitudes and lo > hi."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(
                f"{name} must be >= 0 (a magnitude) or a (lower, upper) pair. Received: {name}={value!r}"
            )
        return (-float(value), float(value))
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number >= 0 or a (lower, upper) pair. Received: {name}={value!r}"
        ) from None
    if lo > hi:
        raise ValueError(f"{name} lower bound must be <= upper bound. Received: {name}={value!r}")
    return (lo, hi)


def _active(r) -> bool:
    return r is not None and (r[0] != 0.0 or r[1] != 0.0)


# --------------------------------------------------------------------------------------------------
# Pure functions (keras.ops, any backend)
# --------------------------------------------------------------------------------------------------


def compose_affine(a, b):
    """``a ∘ b`` for batches of (B, 8) out→in transforms (keras/TF layout, last two entries 0)."""
    a0, a1, a2, a3, a4, a5 = (a[:, i] for i in range(6))
    b0, b1, b2, b3, b4, b5 = (b[:, i] for i in range(6))
    z = ops.zeros_like(a0)
    return ops.stack(
        [
            a0 * b0 + a1 * b3,
            a0 * b1 + a1 * b4,
            a0 * b2 + a1 * b5 + a2,
            a3 * b0 + a4 * b3,
            a3 * b1 + a4 * b4,
            a3 * b2 + a4 * b5 + a5,
            z,
            z,
        ],
        axis=1,
    )


def affine_matrices(height, width, *, angle=None, zoom=None, translate=None, flip_h=None, flip_v=None):
    """The (B, 8) out→in transform of flip → rotate → zoom → translate, with keras' own matrices.

    ``angle`` degrees (B,), ``zoom`` (B, 2) as (height_zoom, width_zoom) factors (1 = none),
    ``translate`` (B, 2) as (dy, dx) in pixels, ``flip_h``/``flip_v`` (B,) booleans. Matches
    ``RandomRotation._compute_affine_matrix`` (centre ((W-1)/2, (H-1)/2)), ``RandomZoom._get_zoom_matrix``
    and ``RandomTranslation._get_translation_matrix``. Chained layers sample ``in(M_f·M_r·M_z·M_t·p)``.
    """
    h, w = float(height), float(width)
    cx, cy = 0.5 * (w - 1.0), 0.5 * (h - 1.0)
    parts = []
    given = [v for v in (angle, flip_h, flip_v) if v is not None] + [
        v[:, 0] for v in (zoom, translate) if v is not None
    ]
    if not given:
        raise ValueError("affine_matrices needs at least one of angle, zoom, translate, flip_h, flip_v.")
    zero = ops.zeros_like(ops.cast(given[0], "float32"))
    one = zero + 1.0
    if flip_h is not None or flip_v is not None:
        sx = one - 2.0 * ops.cast(flip_h, "float32") if flip_h is not None else one
        sy = one - 2.0 * ops.cast(flip_v, "float32") if flip_v is not None else one
        parts.append(
            ops.stack(
                [sx, zero, (one - sx) * (w - 1.0) / 2.0, zero, sy, (one - sy) * (h - 1.0) / 2.0, zero, zero],
                1,
            )
        )
    if angle is not None:
        rad = ops.cast(angle, "float32") * (math.pi / 180.0)
        c, s = ops.cos(rad), ops.sin(rad)
        parts.append(ops.stack([c, -s, cx - cx * c + cy * s, s, c, cy - cx * s - cy * c, zero, zero], 1))
    if zoom is not None:
        zh, zw = zoom[:, 0], zoom[:, 1]
        parts.append(ops.stack([zw, zero, cx * (1.0 - zw), zero, zh, cy * (1.0 - zh), zero, zero], 1))
    if translate is not None:
        parts.append(ops.stack([one, zero, -translate[:, 1], zero, one, -translate[:, 0], zero, zero], 1))
    m = parts[0]
    for p in parts[1:]:
        m = compose_affine(m, p)
    return m


def _map_coordinate(c, size, fill_mode, reflect_once=False):
    """TF's ``MapCoordinate`` for each fill mode (ImageProjectiveTransformV3), vectorised.

    ``reflect_once``: the caller knows no coordinate is more than one image size outside, so the
    reflection is two ``abs`` instead of a modulo (same result there).
    """
    top = float(size - 1)
    if fill_mode == "constant":
        return c
    if size == 1:
        return ops.zeros_like(c)
    if fill_mode == "reflect":  # [abcd] → dcba|abcd|dcba: mirror about -0.5 and size-0.5
        if reflect_once:
            s = ops.abs(c + 0.5)
            c = (float(size) - ops.abs(float(size) - s)) - 0.5
        else:
            u = ops.mod(c + 0.5, 2.0 * size) - 0.5
            c = ops.where(u > size - 0.5, 2.0 * size - 1.0 - u, u)
    return ops.clip(c, 0.0, top)


def channel_means(images):
    """Per image, per channel mean ``(B, 1, 1, C)`` as one matrix-vector product over the pixels.

    Same value as ``ops.mean(images, axis=(1, 2))`` up to float summation order; XLA on CPU runs the
    strided reduction over (H, W) at ~110 µs per 224×224×3 image and the dot at ~40 µs (a quarter of the
    whole fused augmentation's time went into this mean).
    """
    if any(d is None for d in images.shape[1:]):  # unknown size (a model built for any size): plain mean
        return ops.mean(ops.cast(images, "float32"), axis=(1, 2), keepdims=True)
    h, w, ch = int(images.shape[1]), int(images.shape[2]), int(images.shape[3])
    flat = ops.reshape(ops.cast(images, "float32"), (-1, h * w, ch))
    sums = ops.einsum("bpc,p->bc", flat, ops.ones((h * w,), "float32"))
    return ops.reshape(sums * (1.0 / float(h * w)), (-1, 1, 1, ch))


def color_coefficients(images, brightness=None, contrast=None):
    """Per image/channel (A, B) with ``brightness∘contrast(I) = A·I + B`` (μ from ``images``)."""
    a, b = 1.0, 0.0
    if contrast is not None:
        c = ops.reshape(ops.cast(contrast, "float32"), (-1, 1, 1, 1))
        mean = channel_means(images)
        a, b = c, (1.0 - c) * mean
    if brightness is not None:
        k = ops.reshape(ops.cast(brightness, "float32"), (-1, 1, 1, 1))
        a, b = a * k, b * k
    return a, b


def adjust_color(images, *, brightness=None, contrast=None, value_range=(0.0, 255.0)):
    """``clip(α_b·(α_c·(I − μ) + μ))``: brightness ``I·α_b`` and contrast ``α_c(I−μ)+μ``, one clip.

    μ is the per-image, per-channel mean (as ``keras.layers.RandomContrast``); brightness scales μ with
    the image, so the two factors commute. ``brightness``/``contrast``: (B,) factors or None.
    """
    a, b = color_coefficients(images, brightness, contrast)
    x = ops.cast(images, "float32") * a + b
    return ops.clip(x, float(value_range[0]), float(value_range[1]))


def augment_batch(
    images,
    transforms=None,
    brightness=None,
    contrast=None,
    *,
    fill_mode="reflect",
    fill_value=0.0,
    interpolation="bilinear",
    value_range=(0.0, 255.0),
    divide_by=1.0,
    reflect_once=False,
):
    """Colour (brightness, contrast) → affine resample → ``/ divide_by`` as one function (float32 out).

    Exactly ``RandomAffine(RandomColor(images))`` for the given factors and transforms: colour is a
    per-image/channel ``clip(A·I + B)`` applied to each of the four neighbours as they are read, so
    the colour-adjusted image is never materialised; pixels filled by ``fill_mode="constant"`` keep
    ``fill_value``. Resampling matches ``ImageProjectiveTransformV3`` (keras ``ops.image.affine_transform``):
    pixel centres at integer coordinates, TF's fill-mode coordinate mapping, bilinear from the 2×2
    neighbourhood, out-of-image neighbours reading ``fill_value``; no truncation of uint8 results.
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    colored = brightness is not None or contrast is not None
    if colored:
        a, b = color_coefficients(images, brightness, contrast)

    def color(v):
        return ops.clip(v * a + b, lo, hi) if colored else v

    if transforms is None:
        out = color(ops.cast(images, "float32"))
        return out / divide_by if divide_by != 1.0 else out
    shape = ops.shape(images)
    h, w, ch = int(images.shape[1]), int(images.shape[2]), int(images.shape[3])
    if h < 2 or w < 2:
        raise ValueError(
            f"Geometric augmentation needs images of at least 2×2. Received: {tuple(images.shape)}"
        )
    t = ops.cast(transforms, "float32")
    xs = ops.arange(w, dtype="float32")[None, None, :]
    ys = ops.arange(h, dtype="float32")[None, :, None]
    sx = t[:, 0, None, None] * xs + t[:, 1, None, None] * ys + t[:, 2, None, None]
    sy = t[:, 3, None, None] * xs + t[:, 4, None, None] * ys + t[:, 5, None, None]
    sx = _map_coordinate(sx, w, fill_mode, reflect_once)
    sy = _map_coordinate(sy, h, fill_mode, reflect_once)
    flat = ops.reshape(images, (-1, ch))
    base = (ops.arange(shape[0], dtype="int32") * (h * w))[:, None, None]
    fill = float(fill_value)
    constant = fill_mode == "constant"

    def read(yi, xi):
        if constant:
            valid = ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))[..., None]
            yi, xi = ops.clip(yi, 0, h - 1), ops.clip(xi, 0, w - 1)
        v = color(ops.cast(ops.take(flat, base + yi * w + xi, axis=0), "float32"))
        return ops.where(valid, v, fill) if constant else v

    if interpolation == "nearest":  # std::round: half away from zero
        rx = ops.sign(sx) * ops.floor(ops.abs(sx) + 0.5)
        ry = ops.sign(sy) * ops.floor(ops.abs(sy) + 0.5)
        out = read(ops.cast(ry, "int32"), ops.cast(rx, "int32"))
    else:
        x0, y0 = ops.floor(sx), ops.floor(sy)
        if not constant:  # coordinates lie in [0, size-1]: keep both neighbours inside
            x0, y0 = ops.minimum(x0, float(w - 2)), ops.minimum(y0, float(h - 2))
        fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
        x0i, y0i = ops.cast(x0, "int32"), ops.cast(y0, "int32")
        top = read(y0i, x0i) * (1.0 - fx) + read(y0i, x0i + 1) * fx
        bottom = read(y0i + 1, x0i) * (1.0 - fx) + read(y0i + 1, x0i + 1) * fx
        out = top * (1.0 - fy) + bottom * fy
    return out / divide_by if divide_by != 1.0 else out


def affine_resample(
    images, transforms, *, fill_mode="reflect", fill_value=0.0, interpolation="bilinear", reflect_once=False
):
    """Resample an NHWC batch through per-image (B, 8) out→in affine transforms → float32."""
    return augment_batch(
        images,
        transforms,
        fill_mode=fill_mode,
        fill_value=fill_value,
        interpolation=interpolation,
        reflect_once=reflect_once,
    )


def _round_to(x, dtype):
    """float → ``dtype``; integers are rounded (half up) and saturated, not truncated."""
    dtype = keras.backend.standardize_dtype(dtype)
    if "int" in dtype:
        info = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767)}
        lo, hi = info.get(dtype, (None, None))
        x = ops.floor(x + 0.5)
        if lo is not None:
            x = ops.clip(x, lo, hi)
    return ops.cast(x, dtype)


def uniform_draws(seed):
    """``draw(lo, hi, shape)``: U(lo, hi) samples from a ``SeedGenerator`` (``keras.random.uniform``), or, for a
    ``(2,)`` integer seed tensor, stateless draws from it, the k-th draw from ``fold_in(seed, k)`` (TensorFlow)."""
    if seed is None or isinstance(seed, (int, keras.random.SeedGenerator)):
        return lambda lo, hi, shape: keras.random.uniform(shape, minval=lo, maxval=hi, seed=seed)
    import tensorflow as tf

    base = tf.cast(seed, tf.int64)
    count = [0]

    def draw(lo, hi, shape):
        count[0] += 1
        sub = tf.random.experimental.stateless_fold_in(base, count[0])
        return tf.random.stateless_uniform(shape, seed=sub, minval=lo, maxval=hi)

    return draw


OUTPUTS = ("unit", "uint8", "float")


def augment_seeded(images, seed, affine, color, *, out="unit"):
    """``RandomColor`` → ``RandomAffine`` on a uint8 batch with every draw made from one ``(2,)`` ``seed``.

    The whole step (draws, matrices, the fused resampling and colour, the output conversion) is one
    function for :func:`compiled`, so a ``tf.data`` map pays one XLA call per batch instead of a few dozen
    small ops. ``out``: ``"unit"`` float32 in [0, 1]; ``"uint8"`` rounded uint8 0..255 (a quarter of the
    bytes to hand to the device: the model scales it there); ``"float"`` float32 0..255.
    """
    if out not in OUTPUTS:
        raise ValueError(f"out must be one of {OUTPUTS}. Received: out={out!r}")
    import tensorflow as tf

    h, w = int(images.shape[1]), int(images.shape[2])
    t = affine.random_transforms(images, seed=tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 1)) \
        if affine.active else None
    b, c = color.random_factors(images, seed=tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 2)) \
        if color.active else (None, None)
    kw = affine.resample_kwargs(h, w)
    x = augment_batch(images, t, b, c, **kw, value_range=(0.0, 255.0), divide_by=255.0 if out == "unit" else 1.0)
    return _round_to(x, "uint8") if out == "uint8" else x


_COMPILED = {}


def compiled(fn):
    """``fn`` compiled by XLA (TensorFlow backend): the gathers, blend and colour fuse into one loop
    over output pixels (~8× faster than the same ops unfused on CPU, ~4× the TF resampling kernel)."""
    if keras.backend.backend() != "tensorflow":
        return fn
    if fn not in _COMPILED:
        import tensorflow as tf

        _COMPILED[fn] = tf.function(fn, jit_compile=True)
    return _COMPILED[fn]


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kerasvk")
class RandomAffine(keras.layers.Layer):
    """Random flip, rotation, zoom and translation as one affine resampling per image.

    Parameters mean what they mean in keras core, per image:

    - ``rotation``: degrees ``d`` → angle ~ U(−d, d) (``RandomRotation(factor=d/360)``), or (lo, hi).
    - ``zoom``: ``z`` → zoom factor ~ U(1−z, 1+z) for both axes (``RandomZoom(height_factor=z)``; < 1 is
      zoom-in), or (lo, hi) as keras' ``height_factor`` pair.
    - ``translation``: ``t`` → shift ~ U(−t, t)·size on each axis (``RandomTranslation(t, t)``), or (lo, hi).
    - ``flip``: None, "horizontal", "vertical", "horizontal_and_vertical" (``RandomFlip``; p = 0.5 each).
    - ``fill_mode`` reflect|constant|nearest, ``fill_value``, ``interpolation`` bilinear|nearest.

    Output dtype = input dtype (integers rounded, not truncated). Identity when ``training=False``.
    """

    def __init__(
        self,
        rotation=0.0,
        zoom=0.0,
        translation=0.0,
        flip=None,
        fill_mode="reflect",
        interpolation="bilinear",
        fill_value=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rotation = _range(rotation, "rotation")
        self.zoom = _range(zoom, "zoom")
        self.translation = _range(translation, "translation")
        if self.zoom[0] <= -1.0:
            raise ValueError(
                f"zoom must be > -1 (a zoom factor 1+z must stay positive). Received: zoom={zoom!r}"
            )
        if flip not in FLIP_MODES:
            raise ValueError(f"flip must be one of {FLIP_MODES}. Received: flip={flip!r}")
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {FILL_MODES}. Received: fill_mode={fill_mode!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATIONS}. Received: interpolation={interpolation!r}"
            )
        self.flip = flip
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(fill_value)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = True

    @property
    def active(self) -> bool:
        return bool(self.flip) or any(_active(r) for r in (self.rotation, self.zoom, self.translation))

    def random_transforms(self, images, seed=None):
        """(B, 8) out→in transforms drawn as keras' geometric layers draw them.

        ``seed``: None draws from the layer's ``SeedGenerator``; a ``(2,)`` seed tensor draws statelessly
        from it (TensorFlow; what :func:`augment_seeded` does inside one XLA function).
        """
        b = ops.shape(images)[0]
        h, w = int(images.shape[1]), int(images.shape[2])
        kw = {}
        u = uniform_draws(self.generator if seed is None else seed)
        if self.flip in ("horizontal", "horizontal_and_vertical"):
            kw["flip_h"] = u(0.0, 1.0, (b,)) < 0.5
        if self.flip in ("vertical", "horizontal_and_vertical"):
            kw["flip_v"] = u(0.0, 1.0, (b,)) < 0.5
        if _active(self.rotation):
            kw["angle"] = u(self.rotation[0], self.rotation[1], (b,))
        if _active(self.zoom):
            z = u(1.0 + self.zoom[0], 1.0 + self.zoom[1], (b, 1))
            kw["zoom"] = ops.concatenate([z, z], axis=1)
        if _active(self.translation):
            dy = u(self.translation[0], self.translation[1], (b, 1)) * float(h)
            dx = u(self.translation[0], self.translation[1], (b, 1)) * float(w)
            kw["translate"] = ops.concatenate([dy, dx], axis=1)
        if not kw:
            return None
        return affine_matrices(h, w, **kw)

    def max_overflow(self, height, width) -> float:
        """Upper bound (pixels) on how far outside the image a sampled coordinate can fall."""
        rmax = max(abs(self.rotation[0]), abs(self.rotation[1]))
        smax = 1.0 if rmax >= 90 else math.sin(math.radians(rmax))
        zmax = 1.0 + max(self.zoom[1], 0.0) if _active(self.zoom) else 1.0
        tmax = max(abs(self.translation[0]), abs(self.translation[1])) if _active(self.translation) else 0.0
        hx, hy = (width - 1) / 2.0, (height - 1) / 2.0
        bx, by = zmax * (hx + tmax * width), zmax * (hy + tmax * height)
        return max(bx + smax * by - hx, by + smax * bx - hy, 0.0)

    def resample_kwargs(self, height, width):
        once = self.max_overflow(height, width) < min(height, width) - 1
        return dict(
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            interpolation=self.interpolation,
            reflect_once=once,
        )

    def call(self, inputs, training=True):
        if not training or not self.active:
            return inputs
        t = self.random_transforms(inputs)
        kw = self.resample_kwargs(int(inputs.shape[1]), int(inputs.shape[2]))
        out = compiled(affine_resample)(inputs, t, **kw)
        return _round_to(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rotation": self.rotation,
            "zoom": self.zoom,
            "translation": self.translation,
            "flip": self.flip,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="kerasvk")
class RandomColor(keras.layers.Layer):
    """Random brightness ``I·α_b`` and contrast ``α_c(I−μ)+μ`` in one multiply-add and one clip.

    ``brightness=f`` → α_b ~ U(1−f, 1+f); ``contrast=f`` → α_c ~ U(1−f, 1+f) (``RandomContrast(f)``);
    either may be a (lower, upper) pair meaning U(1−lower, 1+upper) as in keras. μ: per-image,
    per-channel mean. Output float32 clipped to ``value_range``. Identity when ``training=False``.
    """

    def __init__(self, brightness=0.0, contrast=0.0, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.brightness = self._factor(brightness, "brightness")
        self.contrast = self._factor(contrast, "contrast")
        if len(value_range) != 2 or value_range[0] >= value_range[1]:
            raise ValueError(
                f"value_range must be (low, high) with low < high. Received: value_range={value_range!r}"
            )
        self.value_range = tuple(float(v) for v in value_range)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = True

    @staticmethod
    def _factor(value, name):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"{name} must be >= 0. Received: {name}={value!r}")
            value = (value, value)
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be a number >= 0 or a (lower, upper) pair. Received: {value!r}"
            ) from None
        if lo > 1.0 or 1.0 - lo > 1.0 + hi:
            raise ValueError(
                f"{name} factor range U(1-lower, 1+upper) must be non-empty and >= 0. Received: {value!r}"
            )
        return (lo, hi)

    @property
    def active(self) -> bool:
        return self.brightness != (0.0, 0.0) or self.contrast != (0.0, 0.0)

    def random_factors(self, images, seed=None):
        """(brightness, contrast) per-image factors, None where the op is off (``seed``: as
        ``RandomAffine.random_transforms``)."""
        b = ops.shape(images)[0]
        u = uniform_draws(self.generator if seed is None else seed)
        out = []
        for lo, hi in (self.brightness, self.contrast):
            if (lo, hi) == (0.0, 0.0):
                out.append(None)
            else:
                out.append(u(1.0 - lo, 1.0 + hi, (b,)))
        return tuple(out)

    def call(self, inputs, training=True):
        if not training or not self.active:
            return (
                ops.cast(inputs, "float32")
                if "int" in keras.backend.standardize_dtype(inputs.dtype)
                else inputs
            )
        bright, contrast = self.random_factors(inputs)
        return adjust_color(inputs, brightness=bright, contrast=contrast, value_range=self.value_range)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "brightness": self.brightness,
            "contrast": self.contrast,
            "value_range": self.value_range,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="kerasvk")
class CutMix(keras.layers.Layer):
    """CutMix on a batch: paste a whole-pixel box from a shuffled partner; label weight = kept share.

    λ ~ Beta(α, α); box side ``round(size·√(1−λ))`` on each axis, placed uniformly inside the image;
    the label is ``λ'·y + (1−λ')·y_partner`` with ``λ' = 1 − box_pixels/(H·W)`` exactly. Takes and
    returns ``{"images": ..., "labels": one-hot}`` like ``keras.layers.CutMix``. Images come back float32.
    """

    def __init__(self, alpha=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ValueError(f"CutMix alpha must be > 0. Received: alpha={alpha!r}")
        self.alpha = float(alpha)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def random_boxes(self, images):
        """Per image: partner index, box (y0, x0, bh, bw) in pixels, and the kept share λ'."""
        b = ops.shape(images)[0]
        h, w = int(images.shape[1]), int(images.shape[2])
        lam = keras.random.beta((b,), self.alpha, self.alpha, seed=self.generator)
        cut = ops.sqrt(1.0 - lam)
        bh = ops.cast(ops.floor(cut * h + 0.5), "int32")
        bw = ops.cast(ops.floor(cut * w + 0.5), "int32")
        y0 = ops.cast(
            ops.floor(keras.random.uniform((b,), seed=self.generator) * ops.cast(h - bh + 1, "float32")),
            "int32",
        )
        x0 = ops.cast(
            ops.floor(keras.random.uniform((b,), seed=self.generator) * ops.cast(w - bw + 1, "float32")),
            "int32",
        )
        y0, x0 = ops.minimum(y0, h - bh), ops.minimum(x0, w - bw)
        perm = keras.random.shuffle(ops.arange(b, dtype="int32"), seed=self.generator)
        kept = 1.0 - ops.cast(bh * bw, "float32") / float(h * w)
        return perm, (y0, x0, bh, bw), kept

    def call(self, data, training=True):
        images, labels = data["images"], data["labels"]
        if not training:
            return data
        perm, (y0, x0, bh, bw), kept = self.random_boxes(images)
        h, w = int(images.shape[1]), int(images.shape[2])
        ys = ops.arange(h, dtype="int32")[None, :, None, None]
        xs = ops.arange(w, dtype="int32")[None, None, :, None]
        r = lambda v: ops.reshape(v, (-1, 1, 1, 1))  # noqa: E731
        inside = (ys >= r(y0)) & (ys < r(y0 + bh)) & (xs >= r(x0)) & (xs < r(x0 + bw))
        x = ops.cast(images, "float32")
        x = ops.where(inside, ops.take(x, perm, axis=0), x)
        lab = ops.cast(labels, "float32")
        k = ops.reshape(kept, (-1, 1))
        return {"images": x, "labels": k * lab + (1.0 - k) * ops.take(lab, perm, axis=0)}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "seed": self.seed}
