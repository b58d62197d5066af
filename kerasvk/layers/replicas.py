"""What a model's own loss and noise need to train the same under a ``tf.distribute`` strategy.

Keras sums the gradients of the replicas (``optimizer.apply_gradients`` all-reduces them), and keras' own
losses divide the per-replica mean by the replica count, so the update is that of the mean over the
global batch. A model that overrides ``compute_loss`` or ``train_step`` and computes its loss itself
(VAE, GAN, detectors, PixelCNN/WaveNet/GPT) must do the same: :func:`scale_loss` on the value it returns
or differentiates; trackers keep the unscaled per-replica value (keras averages them over replicas).

Noise a training step draws (a GAN's z, WGAN-GP's interpolation weights, the VAE's ε) is the same on every replica
when drawn from a mirrored ``SeedGenerator``; :func:`replica_slice` draws it for the *global* batch and
keeps this replica's rows, so N replicas see exactly the noise one device would with the same seed.
Without a strategy (or with one replica) both are the identity. Backend-agnostic except where a
``tf.distribute`` replica context exists (TensorFlow only).
"""

from __future__ import annotations


def _replica_context():
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return ctx


def num_replicas() -> int:
    """Replicas in sync in the current replica context (1 outside ``strategy.run`` or without a strategy)."""
    ctx = _replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def scale_loss(loss):
    """``loss / replicas`` inside a multi-replica step (keras' ``scale_loss_for_distribution``), else ``loss``."""
    n = num_replicas()
    if n == 1:
        return loss
    from keras import ops

    return ops.multiply(loss, ops.cast(1.0 / n, loss.dtype))


def replica_slice(draw, batch):
    """``draw(global_batch)`` → this replica's ``batch`` rows (the global draw is the same on every replica).

    ``draw(n)`` must return a tensor whose first axis has ``n`` rows. Every replica holds a batch of the
    same size except possibly at the end of a finite dataset; the global batch is ``batch × replicas`` and
    replica ``i`` keeps rows ``[i·batch, (i+1)·batch)``.
    """
    ctx = _replica_context()
    if ctx is None:
        return draw(batch)
    import tensorflow as tf

    n = ctx.num_replicas_in_sync
    full = draw(batch * n)
    return tf.slice(full, tf.concat([[ctx.replica_id_in_sync_group * batch], tf.zeros([tf.rank(full) - 1], tf.int32)], 0),
                    tf.concat([[batch], tf.shape(full)[1:]], 0))
