"""WaveNet (van den Oord et al., 2016) over μ-law audio, with Fast-WaveNet cached generation.

μ-law codes (``quantization_channels`` classes, 256 by default) → embedding → causal conv (k=2) →
stacks of ``WaveNetResidualBlock`` (dilated causal conv with dilations 1, 2, 4, … ``max_dilation``,
repeated ``num_stacks`` times; gated tanh·sigmoid units; residual and skip 1×1 convs; optional
global conditioning on a class id) → sum of skips → ReLU → 1×1 → ReLU → 1×1 → logits per sample.

``generate(use_cache=True)`` keeps, per layer, a queue of its last ``dilation`` inputs (Paine et
al., 2016), so one new sample costs one kernel application per layer; ``use_cache=False``
recomputes the whole receptive field for each sample. Both draw the same noise for the same seed
(``_sampling.py``) and so give identical samples. The export adds a ``generate`` signature.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from kerasvk.layers.causal_conv import CausalConv1D, WaveNetResidualBlock
from kerasvk.models.checks import check_int
from kerasvk.models.generative import _sampling
from kerasvk.preprocessing.audio import mu_law_decode, mu_law_encode, tf_mu_law_decode
from kerasvk.registry import variant


def dilation_schedule(max_dilation=512, num_stacks=2):
    """``[1, 2, 4, …, max_dilation] * num_stacks``."""
    if not isinstance(max_dilation, int) or max_dilation < 1 or max_dilation & (max_dilation - 1):
        raise ValueError(f"max_dilation must be a power of two >= 1. Received: max_dilation={max_dilation!r}")
    if not isinstance(num_stacks, int) or num_stacks < 1:
        raise ValueError(f"num_stacks must be a positive integer. Received: num_stacks={num_stacks!r}")
    return [2**i for i in range(int(math.log2(max_dilation)) + 1)] * num_stacks


@keras.saving.register_keras_serializable(package="kerasvk")
class WaveNet(_sampling.NextTokenModel, keras.Model):
    """Inputs ``codes`` ``(batch, T)`` int32 (and ``class_id`` ``(batch,)`` if conditioned) → logits ``(batch, T, Q)``.

    ``fit`` minimises the mean next-sample cross-entropy in nats over μ-law classes.
    """

    MISSING_TARGETS = "WaveNet.fit needs targets: (codes[:, :-1], codes[:, 1:]) (see kerasvk.data.audio)."

    def __init__(
        self,
        quantization_channels=256,
        residual_channels=32,
        skip_channels=64,
        max_dilation=512,
        num_stacks=2,
        kernel_size=2,
        num_classes=0,
        cond_dim=16,
        sample_rate=8000,
        name="wavenet",
        **kwargs,
    ):
        dilations = dilation_schedule(max_dilation, num_stacks)
        for nm, v in (("quantization_channels", quantization_channels), ("residual_channels", residual_channels), ("skip_channels", skip_channels), ("kernel_size", kernel_size)):
            if not isinstance(v, int) or v < 2:
                raise ValueError(f"{nm} must be an integer >= 2. Received: {nm}={v!r}")
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0 (0 = unconditional). Received: num_classes={num_classes!r}")
        check_int("cond_dim", cond_dim, why=" (the class embedding width)")
        check_int("sample_rate", sample_rate, why=" (Hz, e.g. 8000 or 16000)")
        codes = keras.Input((None,), dtype="int32", name="codes")
        inputs = [codes]
        embed = keras.layers.Embedding(quantization_channels, residual_channels, name="input_embedding")
        causal = CausalConv1D(residual_channels, kernel_size, name="causal_conv")
        x = causal(embed(codes))
        cond = None
        class_embed = None
        if num_classes:
            class_id = keras.Input((), dtype="int32", name="class_id")
            inputs.append(class_id)
            class_embed = keras.layers.Embedding(num_classes, cond_dim, name="class_embedding")
            cond = class_embed(class_id)
        blocks = [
            WaveNetResidualBlock(
                residual_channels,
                skip_channels,
                d,
                kernel_size=kernel_size,
                use_cond=bool(num_classes),
                use_residual=i < len(dilations) - 1,
                name=f"block{i + 1}_d{d}",
            )
            for i, d in enumerate(dilations)
        ]
        skips = []
        for block in blocks:
            x, s = block(x, cond) if cond is not None else block(x)
            skips.append(s)
        total = keras.layers.Add(name="skip_sum")(skips) if len(skips) > 1 else skips[0]
        post1 = keras.layers.Dense(skip_channels, name="post_1x1_a")
        post2 = keras.layers.Dense(quantization_channels, name="logits", dtype="float32")  # float32 under mixed precision
        relu = keras.layers.ReLU(name="post_relu_a")
        relu2 = keras.layers.ReLU(name="post_relu_b")
        logits = post2(relu2(post1(relu(total))))
        super().__init__(inputs=inputs if num_classes else codes, outputs=logits, name=name, **kwargs)
        self.quantization_channels = quantization_channels
        self.residual_channels = residual_channels
        self.skip_channels = skip_channels
        self.max_dilation = max_dilation
        self.num_stacks = num_stacks
        self.kernel_size = kernel_size
        self.num_classes = num_classes
        self.cond_dim = cond_dim
        self.sample_rate = sample_rate
        self.dilations = dilations
        self.input_embedding = embed
        self.causal_conv = causal
        self.class_embedding = class_embed
        self.res_blocks = blocks
        self.post = [relu, post1, relu2, post2]

    @property
    def receptive_field(self) -> int:
        """Input samples that influence one output: ``(k-1)·(1 + Σ dilations) + 1``."""
        return (self.kernel_size - 1) * (1 + sum(self.dilations)) + 1

    # -- generation -------------------------------------------------------------------------
    def _head(self, h):
        for layer in self.post:
            h = layer(h)
        return h

    def _cached_step(self, cond):
        def step(t, codes, state):
            q0, queues = state
            h, q0 = self.causal_conv.step(self.input_embedding(codes[:, t]), q0)
            new_queues, total = [], None
            for block, q in zip(self.res_blocks, queues):
                h, s, q = block.step(h, q, cond)
                new_queues.append(q)
                total = s if total is None else total + s
            return self._head(total), (q0, tuple(new_queues))

        return step

    def prefill(self, codes, cond=None):
        """Every layer's queue after reading ``codes`` ``(B, T)`` (T may be 0): the cached loop's start state."""
        h, q0 = self.causal_conv.prefill(self.input_embedding(codes))
        queues = []
        for block in self.res_blocks:
            h, _, q = block.prefill(h, cond)
            queues.append(q)
        return q0, tuple(queues)

    def _naive_step(self, class_id):
        rf = self.receptive_field

        def step(t, codes, state):
            window = codes[:, tf.maximum(0, t + 1 - rf) : t + 1]
            out = self([window, class_id] if self.num_classes else window, training=False)
            return out[:, -1, :], state

        return step

    def generate_codes(self, prompt_codes, num_samples, num_steps, temperature, top_k, top_p, seed, class_id=None, use_cache=True):
        """Graph-mode core: prompt ``(P,)`` → codes ``(num_samples, P + num_steps)``."""
        prompt_codes = tf.cast(prompt_codes, tf.int32)
        p = tf.shape(prompt_codes)[0]
        total = p + tf.cast(num_steps, tf.int32)
        codes = tf.tile(tf.pad(prompt_codes, [[0, total - p]])[None, :], [num_samples, 1])
        if self.num_classes:
            class_id = tf.broadcast_to(tf.cast(class_id, tf.int32), [num_samples])
        if use_cache:
            cond = self.class_embedding(class_id) if self.num_classes else None
            state = self.prefill(codes[:, : p - 1], cond)
            return _sampling.sequence_loop(self._cached_step(cond), state, codes, p, p - 1, temperature, top_k, top_p, seed)
        return _sampling.sequence_loop(
            self._naive_step(class_id), tf.zeros((), tf.int32), codes, p, p - 1, temperature, top_k, top_p, seed
        )

    def _graph_fn(self, use_cache):
        def make():
            sig = [
                tf.TensorSpec((None,), tf.int32),
                *(tf.TensorSpec((), d) for d in (tf.int32, tf.int32, tf.float32, tf.int32, tf.float32, tf.int32, tf.int32)),
            ]

            def fn(prompt, n, steps, temperature, top_k, top_p, seed, class_id):
                return self.generate_codes(prompt, n, steps, temperature, top_k, top_p, seed, class_id, use_cache=use_cache)

            return tf.function(fn, input_signature=sig)

        return _sampling.cached_graph_fn(self, use_cache, make)

    def generate(
        self,
        num_steps=8000,
        *,
        num_samples=1,
        prompt=None,
        class_id=None,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        use_cache=True,
        return_codes=False,
    ):
        """Sample ``num_steps`` new samples; returns waveforms ``(num_samples, P + num_steps)`` in [-1, 1].

        ``prompt`` is a waveform in [-1, 1] to continue (default: one sample of silence).
        ``class_id`` is required (in ``[0, num_classes)``) for a conditioned model, refused otherwise.
        """
        temperature, top_k, top_p, seed = _sampling.validate_sampling(temperature, top_k, top_p, seed)
        _sampling.validate_positive_int("num_steps", num_steps)
        _sampling.validate_positive_int("num_samples", num_samples)
        if self.num_classes:
            if class_id is None or isinstance(class_id, bool) or not 0 <= int(class_id) < self.num_classes:
                raise ValueError(
                    f"This WaveNet is conditioned on a class: class_id must be an integer in [0, {self.num_classes}). "
                    f"Received: class_id={class_id!r}"
                )
        elif class_id is not None:
            raise ValueError(f"This WaveNet is unconditional (num_classes=0); class_id must be None. Received: {class_id!r}")
        prompt = np.zeros(1, "float32") if prompt is None else np.asarray(prompt, dtype="float32").reshape(-1)
        if prompt.size == 0 or not np.all(np.isfinite(prompt)) or np.abs(prompt).max() > 1.0:
            raise ValueError("prompt must be a non-empty waveform with finite values in [-1, 1].")
        codes = mu_law_encode(prompt, self.quantization_channels)
        out = self._graph_fn(bool(use_cache))(
            tf.constant(codes), num_samples, num_steps, temperature, top_k, top_p, seed, int(class_id or 0)
        ).numpy()
        return out if return_codes else mu_law_decode(out, self.quantization_channels)

    def serving_endpoints(self):
        """``generate(num_samples, num_steps, temperature, seed[, class_id])`` → ``{codes, audio}``."""

        def generate(num_samples, num_steps, temperature, seed, class_id=None):
            checks = [
                tf.debugging.assert_positive(num_samples, message="num_samples must be >= 1"),
                tf.debugging.assert_positive(num_steps, message="num_steps must be >= 1"),
                *_sampling.graph_sampling_checks(temperature, 0, 1.0),
            ]
            if self.num_classes:
                checks += [
                    tf.debugging.assert_non_negative(class_id, message="class_id must be >= 0"),
                    tf.debugging.assert_less(class_id, self.num_classes, message=f"class_id must be < {self.num_classes}"),
                ]
            silence = tf.constant(mu_law_encode(np.zeros(1), self.quantization_channels))
            with tf.control_dependencies(checks):
                codes = self.generate_codes(silence, num_samples, num_steps, temperature, 0, 1.0, seed, class_id)
            return {"codes": codes, "audio": tf_mu_law_decode(codes, self.quantization_channels)}

        sig = [
            tf.TensorSpec((), tf.int32, name="num_samples"),
            tf.TensorSpec((), tf.int32, name="num_steps"),
            tf.TensorSpec((), tf.float32, name="temperature"),
            tf.TensorSpec((), tf.int32, name="seed"),
        ]
        if self.num_classes:
            sig.append(tf.TensorSpec((), tf.int32, name="class_id"))
        return {"generate": (generate, sig)}


def _example_inputs(model, batch_size=2, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, model.quantization_channels, size=(batch_size, 17)).astype("int32")
    x, y = codes[:, :-1], codes[:, 1:]
    if model.num_classes:
        return [x, rng.integers(0, model.num_classes, size=(batch_size,)).astype("int32")], y
    return x, y


wavenet = variant(
    WaveNet,
    "wavenet",
    task="autoregressive",
    family="wavenet",
    fixed={},
    description="WaveNet over μ-law audio: dilated causal conv stacks, gated units, queue-cached generation.",
    test_kwargs=dict(quantization_channels=16, residual_channels=8, skip_channels=8, max_dilation=4, num_stacks=1),
    example_inputs=_example_inputs,
)
