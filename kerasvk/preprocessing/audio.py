"""μ-law companding (ITU-T G.711, μ = 255) for WaveNet: [-1, 1] ↔ ``channels`` integer classes.

``F(x) = sign(x) · ln(1 + μ|x|) / ln(1 + μ)``, with μ = ``channels - 1``. NumPy versions for
preparing data and decoding samples, TensorFlow versions for serving graphs (TensorFlow is imported
only when those are called).
"""

from __future__ import annotations

import numpy as np

__all__ = ["mu_law_encode", "mu_law_decode", "tf_mu_law_encode", "tf_mu_law_decode"]


def mu_law_encode(x, channels=256):
    """Waveform in [-1, 1] → int32 classes in ``[0, channels)`` (NumPy)."""
    mu = channels - 1
    x = np.clip(np.asarray(x, dtype="float32"), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.clip(np.floor((y + 1.0) / 2.0 * mu + 0.5), 0, mu).astype("int32")


def mu_law_decode(q, channels=256):
    """int classes → waveform in [-1, 1] (NumPy)."""
    mu = channels - 1
    y = 2.0 * np.asarray(q, dtype="float32") / mu - 1.0
    return (np.sign(y) * ((1.0 + mu) ** np.abs(y) - 1.0) / mu).astype("float32")


def tf_mu_law_encode(x, channels=256):
    """``mu_law_encode`` in TensorFlow ops (for serving graphs)."""
    import tensorflow as tf

    mu = float(channels - 1)
    x = tf.clip_by_value(tf.cast(x, tf.float32), -1.0, 1.0)
    y = tf.sign(x) * tf.math.log1p(mu * tf.abs(x)) / np.log1p(mu)
    return tf.cast(tf.clip_by_value(tf.floor((y + 1.0) / 2.0 * mu + 0.5), 0.0, mu), tf.int32)


def tf_mu_law_decode(q, channels=256):
    """``mu_law_decode`` in TensorFlow ops (for serving graphs)."""
    import tensorflow as tf

    mu = float(channels - 1)
    y = 2.0 * tf.cast(q, tf.float32) / mu - 1.0
    return tf.sign(y) * (tf.pow(1.0 + mu, tf.abs(y)) - 1.0) / mu
