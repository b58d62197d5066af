"""Parameter-free residual shortcuts."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasvk")
class PadChannelsShortcut(keras.layers.Layer):
    """He et al. (2016) option-A shortcut: subsample by ``strides`` and zero-pad the new channels.

    ``x[:, ::s, ::s, :]`` followed by zero channels split evenly before and after, so the
    shortcut matches a residual branch with ``filters`` outputs and adds no parameters
    (the CIFAR ResNets of the paper's Table 6 use it).
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def compute_output_shape(self, input_shape):
        def sub(d):
            return None if d is None else -(-d // self.strides)

        return (input_shape[0], sub(input_shape[1]), sub(input_shape[2]), self.filters)

    def call(self, x):
        if self.strides > 1:
            x = x[:, :: self.strides, :: self.strides, :]
        extra = self.filters - x.shape[-1]
        if extra < 0:
            raise ValueError(
                f"{self.name}: filters must be >= the input channels ({x.shape[-1]}). "
                f"Received: filters={self.filters}"
            )
        if extra:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])
        return x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}
