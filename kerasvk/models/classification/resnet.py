"""ResNet (He et al., 2016): ImageNet ResNet-18/34/50/101/152 and the CIFAR ResNets of Table 6.

One builder, one table. ``resnet(depth)`` looks the depth up in ``RESNET_STAGES`` (block type and
blocks per stage) and stacks stages ``conv2`` .. ``conv5`` with keras.applications names
(``conv2_block1_1_conv``, ``conv2_block1_0_conv`` for the projection shortcut, ``conv2_block1_out``).

- Bottleneck variants (50/101/152) are keras.applications' ResNet v1 exactly: 7×7/2 stem, 3×3/2 max-pool,
  1×1 → 3×3 → 1×1(×4) blocks with the stride on the first 1×1 (Caffe layout), conv biases, BN ε 1.001e-5,
  projection shortcuts where the shape changes. At 224×224×3 / 1000 classes: 25,636,712 / 44,707,176 /
  60,419,944 parameters, identical to ``keras.applications.ResNet50/101/152``.
- Basic-block variants (18/34) follow the paper / torchvision: two 3×3 convs without bias (the stride on
  the first), projection shortcuts where the shape changes: 11,689,512 / 21,797,672 parameters.
- ``cifar_resnet(depth)`` with depth = 6n+2 (``resnet20``, ``resnet56`` registered): 3×3 16-filter stem,
  three stages of n basic blocks with 16/32/64 filters, global average pool, dense. Shortcuts are the
  paper's **option A** by default (identity; stride-2 subsample and zero-padded channels where the
  shape changes, no parameters: resnet20 has 0.27M, resnet56 0.85M parameters as in Table 6);
  ``shortcut="B"`` uses 1×1 projection shortcuts instead.

Pyramid outputs (``kerasvk.backbone``) are the last block of each stage: P2..P5 =
``conv2_block{n}_out`` .. ``conv5_block{n}_out`` (strides 4..32; 256/512/1024/2048 channels for
ResNet-50, 64/128/256/512 for ResNet-18/34). The CIFAR ResNets run at strides 1, 2, 4: only P2
(``conv4_block{n}_out``).
"""

from __future__ import annotations

import keras

from kerasvk.layers import PadChannelsShortcut
from kerasvk.layers.blocks import conv_bn_act
from kerasvk.models.checks import check_number
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

# depth -> (block type, blocks per stage conv2..conv5, conv bias like the reference)
RESNET_STAGES = {
    18: ("basic", (2, 2, 2, 2), False),
    34: ("basic", (3, 4, 6, 3), False),
    50: ("bottleneck", (3, 4, 6, 3), True),
    101: ("bottleneck", (3, 4, 23, 3), True),
    152: ("bottleneck", (3, 8, 36, 3), True),
}
STAGE_FILTERS = (64, 128, 256, 512)  # bottleneck width (outputs are 4x for bottleneck blocks)

# CIFAR ResNets of the paper's Table 6: depth = 6n + 2, n blocks per stage
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_FILTERS = (16, 32, 64)


def _scale(filters, width_multiplier):
    return max(1, int(round(filters * width_multiplier)))


