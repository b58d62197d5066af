"""MobileNet V1 / V2 / V3 (Howard et al. 2017; Sandler et al. 2018; Howard et al. 2019), each over a table.

- ``mobilenet_v1``: 3×3/2 stem then 13 depthwise-separable blocks (``V1_BLOCKS``), ReLU6; width multiplier
  ``alpha`` and ``depth_multiplier`` (depthwise channel multiplier, the paper's resolution multiplier is
  simply ``input_shape``). 4,253,864 parameters at 224/1000 (keras.applications ``MobileNet``).
- ``mobilenet_v2``: inverted residuals with linear bottlenecks (``V2_BLOCKS``), ReLU6, 1280-channel last
  conv: 3,538,984 parameters (keras.applications ``MobileNetV2``).
- ``mobilenet_v3_small`` / ``mobilenet_v3_large``: inverted residuals with optional squeeze-and-excitation
  (hard-sigmoid gate), ReLU or hard-swish per block (``V3_BLOCKS``), an input ``Rescaling`` to [-1, 1]
  (``include_preprocessing`` with ``input_max``, no weights) and the 1×1-conv head on the pooled map:
  2,554,968 / 5,507,432 parameters (keras.applications ``MobileNetV3Small/Large``).

Layer names and weight shapes follow keras.applications (``conv_dw_1``, ``block_3_expand``,
``expanded_conv_3_depthwise`` ...; V1/V3 classify with 1×1 convs on the pooled map, as keras does).

Pyramid outputs (``kerasvk.backbone``) are the last block at each stride (the final 1×1 expansion
conv belongs to the classifier): V1 ``conv_pw_{3,5,11,13}_relu``; V2 ``block_2_add``, ``block_5_add``,
``block_12_add``, ``block_16_project_BN`` (24/32/96/320 channels at alpha 1); V3 large
``expanded_conv_{2,5,11,14}_add`` (24/40/112/160), V3 small ``expanded_conv_project_bn``,
``expanded_conv_{2,7,10}_add`` (16/24/48/96).
"""

from __future__ import annotations

import keras

from kerasvk.layers.blocks import correct_pad, make_divisible, squeeze_excite
from kerasvk.models.classification._weights import KerasTwin
from kerasvk.models.classification.base import (
    P2_P5,
    Pyramid,
    classifier_args,
    classifier_head,
    input_rescaling,
    make_input,
    zoo_model,
)
from kerasvk.registry import register, variant

# V1: (pointwise filters, stride) of the 13 depthwise-separable blocks
V1_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)

# V2: (expansion, output filters, stride) of the 17 inverted-residual blocks
V2_BLOCKS = (
    (1, 16, 1),
    (6, 24, 2),
    (6, 24, 1),
    (6, 32, 2),
    (6, 32, 1),
    (6, 32, 1),
    (6, 64, 2),
    (6, 64, 1),
    (6, 64, 1),
    (6, 64, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 160, 2),
    (6, 160, 1),
    (6, 160, 1),
    (6, 320, 1),
)

# V3: (expansion, filters, kernel, stride, squeeze-excite, activation); kernel "k" is 5 (3 when minimalistic),
# activation "HS" is hard-swish (ReLU when minimalistic), "RE" is ReLU.
V3_BLOCKS = {
    "small": (
        (1, 16, 3, 2, True, "RE"),
        (72 / 16, 24, 3, 2, False, "RE"),
        (88 / 24, 24, 3, 1, False, "RE"),
        (4, 40, "k", 2, True, "HS"),
        (6, 40, "k", 1, True, "HS"),
        (6, 40, "k", 1, True, "HS"),
        (3, 48, "k", 1, True, "HS"),
        (3, 48, "k", 1, True, "HS"),
        (6, 96, "k", 2, True, "HS"),
        (6, 96, "k", 1, True, "HS"),
        (6, 96, "k", 1, True, "HS"),
    ),
    "large": (
        (1, 16, 3, 1, False, "RE"),
        (4, 24, 3, 2, False, "RE"),
        (3, 24, 3, 1, False, "RE"),
        (3, 40, "k", 2, True, "RE"),
        (3, 40, "k", 1, True, "RE"),
        (3, 40, "k", 1, True, "RE"),
        (6, 80, 3, 2, False, "HS"),
        (2.5, 80, 3, 1, False, "HS"),
        (2.3, 80, 3, 1, False, "HS"),
        (2.3, 80, 3, 1, False, "HS"),
        (6, 112, 3, 1, True, "HS"),
        (6, 112, 3, 1, True, "HS"),
        (6, 160, "k", 2, True, "HS"),
        (6, 160, "k", 1, True, "HS"),
        (6, 160, "k", 1, True, "HS"),
    ),
}
V3_LAST_POINT = {"small": 1024, "large": 1280}


def _check_alpha(alpha, name):
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and alpha > 0):
        raise ValueError(
            f"{name}: alpha (width multiplier) must be a number > 0, e.g. 0.25, 0.5, 0.75, 1.0. "
            f"Received: alpha={alpha!r}"
        )


