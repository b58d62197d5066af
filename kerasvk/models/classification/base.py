"""What every classifier shares: argument validation, the one classification head, pyramid outputs.

The one classifier signature (DESIGN convention 2) is::

    builder(input_shape=..., num_classes=..., include_top=True, pooling=None,
            classifier_activation="softmax", name=..., **family_options)

A family validates first, builds its feature extractor (feeding each block output to a
:class:`Pyramid`), then adds the one head::

    shape, head = classifier_args(input_shape, num_classes, include_top, pooling, classifier_activation,
                                  min_size=32, model=name)
    ...
    x = classifier_head(x, **head, head="avg", **head_options)
    return zoo_model(inputs, x, name=name, pyramid=pyramid)

- ``include_top=True``: the head of kind ``head`` (``HEADS``), ending in a layer named ``"predictions"``.
- ``include_top=False``: the feature extractor; ``pooling`` None (feature map), "avg" or "max"
  (``GlobalAveragePooling2D(name="avg_pool")`` / ``GlobalMaxPooling2D(name="max_pool")``; the 1D
  versions on token sequences).
- ``pyramid``: a :class:`Pyramid` the family fed its block outputs while building; the model records
  ``model.pyramid_outputs`` (level → layer name, as keras-hub's ``Backbone.pyramid_outputs``), which
  ``kerasvk.backbone`` turns into a multi-output feature extractor for a detector neck.
"""

from __future__ import annotations

import keras

from kerasvk.models.checks import is_int
from kerasvk.registry import PYRAMID_LEVELS

P2_P5 = tuple(PYRAMID_LEVELS)  # the pyramid_levels of a family that has every stride 4..32
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
    if not isinstance(input_shape, (list, tuple)) or not all(d is None or is_int(d) for d in input_shape):
        # a string ("abc") or float/str dimensions: int() would truncate 32.5 or fail naming no argument
        raise ValueError(
            f"{model}: input_shape must be a tuple (height, width, channels) of integers. "
            f"Received: input_shape={input_shape!r}"
        )
    shape = tuple(int(d) if d is not None else None for d in input_shape)
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


