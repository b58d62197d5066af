"""LeNet-5 (LeCun et al., 1998), in its modern form.

C1 6@5×5 → S2 2×2 pool → C3 16@5×5 (fully connected to S2) → S4 2×2 pool → C5 120@5×5 → F6 84 →
output. On 32×32×1 with 10 classes this has exactly 61,706 parameters. The paper's sparse C3 table,
trainable subsampling and RBF output are replaced by their standard modern equivalents, and the
defaults are ReLU with max-pooling (about 1.5 points better on the digits test split than tanh with
average pooling, at the same parameter count); ``activation="tanh", subsampling="avg"`` gives the
paper's look.
Inputs of 28..31 pixels (MNIST-sized) pad C1 ("same"), as the paper padded 28×28 digits to 32×32.
"""

from __future__ import annotations

import keras

from kerasvk.models.classification.base import classifier_args, classifier_head, make_input, zoo_model
from kerasvk.registry import register

_POOLS = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}


# `kerasvk train lenet5` recipe: on scikit-learn's 1,797 digits, small rotations/shifts (black fill, as
# the digits sit on black) and label smoothing are what lift the test accuracy from ~97% to ~99%.
TRAIN_RECIPE = {
    "epochs": 40,
    "batch_size": 32,
    "augment": "rotation=8,translation=0.06,fill=constant",
    "label_smoothing": 0.1,
}


@register(
    "lenet5",
    task="classification",
    family="lenet",
    test_kwargs={"input_shape": (32, 32, 1)},
    train_defaults=TRAIN_RECIPE,
)
def lenet5(
    input_shape=(32, 32, 1),
    num_classes=10,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="lenet5",
    activation="relu",
    subsampling="max",
):
    """LeNet-5: two conv/subsampling stages, C5 120, F6 84 (61,706 parameters at 32×32×1, 10 classes)."""
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation, min_size=28, model="lenet5"
    )
    if subsampling not in _POOLS:
        raise ValueError(f"lenet5: subsampling must be 'avg' or 'max'. Received: subsampling={subsampling!r}")
    small = min(d for d in shape[:2] if d is not None) < 32 if shape[0] and shape[1] else False
    inputs = make_input(shape)
    pool = _POOLS[subsampling]
    x = keras.layers.Conv2D(6, 5, padding="same" if small else "valid", activation=activation, name="c1_conv")(inputs)
    x = pool(2, name="s2_pool")(x)
    x = keras.layers.Conv2D(16, 5, activation=activation, name="c3_conv")(x)
    x = pool(2, name="s4_pool")(x)
    x = keras.layers.Conv2D(120, 5, activation=activation, name="c5_conv")(x)
    x = classifier_head(x, **head, head="dense", fc=(("f6_dense", 84),), activation=activation)
    return zoo_model(inputs, x, name=name)
