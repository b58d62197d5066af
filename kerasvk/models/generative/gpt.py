"""GPT: a decoder-only, character-level transformer language model with KV-cache generation.

Token + learned position embeddings → pre-norm transformer blocks (causal multi-head
self-attention, GELU MLP) → final LayerNorm → logits through the tied token matrix (or a separate
head with ``tie_weights=False``). The character vocabulary is part of the config, so a saved model
(``.keras`` or SavedModel) carries its own tokenizer.

Generation (``generate``) runs one ``tf.while_loop``: with ``use_cache=True`` each step feeds a
single token through every block's ``step`` against a key/value cache; with ``use_cache=False``
each step recomputes the whole prefix (the reference the cache is checked against). Sampling is
temperature / top-k / top-p with stateless noise from ``seed`` (see ``_sampling.py``), so both
paths draw the same tokens. The export adds a ``generate`` signature running the cached loop.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kerasvk.layers.causal_attention import TokenAndPositionEmbedding, TransformerDecoderBlock
from kerasvk.models.checks import check_bool, check_int, check_number
from kerasvk.models.generative import _sampling
from kerasvk.preprocessing.text import CharTokenizer, pydoc_vocab
from kerasvk.registry import variant


@keras.saving.register_keras_serializable(package="kerasvk")
class GPT(_sampling.NextTokenModel, keras.Model):
    """Character-level GPT. Input ``tokens`` ``(batch, T)`` int32, output logits ``(batch, T, vocab)``.

    ``vocab`` (a string of distinct characters) defaults to the pydoc corpus's (``pydoc_vocab()``).
    ``fit`` minimises the mean next-token cross-entropy in nats (``exp`` of it is the perplexity).
    """

    MISSING_TARGETS = "GPT.fit needs targets: (tokens[:, :-1], tokens[:, 1:]) pairs (see kerasvk.data.text)."
    XLA_MIN_TOKENS = 256  # generate(xla=None): the XLA loop from this many new tokens on (see generate)

    def __init__(
        self,
        vocab=None,
        context_length=256,
        num_layers=4,
        num_heads=4,
        dim=128,
        mlp_ratio=4,
        dropout=0.0,
        tie_weights=True,
        name="gpt",
        **kwargs,
    ):
        vocab = pydoc_vocab() if vocab is None else vocab
        tokenizer = CharTokenizer(vocab)
        for nm, v in (("context_length", context_length), ("num_layers", num_layers), ("num_heads", num_heads), ("dim", dim)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{nm} must be a positive integer. Received: {nm}={v!r}")
        if dim % num_heads:
            raise ValueError(f"dim must be divisible by num_heads. Received: dim={dim}, num_heads={num_heads}")
        dropout = check_number("dropout", dropout, low=0.0, high=1.0, high_open=True)
        check_int("mlp_ratio", mlp_ratio, why=" (the MLP width is mlp_ratio * dim)")
        check_bool("tie_weights", tie_weights)
        tokens = keras.Input((None,), dtype="int32", name="tokens")
        embedding = TokenAndPositionEmbedding(tokenizer.vocab_size, context_length, dim, name="embedding")
        x = embedding(tokens)
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
        blocks = [TransformerDecoderBlock(num_heads, mlp_ratio, dropout, name=f"block{i + 1}") for i in range(num_layers)]
        for block in blocks:
            x = block(x)
        ln_f = keras.layers.LayerNormalization(epsilon=1e-5, name="ln_f")
        x = ln_f(x)
        head = None
        if tie_weights:
            logits = embedding(x, reverse=True)
        else:
            head = keras.layers.Dense(tokenizer.vocab_size, use_bias=False, name="lm_head", dtype="float32")
            logits = head(x)
        super().__init__(inputs=tokens, outputs=logits, name=name, **kwargs)
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.dim = dim
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.tie_weights = tie_weights
        self.embedding = embedding
        self.blocks = blocks
        self.ln_f = ln_f
        self.lm_head = head

    # -- training ---------------------------------------------------------------------------
    # -- generation -------------------------------------------------------------------------
    def _logits(self, h):
        return self.embedding(h, reverse=True) if self.tie_weights else self.lm_head(h)

    def _token_step(self, t, token, caches):
        """Logits ``(B, vocab)`` for position ``t + 1`` from ``token`` ``(B,)`` at ``t``, writing its keys/values at ``t``."""
        h = self.embedding.embed_step(token, t)  # (B, D): the step never carries a length axis
        new = []
        for block, (k, v) in zip(self.blocks, caches):
            h, k, v = block.step(h, k, v, t)
            new.append((k, v))
        return self._logits(self.ln_f(h)), tuple(new)

    def _compiled_loop(self):
        """The whole cached generation loop as one XLA computation (TensorFlow), compiled once per batch size.

        Everything has a static shape — the token buffer and the key/value caches are ``context_length`` long,
        the step index and the stop are runtime scalars — so nothing retraces or recompiles between calls, and
        the caches are updated in place inside the loop. The per-step Gumbel noise comes in precomputed
        (``_sampling.noise_table``), so the draws are exactly the plain loop's."""

        def loop(tokens, caches, noise, start, stop, prompt_len, temperature, top_k, top_p):
            positions = tf.range(self.context_length)

            def body(t, tokens, caches):
                logits, caches = self._token_step(t, tokens[:, t], caches)
                drawn = _sampling.draw(logits, noise[t], temperature, top_k, top_p)
                nxt = tf.where(t + 1 < prompt_len, tokens[:, t + 1], drawn)
                return t + 1, tf.where((positions == t + 1)[None, :], nxt[:, None], tokens), caches

            _, tokens, _ = tf.while_loop(lambda t, *_: t < stop - 1, body, (start, tokens, caches))
            return tokens

        return _sampling.cached_graph_fn(self, "xla_loop", lambda: tf.function(loop, jit_compile=True))

    def _cached_step(self, t, tokens, caches):
        """Logits ``(B, vocab)`` for position ``t + 1`` from token ``t``, writing its keys/values at ``t`` (plain TF ops:
        the loop of the exported ``generate`` signature and of short generations)."""
        return self._token_step(t, tokens[:, t], caches)

    def prefill(self, tokens, max_length):
        """Key/value caches (length ``max_length``) holding ``tokens`` ``(B, T)`` at positions ``0..T-1``."""
        h = self.embedding.embed(tokens, 0)
        caches = []
        for block in self.blocks:
            h, k, v = block.prefill(h, max_length)
            caches.append((k, v))
        return tuple(caches)

    def _naive_step(self, t, tokens, state):
        return self(tokens[:, : t + 1], training=False)[:, -1, :], state

    def generate_ids(self, prompt_ids, num_samples, max_new_tokens, temperature, top_k, top_p, seed, use_cache=True,
                     xla=True):
        """Graph-mode core: ``prompt_ids`` ``(P,)`` → ``(num_samples, P + max_new_tokens)`` int32 ids.

        ``xla``: the cached loop is one XLA computation against ``context_length``-long caches (see
        ``_compiled_loop``); False keeps it plain TF ops against caches of the generated length (the exported
        signature, TF Serving runs no XLA:CPU by default).
        """
        prompt_ids = tf.cast(prompt_ids, tf.int32)
        p = tf.shape(prompt_ids)[0]
        total = p + tf.cast(max_new_tokens, tf.int32)
        tokens = tf.pad(prompt_ids, [[0, total - p]])
        tokens = tf.tile(tokens[None, :], [num_samples, 1])
        if use_cache and xla:
            length = self.context_length
            padded = tf.pad(tokens, [[0, 0], [0, length - total]])
            caches = self.prefill(tokens[:, : p - 1], length)  # the prompt in one parallel pass (plain TF)
            noise = _sampling.noise_table(length, p - 1, total - 1, num_samples, self.tokenizer.vocab_size, seed)
            out = self._compiled_loop()(padded, caches, noise, p - 1, total, p, tf.cast(temperature, tf.float32),
                                        tf.cast(top_k, tf.int32), tf.cast(top_p, tf.float32))
            return out[:, :total]
        if use_cache:
            return _sampling.sequence_loop(
                self._cached_step, self.prefill(tokens[:, : p - 1], total), tokens, p, p - 1, temperature, top_k,
                top_p, seed
            )
        return _sampling.sequence_loop(
            self._naive_step, tf.zeros((), tf.int32), tokens, p, p - 1, temperature, top_k, top_p, seed
        )

    def _graph_fn(self, use_cache, xla=False):
        def make():
            sig = [
                tf.TensorSpec((None,), tf.int32),
                tf.TensorSpec((), tf.int32),
                tf.TensorSpec((), tf.int32),
                tf.TensorSpec((), tf.float32),
                tf.TensorSpec((), tf.int32),
                tf.TensorSpec((), tf.float32),
                tf.TensorSpec((), tf.int32),
            ]
            return tf.function(
                lambda *a: self.generate_ids(*a, use_cache=use_cache, xla=xla), input_signature=sig,
                reduce_retracing=True
            )

        return _sampling.cached_graph_fn(self, use_cache if not xla else "xla", make)

    def default_prompt(self) -> str:
        return "\n" if "\n" in self.tokenizer.index else self.vocab[0]

    def generate(
        self,
        prompt="",
        max_new_tokens=100,
        *,
        num_samples=1,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        use_cache=True,
        return_ids=False,
        xla=None,
    ):
        """Continue ``prompt`` by ``max_new_tokens`` characters; returns ``num_samples`` strings.

        ``xla`` (cached generation): True runs the sampling loop as one XLA computation (~0.25 ms per token
        for the 0.87M-parameter bench model on this CPU vs ~1.5 ms as TF graph ops; the same tokens), paying
        a one-off compile per model and batch size (~1–5 s); None (default) uses it from
        ``XLA_MIN_TOKENS`` new tokens on, where the compile pays for itself.

        ``prompt=""`` starts from a newline (or the first vocabulary character). Characters outside
        the vocabulary, ``len(prompt) + max_new_tokens > context_length`` (there is no sliding
        window), ``temperature <= 0``, ``top_k < 0`` and ``top_p`` outside (0, 1] raise ``ValueError``.
        """
        temperature, top_k, top_p, seed = _sampling.validate_sampling(temperature, top_k, top_p, seed)
        prompt = prompt or self.default_prompt()
        ids = self.tokenizer.encode(prompt)
        room = self.context_length - len(ids)
        if room < 1:
            raise ValueError(
                f"The prompt has {len(ids)} characters; it must be shorter than context_length={self.context_length}."
            )
        _sampling.validate_positive_int(
            "max_new_tokens", max_new_tokens, room, f" = context_length {self.context_length} - prompt length {len(ids)} (no sliding window)"
        )
        _sampling.validate_positive_int("num_samples", num_samples)
        if xla not in (None, True, False):
            raise ValueError(f"xla must be None (auto), True or False. Received: xla={xla!r}")
        xla = bool(use_cache) and (max_new_tokens >= self.XLA_MIN_TOKENS if xla is None else xla)
        out = self._graph_fn(bool(use_cache), xla)(
            tf.constant(ids), num_samples, max_new_tokens, temperature, top_k, top_p, seed
        ).numpy()
        if return_ids:
            return out
        return [self.tokenizer.decode(row) for row in out]

    def serving_endpoints(self):
        """``generate(prompt, max_new_tokens, num_samples, temperature, top_k, top_p, seed)`` → text."""
        codepoints = np.array([ord(c) for c in self.vocab], dtype="int32")
        table = np.full(int(codepoints.max()) + 2, -1, dtype="int32")
        table[codepoints] = np.arange(len(codepoints), dtype="int32")
        limit = len(table) - 1
        vocab_msg = f"prompt has characters outside the vocabulary; allowed: {self.vocab!r}"

        def generate(prompt, max_new_tokens, num_samples, temperature, top_k, top_p, seed):
            cps = tf.strings.unicode_decode(prompt, "UTF-8")
            ids = tf.gather(tf.constant(table), tf.minimum(cps, limit))
            p = tf.shape(ids)[0]
            checks = [
                tf.debugging.assert_non_negative(ids, message=vocab_msg),
                tf.debugging.assert_positive(p, message="prompt must not be empty"),
                tf.debugging.assert_positive(max_new_tokens, message="max_new_tokens must be >= 1"),
                tf.debugging.assert_positive(num_samples, message="num_samples must be >= 1"),
                tf.debugging.assert_less_equal(
                    p + max_new_tokens,
                    self.context_length,
                    message=f"len(prompt) + max_new_tokens must be <= context_length={self.context_length}",
                ),
                *_sampling.graph_sampling_checks(temperature, top_k, top_p),
            ]
            with tf.control_dependencies(checks):
                out = self.generate_ids(ids, num_samples, max_new_tokens, temperature, top_k, top_p, seed, xla=False)
            chars = tf.gather(tf.constant(codepoints), out)
            return {
                "tokens": out,
                "text": tf.strings.unicode_encode(chars, "UTF-8"),
                "completion": tf.strings.unicode_encode(chars[:, p:], "UTF-8"),
            }

        sig = [
            tf.TensorSpec((), tf.string, name="prompt"),
            tf.TensorSpec((), tf.int32, name="max_new_tokens"),
            tf.TensorSpec((), tf.int32, name="num_samples"),
            tf.TensorSpec((), tf.float32, name="temperature"),
            tf.TensorSpec((), tf.int32, name="top_k"),
            tf.TensorSpec((), tf.float32, name="top_p"),
            tf.TensorSpec((), tf.int32, name="seed"),
        ]
        return {"generate": (generate, sig)}


def _example_inputs(model, batch_size=2, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, model.tokenizer.vocab_size, size=(batch_size, 9)).astype("int32")
    return ids[:, :-1], ids[:, 1:]


gpt = variant(
    GPT,
    "gpt",
    task="autoregressive",
    family="gpt",
    fixed={},
    description=(
        "Character-level GPT (decoder-only transformer, KV-cache generation); vocab defaults to the pydoc corpus's."
    ),
    test_kwargs=dict(vocab="abcdefgh \n", context_length=16, num_layers=1, num_heads=2, dim=16),
    example_inputs=_example_inputs,
)
