"""RoIAlign (He et al., 2017) as separable interpolation matrices, and its multi-level FPN form.

Convention (torchvision ``roi_align(..., aligned=True)``, Detectron2's ``ROIAlignV2``): a box ``(x1, y1,
x2, y2)`` in image pixels maps to ``(x·scale − 0.5)`` on a feature map of stride ``1/scale`` (pixel centres
at integer coordinates); the box is cut into ``output_size × output_size`` bins, each bin is sampled at
``sampling_ratio × sampling_ratio`` regularly spaced points (``(i + 0.5) / sampling_ratio`` of the bin),
each point is bilinearly interpolated (a point with ``y < −1`` or ``y > H`` contributes 0; otherwise it
is clamped into ``[0, H − 1]``) and the bin is the mean of its points.

Bilinear interpolation and the mean over the sample grid are both separable in y and x, so a box's
output is ``Wy · F · Wxᵀ`` per channel with ``Wy`` ``(S, H)`` and ``Wx`` ``(S, W)``: every row of ``Wy`` is the
mean over the bin's sample rows of the tent ``max(0, 1 − |y − h|)``. That is two batched matmuls
(``einsum``), static-shaped, differentiable in the features, and with no gather of ``S²·r²·4`` corners per
box. ``roi_align`` is one level; ``RoIAlign`` (the layer) assigns each box to a pyramid level by its size,
FPN eq. 1: ``k = ⌊k₀ + log₂(√(wh) / canonical_size)⌋`` clamped to the levels it has.
"""

from __future__ import annotations

import math

import keras
from keras import ops


def interpolation_weights(lo, hi, size, output_size, sampling_ratio=2, aligned=True, scale=1.0):
    """``(..., output_size, size)`` RoIAlign weights along one axis for box edges ``lo``, ``hi`` ``(...)``.

    ``lo``/``hi`` are in image pixels; ``scale`` maps them to the feature map (1/stride).
    """
    lo = ops.cast(lo, "float32") * scale
    hi = ops.cast(hi, "float32") * scale
    if aligned:
        lo, hi = lo - 0.5, hi - 0.5
        extent = hi - lo
    else:
        extent = ops.maximum(hi - lo, 1.0)
    bin_size = extent / float(output_size)
    r = int(sampling_ratio)
    # sample offsets in bins: p + (i + 0.5) / r for p in bins, i in samples → (S, r)
    offsets = (ops.arange(output_size, dtype="float32")[:, None]
               + (ops.arange(r, dtype="float32")[None, :] + 0.5) / r)
    pts = ops.expand_dims(ops.expand_dims(lo, -1), -1) + offsets * ops.expand_dims(ops.expand_dims(bin_size, -1), -1)
    inside = ops.logical_and(pts >= -1.0, pts <= float(size))
    pts = ops.clip(pts, 0.0, float(size - 1))
    grid = ops.arange(size, dtype="float32")
    tent = ops.maximum(0.0, 1.0 - ops.abs(ops.expand_dims(pts, -1) - grid))  # (..., S, r, size)
    tent = tent * ops.expand_dims(ops.cast(inside, "float32"), -1)
    return ops.mean(tent, axis=-2)


def roi_align(features, boxes, output_size=7, scale=1.0, sampling_ratio=2, aligned=True):
    """RoIAlign of ``boxes`` ``(B, N, 4)`` xyxy image pixels on ``features`` ``(B, H, W, C)`` → ``(B, N, S, S, C)``."""
    features = ops.convert_to_tensor(features)
    h, w = int(features.shape[1]), int(features.shape[2])
    boxes = ops.cast(boxes, "float32")
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    wy = interpolation_weights(y1, y2, h, output_size, sampling_ratio, aligned, scale)  # (B, N, S, H)
    wx = interpolation_weights(x1, x2, w, output_size, sampling_ratio, aligned, scale)  # (B, N, S, W)
    f = ops.cast(features, "float32")
    rows = ops.einsum("bnph,bhwc->bnpwc", wy, f)
    return ops.einsum("bnpwc,bnqw->bnpqc", rows, wx)


def assign_levels(boxes, levels, canonical_size=224.0, canonical_level=4):
    """FPN level index (0-based into ``levels``, e.g. (2, 3, 4, 5)) of each box ``(..., 4)`` xyxy."""
    boxes = ops.cast(boxes, "float32")
    area = ops.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * ops.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    k = ops.floor(canonical_level + ops.log(ops.sqrt(area) / float(canonical_size) + 1e-8) / math.log(2.0))
    k = ops.clip(k, float(levels[0]), float(levels[-1]))
    return ops.cast(k, "int32") - int(levels[0])


@keras.saving.register_keras_serializable(package="kerasvk")
class RoIAlign(keras.layers.Layer):
    """Multi-level RoIAlign: ``layer([boxes, *feature_maps])`` → ``(B, N, S, S, C)``.

    ``boxes`` ``(B, N, 4)`` xyxy pixels of the model input; ``feature_maps`` one per pyramid level in
    ``levels`` (strides ``2**level``), all with ``C`` channels. Each box is pooled from the level of its
    size (module docstring); zero-area (padding) boxes give finite outputs.
    """

    def __init__(self, output_size=7, sampling_ratio=2, levels=(2, 3, 4, 5), canonical_size=224.0,
                 canonical_level=4, aligned=True, **kwargs):
        super().__init__(**kwargs)
        for key, v in (("output_size", output_size), ("sampling_ratio", sampling_ratio)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key} must be an integer >= 1. Received: {key}={v!r}")
        lv = tuple(levels) if isinstance(levels, (tuple, list)) else ()
        if not lv or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in lv) or list(lv) != list(
                range(lv[0], lv[0] + len(lv))):
            raise ValueError(f"levels must be consecutive pyramid level numbers, e.g. (2, 3, 4, 5). Received: levels={levels!r}")
        if not isinstance(canonical_size, (int, float)) or canonical_size <= 0:
            raise ValueError(f"canonical_size must be a number > 0. Received: canonical_size={canonical_size!r}")
        self.output_size = int(output_size)
        self.sampling_ratio = int(sampling_ratio)
        self.levels = tuple(int(v) for v in lv)
        self.canonical_size = float(canonical_size)
        self.canonical_level = int(canonical_level)
        self.aligned = bool(aligned)

    def call(self, inputs):
        boxes, *maps = inputs
        if len(maps) != len(self.levels):
            raise ValueError(f"RoIAlign expects boxes and {len(self.levels)} feature maps (levels {self.levels}). "
                             f"Received: {len(maps)} feature maps")
        boxes = ops.stop_gradient(ops.cast(boxes, "float32"))
        level = assign_levels(boxes, self.levels, self.canonical_size, self.canonical_level)
        out = None
        for i, (lvl, fmap) in enumerate(zip(self.levels, maps)):
            pooled = roi_align(fmap, boxes, self.output_size, 1.0 / 2 ** lvl, self.sampling_ratio, self.aligned)
            sel = ops.cast(level == i, pooled.dtype)[:, :, None, None, None]
            out = pooled * sel if out is None else out + pooled * sel
        return out

    def compute_output_shape(self, input_shapes):
        boxes, first = input_shapes[0], input_shapes[1]
        return (boxes[0], boxes[1], self.output_size, self.output_size, first[-1])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size, "sampling_ratio": self.sampling_ratio,
                "levels": list(self.levels), "canonical_size": self.canonical_size,
                "canonical_level": self.canonical_level, "aligned": self.aligned}
