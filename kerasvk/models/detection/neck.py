"""Detector necks over a backbone's pyramid features: FPN (top-down) and PAN-FPN (top-down, then bottom-up).

A neck takes the dict a backbone returns (``kerasvk.backbone(name)(images)``: ``{"P3": ..., "P4": ...,
"P5": ...}``, any consecutive levels of ``kerasvk.registry.PYRAMID_LEVELS``, each half the size of the one
below) and returns a dict with the same keys, every level mixed with the others:

- **FPN** (Lin et al., 2017; ``bottom_up=False``): the coarsest level goes through a 1×1 lateral conv; each
  finer level concatenates the 2× upsampled coarser output with its own features and fuses them with a
  block. Semantics flow down to the fine, high-resolution levels (what two-stage detectors read).
- **PAN-FPN** (Liu et al., 2018, as in YOLOv5/v8; ``bottom_up=True``): after the FPN, a bottom-up path
  (stride-2 3×3 conv of the finer output, concatenated with the FPN output of the level, fused by a block)
  carries precise localisation from the fine levels back up to the coarse ones.

Blocks: ``"c2f"`` (YOLOv8's cross-stage block: two 1×1 branches, ``depth`` chained 3×3–3×3 bottlenecks on
one of them, every intermediate concatenated and fused by a 1×1 conv) or ``"conv"`` (``depth`` plain
3×3 conv–BN–SiLU). The two-branch form replaces v8's 1×1-conv-then-split with two 1×1 convs (the same
function class, and no tensor split op in the graph).

These are plain functions over Keras tensors adding named keras core layers (``{name}_td_p4_cv1a_conv``,
``{name}_bu_p5_down_conv``, ...), so a model that uses them saves and loads with ``safe_mode=True``.
"""

from __future__ import annotations

import keras

from kerasvk.layers.blocks import conv_bn_act
from kerasvk.models.detection.base import BN_MOMENTUM
from kerasvk.registry import PYRAMID_LEVELS

BLOCKS = ("c2f", "conv")


def _cba(x, filters, kernel_size, *, name, strides=1, activation="silu"):
    return conv_bn_act(x, filters, kernel_size, strides=strides, activation=activation, name=name,
                       bn_momentum=BN_MOMENTUM, act_suffix="act")


def c2f_block(x, filters, *, depth=1, shortcut=False, activation="silu", name):
    """YOLOv8's C2f block (cross-stage, all bottleneck outputs concatenated); ``filters`` output channels."""
    hidden = max(1, int(filters) // 2)
    a = _cba(x, hidden, 1, activation=activation, name=f"{name}_cv1a")
    b = _cba(x, hidden, 1, activation=activation, name=f"{name}_cv1b")
    parts = [a, b]
    for i in range(int(depth)):
        y = _cba(b, hidden, 3, activation=activation, name=f"{name}_m{i + 1}_cv1")
        y = _cba(y, hidden, 3, activation=activation, name=f"{name}_m{i + 1}_cv2")
        if shortcut:
            y = keras.layers.Add(name=f"{name}_m{i + 1}_add")([b, y])
        parts.append(y)
        b = y
    x = keras.layers.Concatenate(name=f"{name}_concat")(parts)
    return _cba(x, filters, 1, activation=activation, name=f"{name}_cv2")


def conv_block(x, filters, *, depth=1, activation="silu", name):
    """``depth`` 3×3 conv–BN–activation layers (the plain alternative to C2f)."""
    for i in range(int(depth)):
        x = _cba(x, filters, 3, activation=activation, name=f"{name}_conv{i + 1}")
    return x


def _block(kind, x, filters, depth, activation, name):
    if kind == "c2f":
        return c2f_block(x, filters, depth=depth, activation=activation, name=name)
    return conv_block(x, filters, depth=depth, activation=activation, name=name)


def _check(features, width, depth, block):
    if not isinstance(features, dict) or not features:
        raise ValueError(
            "A neck takes a non-empty dict of pyramid features {level: tensor} (e.g. a backbone's outputs "
            f"{{'P3', 'P4', 'P5'}}). Received: {type(features).__name__}"
        )
    unknown = [k for k in features if k not in PYRAMID_LEVELS]
    if unknown:
        raise ValueError(f"Unknown pyramid level(s) {unknown}. Allowed: {', '.join(PYRAMID_LEVELS)}.")
    levels = sorted(features, key=PYRAMID_LEVELS.get)
    for fine, coarse in zip(levels, levels[1:]):
        if PYRAMID_LEVELS[coarse] != 2 * PYRAMID_LEVELS[fine]:
            raise ValueError(f"A neck needs consecutive pyramid levels (each stride 2x the last). Received: {levels}")
        fs, cs = tuple(features[fine].shape[1:3]), tuple(features[coarse].shape[1:3])
        if None in fs or None in cs or fs != (2 * cs[0], 2 * cs[1]):
            raise ValueError(
                f"Level {fine} must be exactly twice the size of {coarse} (input height and width a multiple of "
                f"the largest stride, {PYRAMID_LEVELS[levels[-1]]}). Received: {fine} {fs}, {coarse} {cs}"
            )
    if isinstance(width, (list, tuple)):
        widths = tuple(width)
        if len(widths) != len(levels):
            raise ValueError(f"width must be an int or one int per level {levels}. Received: width={width!r}")
    else:
        widths = (width,) * len(levels)
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"width must be a positive int or one positive int per level. Received: width={width!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1. Received: depth={depth!r}")
    if block not in BLOCKS:
        raise ValueError(f"Unknown neck block {block!r}. Allowed: {', '.join(BLOCKS)}.")
    return levels, dict(zip(levels, widths))


