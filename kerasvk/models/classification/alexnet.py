"""AlexNet (Krizhevsky et al., 2012) in the single-tower layout torchvision uses.

Five convolutions (64@11×11/4, 192@5×5, 384, 256, 256 @3×3) with three overlapping 3×3/2 max-pools,
an adaptive 6×6 average pool, then dropout → FC 4096 → dropout → FC 4096 → classes
(61,100,840 parameters at 224×224×3 and 1000 classes). The adaptive pool makes the head independent
of the input size; on small inputs a max-pool whose input is under 3 pixels pads ("same") instead of
shrinking the map to nothing, so 32×32 images work too.
"""

from __future__ import annotations

import keras

from kerasvk.models.classification.base import classifier_args, classifier_head, make_input, zoo_model
from kerasvk.registry import register


def _pool(x, name):
    size = x.shape[1]
    padding = "valid" if size is None or size >= 3 else "same"
    return keras.layers.MaxPooling2D(3, strides=2, padding=padding, name=name)(x)


@register(
    "alexnet",
    task="classification",
    family="alexnet",
    test_kwargs={"input_shape": (32, 32, 3), "fc_units": 64},
)
def alexnet(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="alexnet",
    dropout=0.5,
    fc_units=4096,
):
    """AlexNet: 5 conv + 3 FC layers with ReLU and dropout (torchvision layout)."""
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation, min_size=11, model="alexnet"
    )
    inputs = make_input(shape)
    x = keras.layers.ZeroPadding2D(2, name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(64, 11, strides=4, activation="relu", name="conv1")(x)
    x = _pool(x, "pool1")
    x = keras.layers.Conv2D(192, 5, padding="same", activation="relu", name="conv2")(x)
    x = _pool(x, "pool2")
    x = keras.layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.Conv2D(256, 3, padding="same", activation="relu", name="conv4")(x)
    x = keras.layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    x = _pool(x, "pool5")
    x = classifier_head(
        x,
        **head,
        head="dense",
        pool_to=(6, 6),
        fc=(("fc6", fc_units), ("fc7", fc_units)),
        dropout=dropout,
        dropout_first=True,
    )
    return zoo_model(inputs, x, name=name)
