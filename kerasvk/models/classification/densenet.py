"""DenseNet-BC (Huang et al., 2017): DenseNet-121/169/201 from one table.

7×7/2 stem → 3×3/2 max-pool → four dense blocks (``DENSENET_BLOCKS``) joined by transition layers
(BN → ReLU → 1×1 conv compressing channels by ``compression`` → 2×2 average pool) → BN → ReLU → head.
Each dense layer is BN → ReLU → 1×1 conv (``bn_size``·k filters, the bottleneck) → BN → ReLU → 3×3 conv
(k = ``growth_rate`` filters), concatenated onto its input. Convs have no bias; BN ε 1.001e-5.
Names and parameter counts are keras.applications' (``conv2_block1_1_conv``, ``pool2_conv``, ...):
8,062,504 / 14,307,880 / 20,242,984 at 224×224×3 with 1000 classes.

Pyramid outputs (``kerasvk.backbone``) are each dense block's last concatenation, as keras-hub's
DenseNet: P2..P5 = ``conv2_block6_concat``, ``conv3_block12_concat``, ``conv4_block24_concat``,
``conv5_block16_concat`` for DenseNet-121 (256/512/1024/1024 channels; the transitions that follow
belong to the next stride, the final BN-ReLU to the classifier).
"""

from __future__ import annotations

import keras

from kerasvk.layers.blocks import conv_bn_act
from kerasvk.models.classification._weights import KerasTwin
from kerasvk.models.classification.base import (
    P2_P5,
    Pyramid,
    classifier_args,
    classifier_head,
    make_input,
    zoo_model,
)
from kerasvk.registry import variant

BN_EPSILON = 1.001e-5

# depth -> dense layers in each of the four dense blocks
DENSENET_BLOCKS = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
}


def dense_layer(x, growth_rate, *, bn_size=4, name):
    """BN-ReLU-Conv(1×1, bn_size·k)-BN-ReLU-Conv(3×3, k), concatenated onto ``x``."""
    y = keras.layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_0_bn")(x)
    y = keras.layers.Activation("relu", name=f"{name}_0_relu")(y)
    y = conv_bn_act(y, bn_size * growth_rate, 1, bn_epsilon=BN_EPSILON, name=f"{name}_1")
    y = keras.layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return keras.layers.Concatenate(axis=3, name=f"{name}_concat")([x, y])


def transition(x, compression, *, name):
    """BN-ReLU-Conv(1×1, ⌊channels·compression⌋)-AvgPool(2×2)."""
    x = keras.layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    x = keras.layers.Conv2D(int(x.shape[-1] * compression), 1, use_bias=False, name=f"{name}_conv")(x)
    return keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def densenet(
    depth=121,
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    growth_rate=32,
    compression=0.5,
    bn_size=4,
    blocks=None,
):
    """DenseNet-BC of ``depth`` in ``DENSENET_BLOCKS`` (121, 169, 201).

    Family options (the paper's hyper-parameters): ``growth_rate`` k (32), ``compression`` θ of the
    transition layers (0.5), ``bn_size`` (bottleneck width = bn_size·k, 4); ``blocks`` (4 ints, like
    keras' ``DenseNet(blocks)``) overrides the table's dense layers per block.
    """
    if depth not in DENSENET_BLOCKS:
        raise ValueError(
            f"densenet: depth must be one of {sorted(DENSENET_BLOCKS)}. Received: depth={depth!r}"
        )
    name = name or f"densenet{depth}"
    if not (isinstance(growth_rate, int) and growth_rate >= 1):
        raise ValueError(
            f"{name}: growth_rate must be an integer >= 1. Received: growth_rate={growth_rate!r}"
        )
    if not 0 < compression <= 1:
        raise ValueError(f"{name}: compression must be in (0, 1]. Received: compression={compression!r}")
    if not (isinstance(bn_size, int) and bn_size >= 1):
        raise ValueError(f"{name}: bn_size must be an integer >= 1. Received: bn_size={bn_size!r}")
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation, min_size=32, model=name
    )
    inputs = make_input(shape)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = conv_bn_act(x, 2 * growth_rate, 7, strides=2, padding="valid", bn_epsilon=BN_EPSILON, name="conv1")
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    blocks = DENSENET_BLOCKS[depth] if blocks is None else tuple(blocks)
    if len(blocks) != 4 or not all(isinstance(b, int) and b >= 1 for b in blocks):
        raise ValueError(f"{name}: blocks must be 4 integers >= 1. Received: blocks={blocks!r}")
    pyramid = Pyramid(stride=4)
    for s, n in enumerate(blocks):
        for i in range(n):
            x = dense_layer(x, growth_rate, bn_size=bn_size, name=f"conv{s + 2}_block{i + 1}")
        pyramid.add(x)
        if s < len(blocks) - 1:
            x = transition(x, compression, name=f"pool{s + 2}")
            pyramid.stride *= 2
    x = keras.layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    return zoo_model(inputs, classifier_head(x, **head), name=name, pyramid=pyramid)


densenet121, densenet169, densenet201 = (
    variant(
        densenet,
        f"densenet{d}",
        family="densenet",
        fixed={"depth": d},
        description=f"DenseNet-{d} (dense blocks {DENSENET_BLOCKS[d]}, growth rate 32, compression 0.5)",
        test_kwargs={"input_shape": (32, 32, 3), "growth_rate": 4, "bn_size": 2, "blocks": (1, 1, 1, 1)},
        weights_loader=KerasTwin(f"DenseNet{d}"),
        pyramid_levels=P2_P5,
    )
    for d in DENSENET_BLOCKS
)