def feature_pyramid(features, *, width=64, depth=1, block="c2f", bottom_up=True, activation="silu", name="neck"):
    """FPN (``bottom_up=False``) or PAN-FPN (``bottom_up=True``) over ``features``; see the module docstring.

    ``features``: dict level → tensor (consecutive levels, e.g. P3/P4/P5); ``width``: output channels (an
    int, or one per level from fine to coarse); ``depth``: bottlenecks per C2f block (or convs per plain
    block). Returns a dict with the same keys; level ``k`` has ``width[k]`` channels.
    """
    levels, widths = _check(features, width, depth, block)
    top = levels[-1]
    # top-down (FPN)
    td = {top: _cba(features[top], widths[top], 1, activation=activation, name=f"{name}_lateral_{top.lower()}")}
    for fine, coarse in zip(reversed(levels[:-1]), reversed(levels[1:])):
        up = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_td_{fine.lower()}_up")(td[coarse])
        x = keras.layers.Concatenate(name=f"{name}_td_{fine.lower()}_merge")([up, features[fine]])
        td[fine] = _block(block, x, widths[fine], depth, activation, f"{name}_td_{fine.lower()}")
    if not bottom_up:
        return {k: td[k] for k in levels}
    # bottom-up (PAN)
    out = {levels[0]: td[levels[0]]}
    for fine, coarse in zip(levels, levels[1:]):
        down = _cba(out[fine], widths[fine], 3, strides=2, activation=activation,
                    name=f"{name}_bu_{coarse.lower()}_down")
        x = keras.layers.Concatenate(name=f"{name}_bu_{coarse.lower()}_merge")([down, td[coarse]])
        out[coarse] = _block(block, x, widths[coarse], depth, activation, f"{name}_bu_{coarse.lower()}")
    return out


def fpn(features, *, width=64, depth=1, block="c2f", activation="silu", name="fpn"):
    """Top-down FPN (``feature_pyramid(..., bottom_up=False)``)."""
    return feature_pyramid(features, width=width, depth=depth, block=block, bottom_up=False,
                           activation=activation, name=name)


def pan_fpn(features, *, width=64, depth=1, block="c2f", activation="silu", name="neck"):
    """PAN-FPN: top-down FPN then bottom-up path aggregation (``feature_pyramid(..., bottom_up=True)``)."""
    return feature_pyramid(features, width=width, depth=depth, block=block, bottom_up=True,
                           activation=activation, name=name)