def classifier_args(
    input_shape, num_classes, include_top, pooling, classifier_activation, *, min_size=1, model
):
    """:func:`validate_classifier_args` over the one signature's arguments, in signature order.

    Returns ``(input_shape as a tuple, head)``, ``head`` being the keyword arguments of
    :func:`classifier_head`: a family validates first and adds its head with ``classifier_head(x, **head)``.
    """
    head = dict(
        num_classes=num_classes,
        include_top=include_top,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    return validate_classifier_args(input_shape=input_shape, **head, min_size=min_size, model=model), head


def global_pool(x, pooling):
    """Global pooling for ``include_top=False`` (keras.applications names); 1D on token sequences."""
    if pooling is None:
        return x
    if len(x.shape) == 3:
        layer = keras.layers.GlobalAveragePooling1D if pooling == "avg" else keras.layers.GlobalMaxPooling1D
    else:
        layer = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    return layer(name=f"{pooling}_pool")(x)


def _predictions(x, num_classes, classifier_activation):
    # float32 under a mixed precision policy: probabilities (and the loss on them) stay float32
    return keras.layers.Dense(num_classes, activation=classifier_activation, name="predictions", dtype="float32")(x)


def _avg_head(x, num_classes, classifier_activation, *, dropout=0.0):
    """Modern CNNs (ResNet, DenseNet, EfficientNet, MobileNetV2): avg_pool → (top_dropout) → predictions."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    return _predictions(x, num_classes, classifier_activation)


def _dense_head(
    x,
    num_classes,
    classifier_activation,
    *,
    fc,
    activation="relu",
    dropout=0.0,
    dropout_first=False,
    pool_to=None,
):
    """Classic CNNs (VGG, AlexNet, LeNet, simple_cnn): (adaptive_pool) → flatten → ``fc`` stack → predictions.

    ``fc`` is a sequence of ``(layer name, units)``; each dense layer gets a ``{name}_dropout`` of rate
    ``dropout`` after it (before it with ``dropout_first``, AlexNet's order); ``pool_to`` (h, w) first
    average-pools adaptively to a fixed grid (``adaptive_pool``), so the head does not depend on input size.
    """
    if pool_to is not None:
        from kerasvk.layers import AdaptiveAveragePooling2D

        x = AdaptiveAveragePooling2D(pool_to, name="adaptive_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for layer_name, units in fc:
        if dropout and dropout_first:
            x = keras.layers.Dropout(dropout, name=f"{layer_name}_dropout")(x)
        x = keras.layers.Dense(units, activation=activation, name=layer_name)(x)
        if dropout and not dropout_first:
            x = keras.layers.Dropout(dropout, name=f"{layer_name}_dropout")(x)
    return _predictions(x, num_classes, classifier_activation)


def _conv_head(
    x, num_classes, classifier_activation, *, dropout=0.0, hidden=None, logits="conv_preds", flatten="flatten"
):
    """MobileNet V1/V3 (keras.applications): the classifier is a 1×1 conv on the pooled 1×1 map.

    avg_pool (kept 1×1) → (``hidden`` = (filters, activation): 1×1 ``conv_2`` + activation, V3) →
    (top_dropout) → 1×1 conv ``logits`` → ``flatten`` → Activation ``predictions``.
    """
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
    if hidden is not None:
        filters, activation = hidden
        x = keras.layers.Conv2D(filters, 1, padding="same", name="conv_2")(x)
        x = keras.layers.Activation(activation, name=f"conv_2_{activation}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, padding="same", name=logits)(x)
    x = keras.layers.Flatten(name=flatten)(x)
    return keras.layers.Activation(classifier_activation, name="predictions", dtype="float32")(x)


def _token_head(x, num_classes, classifier_activation):
    """Transformers (ViT): the class token (``class_token_pool``) → predictions."""
    from kerasvk.layers import TakeToken

    return _predictions(TakeToken(0, name="class_token_pool")(x), num_classes, classifier_activation)


# head kind -> builder(x, num_classes, classifier_activation, **options)
HEADS = {"avg": _avg_head, "dense": _dense_head, "conv": _conv_head, "token": _token_head}


def classifier_head(
    x, *, num_classes, include_top, pooling, classifier_activation, head="avg", **options
):
    """The classification head of every zoo family, keras.applications layer names kept.

    With ``include_top=True`` adds the head of kind ``head`` (a key of ``HEADS``; ``options`` are that
    kind's: ``dropout``, ``fc``, ``hidden`` ...); with ``include_top=False`` returns the features,
    globally pooled when ``pooling`` is "avg" or "max".
    """
    if not include_top:
        return global_pool(x, pooling)
    if head not in HEADS:
        raise ValueError(f"classifier_head: head must be one of {', '.join(HEADS)}. Received: head={head!r}")
    return HEADS[head](x, num_classes, classifier_activation, **options)


class Pyramid:
    """Collects a family's pyramid outputs while it builds: the last block output at each stride.

    Start it at the stride after the stem and pass every block output through :meth:`add` with the
    block's stride; levels P2..P5 (strides 4..32) keep the name of the last layer seen at their stride.
    """

    LEVELS = {stride: level for level, stride in PYRAMID_LEVELS.items()}

    def __init__(self, stride=1):
        self.stride = stride
        self.layers = {}

    def add(self, x, strides=1):
        """Record block output ``x`` (its block downsampled by ``strides``); return ``x``."""
        self.stride *= strides
        level = self.LEVELS.get(self.stride)
        if level is not None:
            self.layers[level] = x._keras_history.operation.name
        return x


def zoo_model(inputs, outputs, *, name, pyramid=None):
    """``keras.Model(inputs, outputs)`` with ``pyramid_outputs`` (level → layer name) when given."""
    model = keras.Model(inputs, outputs, name=name)
    if pyramid is not None:
        model.pyramid_outputs = dict(pyramid.layers)
    return model


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
