"""Decoder-only transformer layers with a key/value cache for fast generation.

- ``TokenAndPositionEmbedding``: learned token + position embeddings; ``reverse=True`` maps hidden
  states back to vocabulary logits with the same (tied) token matrix.
- ``CausalSelfAttention``: multi-head self-attention with a causal mask. ``step`` attends one new
  token ``(batch, dim)`` to a preallocated ``(batch, heads, max_length, head_dim)`` key/value cache, writing its own
  key/value at ``index``: one step costs one token's projections plus a fixed-size attention read,
  so per-step time stays flat over a long generation.
- ``TransformerDecoderBlock``: pre-norm block (LN → attention → residual, LN → MLP → residual).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasvk")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """``token_emb[ids] + pos_emb[start : start + T]``; ``call(h, reverse=True)`` gives ``h @ token_embᵀ``."""

    def __init__(self, vocab_size, max_length, dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.max_length = int(max_length)
        self.dim = int(dim)

    def build(self, input_shape):
        # one initializer each: a shared instance holds one seed, and the position table would repeat the
        # token table's first rows
        def init():
            return keras.initializers.RandomNormal(stddev=0.02)

        self.token_embeddings = self.add_weight(
            name="token_embeddings", shape=(self.vocab_size, self.dim), initializer=init()
        )
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(self.max_length, self.dim), initializer=init()
        )

    def call(self, inputs, reverse=False):
        if reverse:  # logits in float32 (also under a mixed precision policy, where inputs arrive as float16)
            return ops.matmul(ops.cast(inputs, "float32"), ops.transpose(ops.cast(self.token_embeddings, "float32")))
        return self.embed(inputs, 0)

    def embed(self, ids, start):
        """Embed ``ids`` ``(batch, T)`` placed at positions ``start .. start+T-1``."""
        ids = ops.cast(ids, "int32")
        length = ops.shape(ids)[1]
        tok = ops.take(self.token_embeddings, ids, axis=0)
        pos = ops.take(self.position_embeddings, start + ops.arange(length, dtype="int32"), axis=0)
        return tok + pos[None]

    def embed_step(self, ids_t, index):
        """Embed one token per row, ``ids_t`` ``(batch,)`` at position ``index`` → ``(batch, dim)``."""
        tok = ops.take(self.token_embeddings, ops.cast(ids_t, "int32"), axis=0)
        return tok + ops.take(self.position_embeddings, index, axis=0)[None]

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "max_length": self.max_length, "dim": self.dim}


@keras.saving.register_keras_serializable(package="kerasvk")
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head causal self-attention (fused QKV projection, output projection)."""

    def __init__(self, num_heads, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.qkv = None
        self.out = None
        self.drop = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if dim % self.num_heads:
            raise ValueError(f"dim must be divisible by num_heads={self.num_heads}. Received: dim={dim}")
        self.dim = dim
        self.head_dim = dim // self.num_heads
        self.qkv = keras.layers.Dense(3 * dim, name="qkv")
        self.qkv.build(input_shape)
        self.out = keras.layers.Dense(dim, name="out")
        self.out.build((*input_shape[:-1], dim))

    def _split(self, x):  # (B, T, 3D) → 3 × (B, H, T, hd)
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (b, t, 3, self.num_heads, self.head_dim))
        x = ops.transpose(x, (2, 0, 3, 1, 4))
        return x[0], x[1], x[2]

    def _merge(self, x):  # (B, H, T, hd) → (B, T, D)
        b, t = ops.shape(x)[0], ops.shape(x)[2]
        return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (b, t, self.dim))

    def _attend(self, q, k, v, mask, training=False):
        scores = ops.einsum("bhqd,bhkd->bhqk", q, k) * (1.0 / float(self.head_dim) ** 0.5)
        scores = ops.where(mask, scores, ops.cast(-1e9, scores.dtype))
        weights = self.drop(ops.softmax(scores, axis=-1), training=training)
        return ops.einsum("bhqk,bhkd->bhqd", weights, v)

    def call(self, x, training=False):
        return self.prefill(x, None, training)[0]

    def prefill(self, x, max_length=None, training=False):
        """Causal attention over ``x``; with ``max_length`` also its keys/values as a zero-padded cache."""
        q, k, v = self._split(self.qkv(x))
        t = ops.shape(x)[1]
        i = ops.arange(t)
        mask = (i[:, None] >= i[None, :])[None, None]
        y = self.out(self._merge(self._attend(q, k, v, mask, training)))
        if max_length is None:
            return y, None, None
        pad = [[0, 0], [0, 0], [0, max_length - t], [0, 0]]
        return y, ops.pad(k, pad), ops.pad(v, pad)

    def initial_cache(self, batch_size, max_length, dtype="float32"):
        shape = (batch_size, self.num_heads, max_length, self.head_dim)
        return ops.zeros(shape, dtype), ops.zeros(shape, dtype)

    def step(self, x_t, k_cache, v_cache, index):
        """``x_t`` ``(B, D)`` at position ``index`` → ``(y_t (B, D), k_cache, v_cache)`` with its key/value written.

        Everything stays 2-D (or ``(B, H, 1, hd)``) so the Dense layers are plain matmuls, not the
        reshape/tensordot chain a ``(B, 1, D)`` input costs: inside the generation loop each step is
        a fixed, small set of graph ops against fixed-shape caches, whatever ``index`` is.
        """
        qkv = ops.reshape(self.qkv(x_t), (-1, 3, self.num_heads, 1, self.head_dim))
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # (B, H, 1, hd)
        k_cache = ops.slice_update(k_cache, (0, 0, index, 0), k)
        v_cache = ops.slice_update(v_cache, (0, 0, index, 0), v)
        mask = (ops.arange(ops.shape(k_cache)[2]) <= index)[None, None, None, :]
        y = self._attend(q, k_cache, v_cache, mask)  # (B, H, 1, hd): merging heads is a plain reshape
        return self.out(ops.reshape(y, (-1, self.dim))), k_cache, v_cache

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="kerasvk")
class TransformerDecoderBlock(keras.layers.Layer):
    """Pre-norm GPT block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` (GELU, ``mlp_ratio``·dim hidden)."""

    def __init__(self, num_heads, mlp_ratio=4, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.mlp_ratio = int(mlp_ratio)
        self.dropout = float(dropout)
        self.ln1 = keras.layers.LayerNormalization(epsilon=1e-5, name="ln_1")
        self.attn = CausalSelfAttention(self.num_heads, dropout=self.dropout, name="attn")
        self.ln2 = keras.layers.LayerNormalization(epsilon=1e-5, name="ln_2")
        self.drop = keras.layers.Dropout(self.dropout)
        self.fc = None
        self.proj = None

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.ln1.build(input_shape)
        self.attn.build(input_shape)
        self.ln2.build(input_shape)
        self.fc = keras.layers.Dense(self.mlp_ratio * dim, activation="gelu", name="mlp_fc")
        self.fc.build(input_shape)
        self.proj = keras.layers.Dense(dim, name="mlp_proj")
        self.proj.build((*input_shape[:-1], self.mlp_ratio * dim))

    def _mlp(self, x, training=False):
        return self.drop(self.proj(self.fc(self.ln2(x))), training=training)

    def call(self, x, training=False):
        x = x + self.drop(self.attn(self.ln1(x), training=training), training=training)
        return x + self._mlp(x, training)

    def prefill(self, x, max_length):
        """``call`` over a prompt, also returning the attention's key/value cache (length ``max_length``)."""
        x = ops.cast(x, self.compute_dtype)  # as __call__ would: the embedding's float32 under a mixed policy
        a, k_cache, v_cache = self.attn.prefill(self.ln1(x), max_length)
        x = x + a
        return x + self._mlp(x), k_cache, v_cache

    def step(self, x_t, k_cache, v_cache, index):
        """One token ``x_t`` ``(B, D)`` at position ``index`` against the attention's cache."""
        x_t = ops.cast(x_t, self.compute_dtype)
        a, k_cache, v_cache = self.attn.step(self.ln1(x_t), k_cache, v_cache, index)
        x_t = x_t + a
        return x_t + self._mlp(x_t), k_cache, v_cache

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio, "dropout": self.dropout}