def basic_block(x, filters, *, strides=1, use_bias=False, shortcut="B", name):
    """Two 3×3 convs (stride on the first); projection (B) or zero-pad (A) shortcut if the shape changes."""
    if strides != 1 or x.shape[-1] != filters:
        if shortcut == "A":
            sc = PadChannelsShortcut(filters, strides, name=f"{name}_0_pad")(x)
        else:
            sc = conv_bn_act(
                x,
                filters,
                1,
                strides=strides,
                use_bias=use_bias,
                activation=None,
                bn_epsilon=BN_EPSILON,
                name=f"{name}_0",
            )
    else:
        sc = x
    y = conv_bn_act(
        x, filters, 3, strides=strides, use_bias=use_bias, bn_epsilon=BN_EPSILON, name=f"{name}_1"
    )
    y = conv_bn_act(
        y, filters, 3, use_bias=use_bias, activation=None, bn_epsilon=BN_EPSILON, name=f"{name}_2"
    )
    y = keras.layers.Add(name=f"{name}_add")([sc, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_block(x, filters, *, strides=1, use_bias=True, expansion=4, name):
    """keras.applications ResNet v1 block: 1×1 (stride) → 3×3 → 1×1 (×``expansion``), projection if needed."""
    out = expansion * filters
    if strides != 1 or x.shape[-1] != out:
        sc = conv_bn_act(
            x,
            out,
            1,
            strides=strides,
            use_bias=use_bias,
            activation=None,
            bn_epsilon=BN_EPSILON,
            name=f"{name}_0",
        )
    else:
        sc = x
    y = conv_bn_act(
        x, filters, 1, strides=strides, use_bias=use_bias, bn_epsilon=BN_EPSILON, name=f"{name}_1"
    )
    y = conv_bn_act(y, filters, 3, use_bias=use_bias, bn_epsilon=BN_EPSILON, name=f"{name}_2")
    y = conv_bn_act(y, out, 1, use_bias=use_bias, activation=None, bn_epsilon=BN_EPSILON, name=f"{name}_3")
    y = keras.layers.Add(name=f"{name}_add")([sc, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def resnet(
    depth=50,
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    width_multiplier=1.0,
    use_bias=None,
    blocks_per_stage=None,
):
    """ImageNet ResNet of ``depth`` in ``RESNET_STAGES`` (18, 34, 50, 101, 152).

    Family options: ``width_multiplier`` scales every convolution's filters (1.0 = the paper network);
    ``use_bias`` overrides the reference's conv-bias choice (None: keras v1 biases for bottleneck depths,
    none for basic-block depths); ``blocks_per_stage`` (4 ints, like keras' ``stack_fn`` or timm's
    ``layers``) overrides the table's blocks per stage, keeping ``depth``'s block type.
    """
    if depth not in RESNET_STAGES:
        raise ValueError(
            f"resnet: depth must be one of {sorted(RESNET_STAGES)} (ImageNet ResNets; use cifar_resnet for "
            f"depths 6n+2 such as {CIFAR_DEPTHS}). Received: depth={depth!r}"
        )
    name = name or f"resnet{depth}"
    width_multiplier = check_number("width_multiplier", width_multiplier, low=0, low_open=True, model=name)
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation, min_size=32, model=name
    )
    kind, blocks, ref_bias = RESNET_STAGES[depth]
    if blocks_per_stage is not None:
        if len(blocks_per_stage) != 4 or not all(isinstance(b, int) and b >= 1 for b in blocks_per_stage):
            raise ValueError(
                f"{name}: blocks_per_stage must be 4 integers >= 1. "
                f"Received: blocks_per_stage={blocks_per_stage!r}"
            )
        blocks = tuple(blocks_per_stage)
    bias = ref_bias if use_bias is None else bool(use_bias)

    inputs = make_input(shape)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = conv_bn_act(
        x,
        _scale(64, width_multiplier),
        7,
        strides=2,
        padding="valid",
        use_bias=bias,
        bn_epsilon=BN_EPSILON,
        name="conv1",
    )
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    pyramid = Pyramid(stride=4)
    block = basic_block if kind == "basic" else bottleneck_block
    for s, (n, filters) in enumerate(zip(blocks, STAGE_FILTERS)):
        filters = _scale(filters, width_multiplier)
        for b in range(n):
            strides = 2 if (b == 0 and s > 0) else 1
            x = block(x, filters, strides=strides, use_bias=bias, name=f"conv{s + 2}_block{b + 1}")
            pyramid.add(x, strides)
    return zoo_model(inputs, classifier_head(x, **head), name=name, pyramid=pyramid)


def cifar_resnet(
    depth=20,
    input_shape=(32, 32, 3),
    num_classes=10,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    shortcut="A",
    width_multiplier=1.0,
    blocks_per_stage=None,
):
    """CIFAR ResNet of depth 6n+2 (paper Table 6: 20, 32, 44, 56, 110, 1202) with 16/32/64-filter stages.

    Family options: ``shortcut`` "A" (identity / zero-padded, the paper's CIFAR choice) or "B"
    (1×1 projection where the shape changes); ``width_multiplier`` scales every convolution's filters;
    ``blocks_per_stage`` overrides n = (depth - 2) / 6.
    """
    if depth not in CIFAR_DEPTHS:
        raise ValueError(
            f"cifar_resnet: depth must be one of {CIFAR_DEPTHS} (6n+2, the paper's Table 6). "
            f"Received: depth={depth!r}"
        )
    name = name or f"resnet{depth}"
    if shortcut not in ("A", "B"):
        raise ValueError(
            f"{name}: shortcut must be 'A' (zero-pad) or 'B' (projection). Received: shortcut={shortcut!r}"
        )
    width_multiplier = check_number("width_multiplier", width_multiplier, low=0, low_open=True, model=name)
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation, min_size=4, model=name
    )
    n = (depth - 2) // 6
    if blocks_per_stage is not None:
        if not (isinstance(blocks_per_stage, int) and blocks_per_stage >= 1):
            raise ValueError(
                f"{name}: blocks_per_stage must be an integer >= 1. "
                f"Received: blocks_per_stage={blocks_per_stage!r}"
            )
        n = blocks_per_stage
    inputs = make_input(shape)
    x = conv_bn_act(inputs, _scale(16, width_multiplier), 3, bn_epsilon=BN_EPSILON, name="conv1")
    pyramid = Pyramid(stride=1)
    for s, filters in enumerate(CIFAR_FILTERS):
        filters = _scale(filters, width_multiplier)
        for b in range(n):
            strides = 2 if (b == 0 and s > 0) else 1
            x = basic_block(x, filters, strides=strides, shortcut=shortcut, name=f"conv{s + 2}_block{b + 1}")
            pyramid.add(x, strides)
    return zoo_model(inputs, classifier_head(x, **head), name=name, pyramid=pyramid)


# tiny test builds: the full graph is covered by the exact parameter counts in tests/test_zoo.py
_TINY = {"input_shape": (32, 32, 3), "width_multiplier": 0.125, "blocks_per_stage": (1, 1, 1, 1)}

resnet18, resnet34, resnet50, resnet101, resnet152 = (
    variant(
        resnet,
        f"resnet{d}",
        family="resnet",
        fixed={"depth": d},
        description=f"ResNet-{d} ({RESNET_STAGES[d][0]} blocks {RESNET_STAGES[d][1]})",
        test_kwargs=_TINY,
        weights_loader=KerasTwin(f"ResNet{d}") if RESNET_STAGES[d][0] == "bottleneck" else None,
        pyramid_levels=P2_P5,
    )
    for d in RESNET_STAGES
)

# The paper's CIFAR recipe (§4.2) scaled to small embedded sets: SGD momentum 0.9 (Nesterov), lr 0.1,
# weight decay 1e-4 (an L2 loss of 5e-5·Σw², the same gradient), 4-pixel translations; cosine decay with
# a one-epoch warm-up replaces the step schedule (30 epochs rather than 64k iterations on 50k images).
CIFAR_RECIPE = {
    "epochs": 30,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.1,
    "schedule": "cosine",
    "warmup": 1,
    "l2": 5e-5,
    "augment": "translation=0.125,fill=constant",
}

resnet20, resnet56 = (
    variant(
        cifar_resnet,
        f"resnet{d}",
        family="resnet_cifar",
        fixed={"depth": d},
        description=f"CIFAR ResNet-{d} (3 stages of {(d - 2) // 6} basic blocks, 16/32/64 filters, option A)",
        test_kwargs={"input_shape": (16, 16, 3), "width_multiplier": 0.5, "blocks_per_stage": 1},
        train_defaults=CIFAR_RECIPE,
        pyramid_levels=("P2",),
    )
    for d in (20, 56)
)
