"""Sampling shared by the autoregressive models (PixelCNN, WaveNet, GPT).

Sampling is *stateless*: the noise for step ``t`` is drawn from ``(seed, t)`` with
``tf.random.stateless_uniform`` and turned into a Gumbel-max draw, so the cached and the naive
generation paths (and the exported ``generate`` signature) make the same draws for the same seed.
Top-k and top-p (nucleus) filtering happen before the draw; ``temperature`` divides the logits.
``cached_graph_fn`` keeps each model's traced generation loop, so it is traced once per mode.
"""

from __future__ import annotations

import inspect
import numbers
import weakref

import tensorflow as tf

from kerasvk.layers.replicas import scale_loss
from kerasvk.models.generative._policy import built_under, with_policy


class NextTokenModel:
    """Mixin of the autoregressive ``keras.Model`` classes (GPT, WaveNet, PixelCNN).

    - ``get_config``/``from_config`` from the constructor's own parameters: each is read back from the
      attribute of the same name (``CONFIG_ATTRIBUTES`` maps a parameter to another attribute), so a
      new constructor argument cannot be forgotten in the config;
    - ``compute_loss``: the mean next-token cross-entropy in nats (:func:`next_token_loss`), raising
      ``MISSING_TARGETS`` when ``fit`` gets no targets.
    """

    CONFIG_ATTRIBUTES: dict = {}
    MISSING_TARGETS = "fit needs integer targets."
    serving_output_names = ("logits",)  # serving_default: next-token logits (unnormalised log-probabilities)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        for param in list(inspect.signature(type(self).__init__).parameters.values())[1:]:
            if param.kind is param.VAR_KEYWORD or param.name == "name":
                continue
            config[param.name] = getattr(self, self.CONFIG_ATTRIBUTES.get(param.name, param.name))
        return with_policy(self, config)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        with built_under(config):
            return cls(**config)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total, _ = next_token_loss(self, x, y, y_pred, sample_weight, training, missing_targets=self.MISSING_TARGETS)
        # keras' compiled loss is already divided by the replicas; the model's own is divided here
        return total if getattr(self, "loss", None) is not None else scale_loss(total)


def next_token_loss(model, x, y, y_pred, sample_weight, training, *, missing_targets=None):
    """Mean cross-entropy in nats of integer targets ``y`` under logits ``y_pred`` (+ the model's added losses).

    Shared by the autoregressive models' ``compute_loss``: a loss given to ``compile`` takes precedence;
    ``y=None`` raises ``ValueError(missing_targets)``. Returns ``(total, nll)``: ``nll`` without the
    regularization terms, for bits/dim or perplexity trackers.
    """
    import keras
    from keras import ops

    if getattr(model, "loss", None) is not None:
        total = keras.Model.compute_loss(model, x, y, y_pred, sample_weight, training)
        return total, total
    if y is None:
        raise ValueError(missing_targets or "fit needs integer targets.")
    nll = ops.mean(keras.losses.sparse_categorical_crossentropy(y, y_pred, from_logits=True))
    total = nll + ops.sum(model.losses) if model.losses else nll
    return total, nll


def validate_sampling(temperature=1.0, top_k=0, top_p=1.0, seed=0):
    """Raise ``ValueError`` (naming the allowed values) for bad sampling settings; return them typed."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (1.0 = unchanged). Received: temperature={temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = no top-k filtering). Received: top_k={top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1.0 = no nucleus filtering). Received: top_p={top_p!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**31:
        raise ValueError(f"seed must be an integer in [0, 2**31). Received: seed={seed!r}")
    return float(temperature), int(top_k), float(top_p), int(seed)


def validate_positive_int(name, value, maximum=None, why=""):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1. Received: {name}={value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}{why}. Received: {name}={value!r}")
    return int(value)


def graph_sampling_checks(temperature, top_k, top_p):
    """In-graph versions of ``validate_sampling`` for exported signatures (InvalidArgumentError)."""
    return [
        tf.debugging.assert_greater(temperature, 0.0, message="temperature must be > 0"),
        tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0 (0 = off)"),
        tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1]"),
        tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]"),
    ]


def filter_logits(logits, temperature, top_k, top_p):
    """``logits / temperature`` with everything outside the top-k and the top-p nucleus set to -inf."""
    logits = tf.cast(logits, tf.float32) / tf.cast(temperature, tf.float32)
    top_k, top_p = tf.cast(top_k, tf.int32), tf.cast(top_p, tf.float32)
    # top_k=0 and top_p=1 (the defaults) filter nothing: skip the sort/softmax/cumsum (a third of the ops of a
    # cached generation step), which also never drops a token whose probability rounds the cumsum to 1
    return tf.cond(tf.logical_or(top_k > 0, top_p < 1.0), lambda: _filtered(logits, top_k, top_p), lambda: logits)


def _filtered(logits, top_k, top_p):
    vocab = tf.shape(logits)[-1]
    neg_inf = tf.constant(float("-inf"), tf.float32)
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth = tf.gather(sorted_logits, k - 1, axis=-1)[..., None]
    logits = tf.where(logits < kth, neg_inf, logits)
    # Nucleus: keep the smallest prefix of the sorted distribution whose mass reaches top_p.
    sorted_logits = tf.where(sorted_logits < kth, neg_inf, sorted_logits)
    probs = tf.nn.softmax(sorted_logits, axis=-1)
    mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
    keep = mass_before < top_p
    # (the most likely token always has mass_before = 0 < top_p, so at least one token stays)
    threshold = tf.reduce_min(tf.where(keep, sorted_logits, tf.constant(float("inf"))), axis=-1, keepdims=True)
    return tf.where(logits < threshold, neg_inf, logits)


def gumbel_noise(shape, step, seed):
    """The Gumbel noise of step ``step``: ``-log(-log(u))``, ``u`` stateless-uniform from ``(seed, step)``."""
    noise_seed = tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])
    u = tf.random.stateless_uniform(shape, seed=noise_seed, minval=1e-20, maxval=1.0)
    return -tf.math.log(-tf.math.log(u))


def draw(logits, noise, temperature=1.0, top_k=0, top_p=1.0):
    """Gumbel-max draw per row of ``logits`` ``(batch, vocab)`` with the step's ``noise`` (same shape)."""
    return tf.argmax(filter_logits(logits, temperature, top_k, top_p) + noise, axis=-1, output_type=tf.int32)


