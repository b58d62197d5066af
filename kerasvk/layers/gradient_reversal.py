"""Gradient reversal (Ganin & Lempitsky, 2015): identity forward, −λ·gradient backward.

Placed between a feature extractor and a domain classifier, it makes one backward pass train the
domain classifier to *separate* the domains while pushing the features to *confuse* it (DANN).

The reversal is backend-specific where the backend has a custom-gradient primitive:

- TensorFlow: ``tf.custom_gradient``;
- JAX: ``jax.custom_vjp``;
- any other backend (PyTorch, ...): ``sg(x) − λ·(x − sg(x))`` with ``sg`` = ``keras.ops.stop_gradient``,
  which is exactly ``x`` forward (``x − sg(x)`` is exactly 0 for finite ``x``) and has gradient exactly
  ``−λ``.

λ lives in a non-trainable scalar weight, so a schedule can change it between steps without retracing
(``layer.set_lambda(v)``), and it is saved with the model. ``call(x, lambda_=t)`` overrides it with a
tensor for one call (the DANN model passes its ramped λ this way).
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

_JAX_REVERSE = None


def _reverse_tensorflow(x, lam):
    import tensorflow as tf

    @tf.custom_gradient
    def reverse(x, lam):
        def grad(dy):
            return tf.negative(tf.cast(lam, dy.dtype)) * dy, tf.zeros_like(lam)

        return tf.identity(x), grad

    return reverse(x, lam)


def _reverse_jax(x, lam):
    global _JAX_REVERSE
    if _JAX_REVERSE is None:
        import jax
        import jax.numpy as jnp

        @jax.custom_vjp
        def reverse(x, lam):
            return x

        def fwd(x, lam):
            return x, lam

        def bwd(lam, g):
            return (-lam.astype(g.dtype) * g, jnp.zeros_like(lam))

        reverse.defvjp(fwd, bwd)
        _JAX_REVERSE = reverse
    return _JAX_REVERSE(x, lam)


def _reverse_generic(x, lam):
    stopped = ops.stop_gradient(x)
    return stopped + ops.negative(lam) * (x - stopped)


def reverse_gradient(x, lambda_=1.0):
    """``x`` unchanged forward; the gradient flowing back through it is multiplied by ``-lambda_``."""
    x = ops.convert_to_tensor(x)
    lam = ops.cast(ops.convert_to_tensor(lambda_), x.dtype)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _reverse_tensorflow(x, lam)
    if backend == "jax":
        return _reverse_jax(x, lam)
    return _reverse_generic(x, lam)


@keras.saving.register_keras_serializable(package="kerasvk")
class GradientReversal(keras.layers.Layer):
    """Identity in the forward pass; multiplies the incoming gradient by ``-lambda_`` in the backward pass.

    Args:
        lambda_: reversal strength λ >= 0 (0 blocks the gradient, 1 flips it). Stored in a
            non-trainable weight: change it with ``set_lambda`` (e.g. from a schedule).
    """

    def __init__(self, lambda_=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(lambda_, bool) or not isinstance(lambda_, numbers.Real) or not lambda_ >= 0:
            raise ValueError(
                f"GradientReversal: lambda_ must be a real number >= 0 (0 blocks, 1 flips the gradient). "
                f"Received: lambda_={lambda_!r}"
            )
        self.supports_masking = True
        self._initial_lambda = float(lambda_)
        self.lambda_ = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self._initial_lambda),
            trainable=False,
            name="lambda",
        )

    def set_lambda(self, value):
        if not value >= 0:
            raise ValueError(f"GradientReversal: lambda must be >= 0. Received: {value!r}")
        self.lambda_.assign(float(value))

    def call(self, inputs, lambda_=None):
        return reverse_gradient(inputs, self.lambda_ if lambda_ is None else lambda_)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lambda_": self._initial_lambda}
