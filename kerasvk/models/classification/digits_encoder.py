"""Ganin et al.'s MNIST network (domain-adversarial training, 2016) as a registered classifier.

Encoder: Conv(32, 5×5, ReLU) → 2×2 max-pool → Conv(48, 5×5, ReLU) → 2×2 max-pool, no batch norm (source
and target batches of a DANN share no statistics). Head (``include_top=True``): Flatten → Dense(100, ReLU,
``label_fc``) → Dense(num_classes, ``predictions``). On 32×32×3 with 10 classes: 2,432 + 38,448 + 120,100
+ 1,010 = 161,990 parameters. ``include_top=False`` gives the feature maps (5×5×48 at 32×32) that
``kerasvk.training.domain_adaptation.build_dann`` puts its label and domain heads on.
"""

from __future__ import annotations

import keras

from kerasvk.models.classification.base import classifier_args, classifier_head, make_input
from kerasvk.registry import register


@register("digits_encoder", task="classification", family="dann", test_kwargs={"input_shape": (32, 32, 3)})
def digits_encoder(
    input_shape=(32, 32, 3),
    num_classes=10,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="digits_encoder",
    label_units=100,
):
    """Ganin et al.'s MNIST → MNIST-M network: conv 32@5×5, pool, conv 48@5×5, pool (161,990 parameters)."""
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation,
        min_size=14, model="digits_encoder",  # two valid 5×5 convs and two 2×2 pools leave at least 1×1
    )
    if isinstance(label_units, bool) or not isinstance(label_units, int) or label_units < 0:
        raise ValueError(
            f"digits_encoder: label_units must be an integer >= 0 (0 = no hidden layer). Received: label_units={label_units!r}"
        )
    inputs = make_input(shape, name="images")
    x = keras.layers.Conv2D(32, 5, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(48, 5, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    fc = (("label_fc", label_units),) if label_units else ()
    x = classifier_head(x, **head, head="dense", fc=fc, activation="relu")
    return keras.Model(inputs, x, name=name)
