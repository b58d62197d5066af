"""Layers and helpers shared by the generative models (VAE, GAN).

``Sampling`` is the VAE reparameterisation ``z = μ + σ·ε`` with its own ``SeedGenerator`` (DESIGN 8:
randomness is owned). ``seeded_normal`` draws the same noise for an integer seed in a Keras method and
in a SavedModel signature (where the seed arrives as a tensor), so exported ``sample(n, seed)``
endpoints can be checked against the Keras model exactly.
"""

from __future__ import annotations

import keras
from keras import ops

from kerasvk.layers.replicas import replica_slice


@keras.saving.register_keras_serializable(package="kerasvk")
class Sampling(keras.layers.Layer):
    """Reparameterisation trick: ``[mean, log_var] → mean + exp(log_var / 2) · ε``, ε ~ N(0, I).

    Samples only when ``training=True``; at inference it returns ``mean`` so a trained VAE's forward
    pass (and its exported ``serving_default``) is deterministic. ``seed`` seeds the layer's own
    ``keras.random.SeedGenerator``.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        if not training:
            return mean
        # under a strategy: this replica's rows of the global batch's draw (the ε one device would draw)
        eps = replica_slice(lambda n: keras.random.normal((n, *mean.shape[1:]), dtype=mean.dtype, seed=self.seed_generator),
                            ops.shape(mean)[0])
        return mean + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def seeded_normal(shape, seed, dtype="float32"):
    """Standard-normal noise of ``shape`` fully determined by integer ``seed``.

    On the TensorFlow backend (and inside exported signatures, where ``seed`` is a tensor) this is
    ``tf.random.stateless_normal`` with seed ``[seed, 0]``; on other backends ``keras.random.normal``.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        pair = tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])
        return tf.random.stateless_normal(shape, seed=pair, dtype=dtype)
    return keras.random.normal(shape, dtype=dtype, seed=int(seed))