def _validate(name, alpha, *common):
    """Check alpha and the common arguments (signature order); return ``(input shape, head arguments)``."""
    _check_alpha(alpha, name)
    return classifier_args(*common, min_size=32, model=name)


def _bn(name, epsilon=1e-3, momentum=0.99):
    return keras.layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=name)


@register(
    "mobilenet_v1",
    task="classification",
    family="mobilenet",
    test_kwargs={"input_shape": (32, 32, 3), "alpha": 0.25},
    weights_loader=KerasTwin("MobileNet"),
    pyramid_levels=P2_P5,
)
def mobilenet_v1(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="mobilenet_v1",
    alpha=1.0,
    depth_multiplier=1,
    dropout=1e-3,
):
    """MobileNet V1: depthwise-separable convs; ``alpha`` width, ``depth_multiplier`` depthwise channels."""
    common = (input_shape, num_classes, include_top, pooling, classifier_activation)
    shape, head = _validate(name, alpha, *common)
    if not (isinstance(depth_multiplier, int) and depth_multiplier >= 1):
        raise ValueError(
            f"{name}: depth_multiplier must be an integer >= 1. "
            f"Received: depth_multiplier={depth_multiplier!r}"
        )
    inputs = make_input(shape)
    x = keras.layers.Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="conv1")(
        inputs
    )
    x = _bn("conv1_bn")(x)
    x = keras.layers.ReLU(6.0, name="conv1_relu")(x)
    pyramid = Pyramid(stride=2)
    for i, (filters, strides) in enumerate(V1_BLOCKS, start=1):
        if strides == 2:
            x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{i}")(x)
        x = keras.layers.DepthwiseConv2D(
            3,
            strides=strides,
            padding="same" if strides == 1 else "valid",
            depth_multiplier=depth_multiplier,
            use_bias=False,
            name=f"conv_dw_{i}",
        )(x)
        x = _bn(f"conv_dw_{i}_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"conv_dw_{i}_relu")(x)
        x = keras.layers.Conv2D(int(filters * alpha), 1, padding="same", use_bias=False, name=f"conv_pw_{i}")(
            x
        )
        x = _bn(f"conv_pw_{i}_bn")(x)
        x = pyramid.add(keras.layers.ReLU(6.0, name=f"conv_pw_{i}_relu")(x), strides)
    # keras.applications' head: a 1×1 conv on the pooled map (its flatten is keras' "reshape_2")
    x = classifier_head(x, **head, head="conv", dropout=dropout, logits="conv_preds", flatten="reshape_2")
    return zoo_model(inputs, x, name=name, pyramid=pyramid)


def inverted_residual_v2(x, *, expansion, filters, strides, block_id):
    """MobileNetV2 block: 1×1 expand (ReLU6) → 3×3 depthwise (ReLU6) → 1×1 linear projection (+ identity)."""
    in_channels = x.shape[-1]
    inputs = x
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
        x = keras.layers.Conv2D(
            expansion * in_channels, 1, padding="same", use_bias=False, name=f"{prefix}expand"
        )(x)
        x = _bn(f"{prefix}expand_BN", momentum=0.999)(x)
        x = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    if strides == 2:
        x = keras.layers.ZeroPadding2D(correct_pad(x, 3), name=f"{prefix}pad")(x)
    x = keras.layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding="same" if strides == 1 else "valid",
        use_bias=False,
        name=f"{prefix}depthwise",
    )(x)
    x = _bn(f"{prefix}depthwise_BN", momentum=0.999)(x)
    x = keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = _bn(f"{prefix}project_BN", momentum=0.999)(x)
    if in_channels == filters and strides == 1:
        x = keras.layers.Add(name=f"{prefix}add")([inputs, x])
    return x


