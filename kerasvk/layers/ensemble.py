"""Combining the class probabilities of several classifiers into one prediction."""

from __future__ import annotations

import numbers

import keras
from keras import ops

COMBINE_METHODS = ("average", "vote", "weighted")


@keras.saving.register_keras_serializable(package="kerasvk")
class CombinePredictions(keras.layers.Layer):
    """Combine a list of ``(batch, classes)`` probability tensors into one.

    - ``"average"``: the mean of the members' probabilities;
    - ``"weighted"``: ``Σ wᵢ pᵢ / Σ wᵢ`` with non-negative ``weights`` (one per member);
    - ``"vote"``: each member votes for its arg-max class; the output is the fraction of votes per class
      (a distribution summing to 1; ties go to the lowest class index under ``argmax``, like NumPy).
    """

    def __init__(self, method="average", weights=None, **kwargs):
        super().__init__(**kwargs)
        if method not in COMBINE_METHODS:
            raise ValueError(
                f"CombinePredictions: method must be one of {', '.join(map(repr, COMBINE_METHODS))}. "
                f"Received: method={method!r}"
            )
        if method == "weighted":
            if weights is None:
                raise ValueError("CombinePredictions: method='weighted' needs weights=[w1, w2, ...] (one per member).")
            if not all(isinstance(w, numbers.Real) and not isinstance(w, bool) and w >= 0 for w in weights) or not (
                sum(weights) > 0
            ):
                raise ValueError(
                    f"CombinePredictions: weights must be non-negative numbers with a positive sum. "
                    f"Received: weights={list(weights)!r}"
                )
            weights = [float(w) for w in weights]
        elif weights is not None:
            raise ValueError(f"CombinePredictions: weights are only used with method='weighted'. Received: method={method!r}")
        self.method = method
        self.member_weights = weights

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"{self.name}: expects a list of (batch, classes) tensors. Received shape: {input_shape}")
        if self.member_weights is not None and len(self.member_weights) != len(input_shape):
            raise ValueError(
                f"{self.name}: got {len(self.member_weights)} weights for {len(input_shape)} members; "
                "give exactly one weight per member."
            )
        self.built = True

    def call(self, inputs):
        stacked = ops.stack(list(inputs), axis=0)  # (members, batch, classes)
        if self.method == "average":
            return ops.mean(stacked, axis=0)
        if self.method == "weighted":
            w = ops.convert_to_tensor(self.member_weights, dtype=stacked.dtype)
            w = w / ops.sum(w)
            return ops.tensordot(w, stacked, axes=1)
        votes = ops.one_hot(ops.argmax(stacked, axis=-1), stacked.shape[-1], dtype=stacked.dtype)
        return ops.mean(votes, axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "method": self.method, "weights": self.member_weights}
