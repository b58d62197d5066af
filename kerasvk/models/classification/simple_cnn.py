"""The classic teaching CNN: three [conv-ReLU-conv-ReLU-pool] blocks and a dense/dropout head."""

from __future__ import annotations

import keras

from kerasvk.models.checks import check_int, check_int_sequence, check_number
from kerasvk.models.classification.base import classifier_args, classifier_head, make_input, zoo_model
from kerasvk.registry import register


@register("simple_cnn", task="classification", family="simple_cnn", test_kwargs={"input_shape": (16, 16, 3)})
def simple_cnn(
    input_shape=(32, 32, 3),
    num_classes=10,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="simple_cnn",
    filters=(32, 64, 128),
    dense_units=256,
    dropout=0.5,
):
    """Three [conv-relu-conv-relu-maxpool] blocks, then Dense(dense_units) → Dropout → predictions.

    ``filters``: one entry per block (at least one); ``dense_units`` >= 1; ``dropout`` in [0, 1).
    """
    filters = check_int_sequence("filters", filters, model="simple_cnn", why=" (one per conv block)")
    dense_units = check_int("dense_units", dense_units, model="simple_cnn")
    dropout = check_number("dropout", dropout, low=0.0, high=1.0, high_open=True, model="simple_cnn")
    shape, head = classifier_args(
        input_shape,
        num_classes,
        include_top,
        pooling,
        classifier_activation,
        min_size=2 ** len(filters),
        model="simple_cnn",
    )
    inputs = make_input(shape)
    x = inputs
    for b, f in enumerate(filters, start=1):
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"block{b}_conv1")(x)
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"block{b}_conv2")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    x = classifier_head(x, **head, head="dense", fc=(("fc1", dense_units),), dropout=dropout)
    return zoo_model(inputs, x, name=name)