def sample_logits(logits, step, seed, temperature=1.0, top_k=0, top_p=1.0):
    """One categorical draw per row of ``logits`` ``(batch, vocab)`` (Gumbel-max, noise from (seed, step))."""
    return draw(logits, gumbel_noise(tf.shape(logits), step, seed), temperature, top_k, top_p)


def noise_table(length, start, stop, batch, vocab, seed):
    """``(length, batch, vocab)``: row ``t`` the noise ``sample_logits`` draws at step ``t`` for ``start <= t < stop``
    (zeros elsewhere), computed with the same TF ops outside any XLA computation (its random and log kernels
    are not XLA's), so a compiled generation loop makes exactly the draws of the plain one."""
    steps = tf.range(start, stop)
    rows = tf.map_fn(lambda t: gumbel_noise(tf.stack([batch, vocab]), t, seed), steps,
                     fn_output_signature=tf.TensorSpec((None, None), tf.float32), parallel_iterations=16)
    rows = tf.reshape(rows, [-1, batch, vocab])
    table = tf.concat([tf.zeros([start, batch, vocab]), rows, tf.zeros([length - stop, batch, vocab])], axis=0)
    return tf.ensure_shape(table, [length, None, None]) if isinstance(length, int) else table


def sequence_loop(step_fn, state, tokens, prompt_len, start, temperature, top_k, top_p, seed, return_state=False):
    """Fill ``tokens`` ``(batch, total)`` left to right inside a ``tf.while_loop``.

    ``step_fn(t, tokens, state) -> (logits (batch, vocab), state)`` predicts position ``t + 1`` from
    positions ``<= t``. Positions ``< prompt_len`` are kept (the prompt), later ones are sampled with
    the noise of step ``t``. ``start`` is the first ``t``, normally ``prompt_len - 1``: a cached path
    first *prefills* its cache with the prompt's first ``prompt_len - 1`` tokens in one parallel pass.
    ``return_state=True`` returns ``(tokens, final state)`` (e.g. for per-step timestamps in a bench).
    """
    total = tf.shape(tokens)[1]
    positions = tf.range(total)

    def body(t, tokens, state):
        logits, state = step_fn(t, tokens, state)
        drawn = sample_logits(logits, t, seed, temperature, top_k, top_p)
        nxt = tf.where(t + 1 < prompt_len, tokens[:, t + 1], drawn)
        tokens = tf.where((positions == t + 1)[None, :], nxt[:, None], tokens)
        return t + 1, tokens, state

    _, tokens, state = tf.while_loop(
        lambda t, *_: t < total - 1, body, (tf.cast(start, tf.int32), tokens, state), parallel_iterations=1
    )
    return (tokens, state) if return_state else tokens


_GRAPH_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cached_graph_fn(model, key, make_fn):
    """``make_fn()`` (a ``tf.function``) built once per ``(model, key)`` and reused on later calls.

    The autoregressive models trace their generation loop once per mode (cached / naive) instead of at
    every ``generate`` call; the cache is keyed weakly on the model, so it is not kept alive by it.
    """
    fns = _GRAPH_FNS.setdefault(model, {})
    if key not in fns:
        fns[key] = make_fn()
    return fns[key]
