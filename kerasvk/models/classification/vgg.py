"""VGG (Simonyan & Zisserman, 2014): configurations A, B, D, E from one table.

Layer names follow keras.applications (``block1_conv1`` ... ``fc1``, ``fc2``, ``predictions``), and
``vgg16`` / ``vgg19`` at 224×224×3 with 1000 classes have exactly keras.applications' parameter counts
(138,357,544 and 143,667,240). ``batch_norm=True`` gives the "_bn" variants (conv without bias → BN → ReLU).

Pyramid outputs (``kerasvk.backbone``): block ``k`` ends with its pool at stride 2^k, so P2..P5 are
``block2_pool`` .. ``block5_pool`` (128/256/512/512 channels).
"""

from __future__ import annotations

import keras

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

# convolutions per block; filters are 64, 128, 256, 512, 512 for every variant
VGG_BLOCKS = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
VGG_FILTERS = (64, 128, 256, 512, 512)


def vgg(
    depths,
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="vgg",
    batch_norm=False,
    fc_units=4096,
    dropout=0.0,
):
    """Family builder: five conv blocks of ``depths[i]`` 3×3 convolutions, each followed by a 2×2 pool."""
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation, min_size=32, model=name
    )
    inputs = make_input(shape)
    x = inputs
    pyramid = Pyramid(stride=1)
    for b, (n, filters) in enumerate(zip(depths, VGG_FILTERS), start=1):
        for i in range(1, n + 1):
            prefix = f"block{b}_conv{i}"
            if batch_norm:
                x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=prefix)(x)
                x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
                x = keras.layers.Activation("relu", name=f"{prefix}_relu")(x)
            else:
                x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=prefix)(x)
        x = pyramid.add(keras.layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x), 2)
    x = classifier_head(x, **head, head="dense", fc=(("fc1", fc_units), ("fc2", fc_units)), dropout=dropout)
    return zoo_model(inputs, x, name=name, pyramid=pyramid)


for _v, _depths in VGG_BLOCKS.items():
    globals()[_v] = variant(
        vgg,
        _v,
        family="vgg",
        fixed={"depths": _depths},
        description=f"{_v.upper()} ({sum(_depths) + 3} weight layers; blocks {_depths})",
        test_kwargs={"input_shape": (32, 32, 3), "fc_units": 32},
        weights_loader=KerasTwin(_v.upper()) if _v in ("vgg16", "vgg19") else None,
        pyramid_levels=P2_P5,
    )