@register(
    "mobilenet_v2",
    task="classification",
    family="mobilenet",
    test_kwargs={"input_shape": (32, 32, 3), "alpha": 0.35},
    weights_loader=KerasTwin("MobileNetV2"),
    pyramid_levels=P2_P5,
)
def mobilenet_v2(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="mobilenet_v2",
    alpha=1.0,
):
    """MobileNet V2: inverted residuals and linear bottlenecks; ``alpha`` width multiplier."""
    common = (input_shape, num_classes, include_top, pooling, classifier_activation)
    shape, head = _validate(name, alpha, *common)
    inputs = make_input(shape)
    x = keras.layers.Conv2D(
        make_divisible(32 * alpha, 8), 3, strides=2, padding="same", use_bias=False, name="Conv1"
    )(inputs)
    x = _bn("bn_Conv1", momentum=0.999)(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    pyramid = Pyramid(stride=2)
    for i, (expansion, filters, strides) in enumerate(V2_BLOCKS):
        x = inverted_residual_v2(
            x,
            expansion=expansion,
            filters=make_divisible(int(filters * alpha), 8),
            strides=strides,
            block_id=i,
        )
        pyramid.add(x, strides)
    last = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = keras.layers.Conv2D(last, 1, use_bias=False, name="Conv_1")(x)
    x = _bn("Conv_1_bn", momentum=0.999)(x)
    x = keras.layers.ReLU(6.0, name="out_relu")(x)
    return zoo_model(inputs, classifier_head(x, **head), name=name, pyramid=pyramid)


def inverted_residual_v3(x, *, expansion, filters, kernel_size, strides, se_ratio, activation, block_id):
    """MobileNetV3 block: expand → depthwise → [SE, hard-sigmoid gate] → linear projection (+ identity)."""
    inputs = x
    in_channels = x.shape[-1]
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    expanded = make_divisible(in_channels * expansion)
    if block_id:
        x = keras.layers.Conv2D(expanded, 1, padding="same", use_bias=False, name=f"{prefix}expand")(x)
        x = _bn(f"{prefix}expand_bn", momentum=0.999)(x)
        x = keras.layers.Activation(activation, name=f"{prefix}expand_{activation}")(x)
    if strides == 2:
        x = keras.layers.ZeroPadding2D(correct_pad(x, kernel_size), name=f"{prefix}depthwise_pad")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="same" if strides == 1 else "valid",
        use_bias=False,
        name=f"{prefix}depthwise",
    )(x)
    x = _bn(f"{prefix}depthwise_bn", momentum=0.999)(x)
    x = keras.layers.Activation(activation, name=f"{prefix}depthwise_{activation}")(x)
    if se_ratio:
        x = squeeze_excite(
            x,
            make_divisible(expanded * se_ratio),
            activation="relu",
            gate="hard_sigmoid",
            name=f"{prefix}squeeze_excite",
        )
    x = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = _bn(f"{prefix}project_bn", momentum=0.999)(x)
    if strides == 1 and in_channels == filters:
        x = keras.layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def mobilenet_v3(
    model_type="large",
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    alpha=1.0,
    minimalistic=False,
    dropout=0.2,
    include_preprocessing=True,
    input_max=1.0,
):
    """MobileNet V3 ``model_type`` "small" or "large" (``V3_BLOCKS``).

    Family options: ``alpha`` width multiplier; ``minimalistic`` (3×3 kernels, ReLU, no SE);
    ``dropout`` before the classifier; ``include_preprocessing`` (``Rescaling`` of
    ``[0, input_max]`` to [-1, 1]; ``input_max`` 1.0 for kerasvk's [0, 1] images, 255 for raw pixels as
    keras.applications expects).
    """
    if model_type not in V3_BLOCKS:
        raise ValueError(
            f"mobilenet_v3: model_type must be 'small' or 'large'. Received: model_type={model_type!r}"
        )
    name = name or f"mobilenet_v3_{model_type}"
    common = (input_shape, num_classes, include_top, pooling, classifier_activation)
    shape, head = _validate(name, alpha, *common)
    if not 0 <= dropout < 1:
        raise ValueError(f"{name}: dropout must be in [0, 1). Received: dropout={dropout!r}")
    kernel, hs, se_ratio = (3, "relu", None) if minimalistic else (5, "hard_swish", 0.25)
    inputs = make_input(shape)
    x = inputs
    if include_preprocessing:
        x = input_rescaling(x, input_max, symmetric=True, model=name)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="conv")(x)
    x = _bn("conv_bn", momentum=0.999)(x)
    x = keras.layers.Activation(hs, name=f"conv_{hs}")(x)
    pyramid = Pyramid(stride=2)
    for i, (expansion, filters, k, strides, se, act) in enumerate(V3_BLOCKS[model_type]):
        x = inverted_residual_v3(
            x,
            expansion=expansion,
            filters=make_divisible(filters * alpha),
            kernel_size=kernel if k == "k" else k,
            strides=strides,
            se_ratio=se_ratio if se else None,
            activation=hs if act == "HS" else "relu",
            block_id=i,
        )
        pyramid.add(x, strides)
    x = keras.layers.Conv2D(
        make_divisible(x.shape[-1] * 6), 1, padding="same", use_bias=False, name="conv_1"
    )(x)
    x = _bn("conv_1_bn", momentum=0.999)(x)
    x = keras.layers.Activation(hs, name=f"conv_1_{hs}")(x)
    last_point = V3_LAST_POINT[model_type]
    if alpha > 1.0:
        last_point = make_divisible(last_point * alpha)
    x = classifier_head(x, **head, head="conv", hidden=(last_point, hs), dropout=dropout, logits="logits")
    return zoo_model(inputs, x, name=name, pyramid=pyramid)


mobilenet_v3_small, mobilenet_v3_large = (
    variant(
        mobilenet_v3,
        f"mobilenet_v3_{t}",
        family="mobilenet",
        fixed={"model_type": t},
        description=f"MobileNet V3 {t} (hard-swish, SE) as keras.applications MobileNetV3{t.title()}",
        test_kwargs={"input_shape": (32, 32, 3), "alpha": 0.75},
        weights_loader=KerasTwin(f"MobileNetV3{t.title()}"),
        pyramid_levels=P2_P5,
    )
    for t in ("small", "large")
)
