"""Regularization on already-built models: weight penalties, dropout rates, batch-norm settings.

``apply_weight_regularization(model, l2=1e-4)`` attaches ``keras.regularizers.L1L2`` to every kernel
(Dense, Conv*, DepthwiseConv*, SeparableConv*, Embedding), so ``sum(model.losses)`` is
``l1·Σ|w| + l2·Σw²`` over those kernels and ``model.fit`` adds it to the loss. Biases, batch-norm and
other weights are left alone unless ``include_bias=True``. The layer configs change too, so a saved
``.keras`` file keeps the penalty. Call it before ``compile`` (or compile again).

Label smoothing lives in the loss: ``keras.losses.CategoricalCrossentropy(label_smoothing=α)`` uses
targets ``y·(1−α) + α/K`` (see ``kerasvk.training.classification_loss_and_metrics``).
"""

from __future__ import annotations

import keras

KERNEL_ATTRS = (
    ("kernel", "kernel_regularizer"),
    ("depthwise_kernel", "depthwise_regularizer"),
    ("pointwise_kernel", "pointwise_regularizer"),
    ("embeddings", "embeddings_regularizer"),
)


def _check_rate(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or value != value:
        raise ValueError(f"{name} must be a number >= 0. Received: {name}={value!r}")
    return float(value)


def _layers(model):
    return [lyr for lyr in model._flatten_layers(include_self=False, recursive=True)]


def apply_weight_regularization(model, l1=0.0, l2=0.0, *, include_bias=False):
    """Attach an L1/L2/L1+L2 penalty to every kernel of a built model. Returns the number of weights."""
    l1, l2 = _check_rate("l1", l1), _check_rate("l2", l2)
    if not isinstance(model, keras.Model):
        raise ValueError(f"apply_weight_regularization takes a keras.Model. Received: {type(model).__name__}")
    if not model.built:
        raise ValueError(
            "The model must be built first (call it on an input or build it with an input shape)."
        )
    reg = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    count = 0
    for layer in _layers(model):
        attrs = list(KERNEL_ATTRS) + ([("bias", "bias_regularizer")] if include_bias else [])
        for var_attr, reg_attr in attrs:
            var = getattr(layer, var_attr, None)
            if isinstance(var, keras.Variable) and hasattr(layer, reg_attr):
                setattr(layer, reg_attr, reg)
                var.regularizer = reg
                count += 1
    if count == 0:
        raise ValueError(f"Model {model.name!r} has no kernels to regularize (Dense/Conv/Embedding layers).")
    return count


def regularization_loss(model) -> float:
    """``sum(model.losses)`` as a float (the penalty the next ``fit`` step adds)."""
    losses = model.losses
    if not losses:
        return 0.0
    return float(
        keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.stack([keras.ops.sum(v) for v in losses])))
    )


def set_dropout(model, rate):
    """Set the rate of every ``Dropout`` layer of a built model (e.g. the head). Returns the count."""
    rate = _check_rate("rate", rate)
    if rate >= 1.0:
        raise ValueError(f"Dropout rate must be in [0, 1). Received: rate={rate!r}")
    n = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = rate
            n += 1
    if n == 0:
        raise ValueError(
            f"Model {model.name!r} has no Dropout layers (build it with dropout=... if the family has one)."
        )
    return n


def configure_batch_norm(model, *, momentum=None, epsilon=None):
    """Set ``momentum``/``epsilon`` of every ``BatchNormalization`` layer. Returns the count."""
    if momentum is not None and not (isinstance(momentum, (int, float)) and 0.0 <= momentum < 1.0):
        raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum!r}")
    if epsilon is not None and not (isinstance(epsilon, (int, float)) and epsilon > 0):
        raise ValueError(f"epsilon must be > 0. Received: epsilon={epsilon!r}")
    n = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            if momentum is not None:
                layer.momentum = float(momentum)
            if epsilon is not None:
                layer.epsilon = float(epsilon)
            n += 1
    if n == 0:
        raise ValueError(f"Model {model.name!r} has no BatchNormalization layers.")
    return n
