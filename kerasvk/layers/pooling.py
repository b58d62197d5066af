"""Pooling layers keras core lacks in the exact form needed."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def _bin_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) averaging weights of PyTorch's adaptive pooling bins.

    Bin i covers [floor(i·n_in/n_out), ceil((i+1)·n_in/n_out)), so inputs smaller than the output
    are replicated (keras' own ``AdaptiveAveragePooling2D`` rejects those).
    """
    m = np.zeros((n_out, n_in), dtype="float32")
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = math.ceil((i + 1) * n_in / n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


@keras.saving.register_keras_serializable(package="kerasvk")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Average-pool an NHWC map to ``output_size`` with PyTorch's bin rule (up- or down-sizing).

    Separable: ``out = P_h · x · P_wᵀ`` with fixed bin matrices, so it costs two small matmuls.
    Needs static height and width.
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(s) for s in output_size)

    def build(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        if h is None or w is None:
            raise ValueError(
                f"{self.name}: needs a static height and width. Received: input_shape={input_shape}"
            )
        self._ph = _bin_matrix(h, self.output_size[0])
        self._pw = _bin_matrix(w, self.output_size[1])

    def call(self, x):
        ph = ops.convert_to_tensor(self._ph, dtype=x.dtype)
        pw = ops.convert_to_tensor(self._pw, dtype=x.dtype)
        return ops.einsum("ih,bhwc,jw->bijc", ph, x, pw)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}
