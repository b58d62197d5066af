"""Losses and metrics the trainer compiles models with (a task's own losses live in its model class)."""

from __future__ import annotations


def classification_loss_and_metrics(one_hot=False, label_smoothing=0.0, from_logits=False):
    """Loss and accuracy metrics for integer or one-hot labels (label smoothing needs one-hot)."""
    import keras

    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1). Received: {label_smoothing!r}")
    if one_hot or label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)
        metrics = [
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=3, name="top3_accuracy"),
        ]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        metrics = [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3_accuracy"),
        ]
    return loss, metrics
