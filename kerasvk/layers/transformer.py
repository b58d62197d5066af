"""Token layers of the Vision Transformer: class token, learned position embeddings, token pooling.

``PositionEmbedding`` holds one learned vector per token for a fixed patch grid; to run a trained
model at another resolution, ``interpolate_position_embeddings`` resizes the grid part (bicubic, as
in the ViT paper's fine-tuning at higher resolution) and keeps the class-token entries.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kerasvk")
class ClassToken(keras.layers.Layer):
    """Prepend one learned token (zeros at init) to a ``(batch, tokens, dim)`` sequence."""

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, input_shape[-1]), initializer="zeros")

    def call(self, x):
        batch = ops.shape(x)[0]
        token = ops.broadcast_to(ops.cast(self.token, x.dtype), (batch, 1, x.shape[-1]))
        return ops.concatenate([token, x], axis=1)

    def compute_output_shape(self, input_shape):
        tokens = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], tokens, input_shape[2])


@keras.saving.register_keras_serializable(package="kerasvk")
class PositionEmbedding(keras.layers.Layer):
    """Add a learned embedding per token for a ``grid_size`` patch grid plus ``num_prefix_tokens``.

    Weight shape ``(1, num_prefix_tokens + gh·gw, dim)``, truncated-normal(0.02) initialised.
    """

    def __init__(self, grid_size, num_prefix_tokens=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(grid_size, int):
            grid_size = (grid_size, grid_size)
        self.grid_size = tuple(int(g) for g in grid_size)
        self.num_prefix_tokens = int(num_prefix_tokens)

    @property
    def num_tokens(self):
        return self.num_prefix_tokens + self.grid_size[0] * self.grid_size[1]

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] != self.num_tokens:
            raise ValueError(
                f"{self.name}: expected {self.num_tokens} tokens ({self.num_prefix_tokens} prefix + grid "
                f"{self.grid_size[0]}x{self.grid_size[1]}). Received: input_shape={input_shape}"
            )
        self.embedding = self.add_weight(
            name="embedding",
            shape=(1, self.num_tokens, input_shape[-1]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )

    def call(self, x):
        return x + ops.cast(self.embedding, x.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "grid_size": self.grid_size,
            "num_prefix_tokens": self.num_prefix_tokens,
        }


@keras.saving.register_keras_serializable(package="kerasvk")
class TakeToken(keras.layers.Layer):
    """Select token ``index`` of a ``(batch, tokens, dim)`` sequence (the class token by default)."""

    def __init__(self, index=0, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[:, self.index, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


def interpolate_position_embeddings(embedding, old_grid, new_grid, num_prefix_tokens=1, method="bicubic"):
    """Resize position embeddings ``(1, prefix + gh·gw, dim)`` from ``old_grid`` to ``new_grid``.

    The prefix (class-token) entries are kept; the grid entries are reshaped to ``(gh, gw, dim)``
    and resized with ``keras.ops.image.resize`` (``method`` "bicubic" or "bilinear"). Returns numpy.
    """
    emb = np.asarray(keras.ops.convert_to_numpy(embedding), dtype="float32")
    old_grid = (old_grid, old_grid) if isinstance(old_grid, int) else tuple(old_grid)
    new_grid = (new_grid, new_grid) if isinstance(new_grid, int) else tuple(new_grid)
    if emb.ndim != 3 or emb.shape[1] != num_prefix_tokens + old_grid[0] * old_grid[1]:
        raise ValueError(
            f"embedding must have shape (1, {num_prefix_tokens} + {old_grid[0]}*{old_grid[1]}, dim). "
            f"Received: shape={emb.shape}"
        )
    if method not in ("bicubic", "bilinear"):
        raise ValueError(f"method must be 'bicubic' or 'bilinear'. Received: method={method!r}")
    prefix, grid = emb[:, :num_prefix_tokens], emb[:, num_prefix_tokens:]
    if old_grid == new_grid:
        return emb
    grid = grid.reshape(1, old_grid[0], old_grid[1], -1)
    resized = ops.image.resize(
        grid, new_grid, interpolation=method, antialias=False, data_format="channels_last"
    )
    resized = np.asarray(keras.ops.convert_to_numpy(resized), dtype="float32").reshape(1, -1, emb.shape[-1])
    return np.concatenate([prefix, resized], axis=1)
