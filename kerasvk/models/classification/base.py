"""What every classifier shares: argument validation and the keras.applications-style head.

The one classifier signature (DESIGN convention 2) is::

    builder(input_shape=..., num_classes=..., include_top=True, pooling=None,
            classifier_activation="softmax", name=..., **family_options)

- ``include_top=True``: the family's own head ending in ``Dense(num_classes, name="predictions")``.
- ``include_top=False``: the feature extractor; ``pooling`` None (feature map), "avg" or "max"
  (``GlobalAveragePooling2D(name="avg_pool")`` / ``GlobalMaxPooling2D(name="max_pool")``).
"""

from __future__ import annotations

import keras

POOLING = (None, "avg", "max")
ACTIVATIONS = (None, "softmax", "sigmoid", "linear")


def validate_classifier_args(
    *,
    input_shape,
    num_classes,
    include_top,
    pooling,
    classifier_activation,
    min_size: int = 1,
    model: str = "model",
):
    """Check the common arguments before anything is built; return ``input_shape`` as a tuple.

    Raises ``ValueError`` naming the constraint and the value received (keras style).
    """
    try:
        shape = tuple(int(d) if d is not None else None for d in input_shape)
    except TypeError:
        raise ValueError(
            f"{model}: input_shape must be a tuple (height, width, channels). Received: input_shape={input_shape!r}"
        ) from None
    if len(shape) != 3:
        raise ValueError(
            f"{model}: input_shape must have rank 3 (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    h, w, c = shape
    if c is None or c < 1:
        raise ValueError(f"{model}: input_shape needs a known channel count >= 1. Received: input_shape={shape}")
    for d in (h, w):
        if d is not None and d < min_size:
            raise ValueError(
                f"{model}: input height and width must be >= {min_size} for this architecture. "
                f"Received: input_shape={shape}"
            )
    if include_top not in (True, False):
        raise ValueError(f"{model}: include_top must be True or False. Received: include_top={include_top!r}")
    if include_top:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(
                f"{model}: num_classes must be an integer >= 2 when include_top=True. "
                f"Received: num_classes={num_classes!r}"
            )
    if pooling not in POOLING:
        raise ValueError(
            f"{model}: pooling must be one of None, 'avg', 'max'. Received: pooling={pooling!r}"
        )
    if classifier_activation not in ACTIVATIONS and not callable(classifier_activation):
        raise ValueError(
            f"{model}: classifier_activation must be one of None, 'softmax', 'sigmoid', 'linear' or a callable. "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    return shape


def global_pool(x, pooling):
    """Global pooling of a feature map for ``include_top=False`` (keras.applications names)."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def pooled_head(x, *, num_classes, include_top, pooling, classifier_activation, dropout=0.0):
    """The head of modern CNNs: global average pool → (dropout) → Dense predictions.

    With ``include_top=False`` returns the feature map, pooled when ``pooling`` is set.
    """
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        return keras.layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)
    return global_pool(x, pooling)


def input_rescaling(x, input_max, *, symmetric=False, model="model"):
    """``Rescaling`` from inputs in ``[0, input_max]`` to ``[0, 1]`` (or ``[-1, 1]`` when ``symmetric``).

    ``input_max=1.0`` suits kerasvk's pipelines (float images in [0, 1]); ``input_max=255`` is the
    keras.applications convention (raw pixel values), which imagenet weights from keras expect.
    No weights: the parameter count is the same either way.
    """
    if isinstance(input_max, bool) or not isinstance(input_max, (int, float)) or not input_max > 0:
        raise ValueError(
            f"{model}: input_max must be a number > 0 (1.0 for images in [0, 1], 255 for raw pixels). "
            f"Received: input_max={input_max!r}"
        )
    if symmetric:
        return keras.layers.Rescaling(2.0 / input_max, offset=-1.0, name="rescaling")(x)
    return keras.layers.Rescaling(1.0 / input_max, name="rescaling")(x)


def make_input(input_shape, name="input_layer"):
    return keras.Input(shape=input_shape, name=name)
