"""Domain-adversarial training (DANN, Ganin et al., 2016).

A shared encoder feeds a label head (trained on labelled *source* images) and, behind a
:class:`~kerasvk.layers.gradient_reversal.GradientReversal` layer, a domain head that tells source from
(unlabelled) *target* images. One backward pass of ``L_label + L_domain`` trains the domain head to
separate the domains and — through the reversed gradient — the encoder to make them
indistinguishable: the encoder minimises ``L_label − λ·L_domain``. λ ramps from 0 to ``lambda_max``
as ``λ_p = 2 / (1 + exp(−10·p)) − 1`` with training progress ``p`` = step / ``ramp_steps``.

Training data are ``((source_images, target_images), source_labels)`` batches
(:func:`dann_dataset` zips two ``kerasvk.data`` pipelines); predicting and evaluating take plain
images. ``model.classifier()`` is the encoder + label head as a plain functional classifier, the model to
save and export.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

from kerasvk.layers.gradient_reversal import GradientReversal
from kerasvk.models.classification.digits_encoder import digits_encoder as _digits_encoder
from kerasvk.layers.replicas import scale_loss


def dann_lambda(progress, lambda_max=1.0):
    """The DANN ramp ``lambda_max · (2 / (1 + exp(−10·p)) − 1)`` for progress ``p`` in [0, 1] (float)."""
    p = min(max(float(progress), 0.0), 1.0)
    return lambda_max * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


@keras.saving.register_keras_serializable(package="kerasvk")
class DANN(keras.Model):
    """Encoder + label head + (gradient reversal → domain head), trained with ``compute_loss``.

    Args:
        encoder: model images → feature vectors ``(batch, features)``.
        label_head: model features → class probabilities.
        domain_head: model features → one domain logit (source 0, target 1).
        ramp_steps: training steps over which λ ramps up (``p = step / ramp_steps``, capped at 1);
            :func:`fit_dann` sets it from epochs × steps per epoch.
        lambda_max: λ at the end of the ramp.
        domain_weight: weight of the domain loss in the total.
    """

    def __init__(
        self,
        encoder,
        label_head,
        domain_head,
        *,
        ramp_steps=1000,
        lambda_max=1.0,
        domain_weight=1.0,
        name="dann",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not isinstance(ramp_steps, int) or isinstance(ramp_steps, bool) or ramp_steps < 1:
            raise ValueError(f"DANN: ramp_steps must be an integer >= 1. Received: ramp_steps={ramp_steps!r}")
        for nm, v in (("lambda_max", lambda_max), ("domain_weight", domain_weight)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
                raise ValueError(f"DANN: {nm} must be a number >= 0. Received: {nm}={v!r}")
        self.encoder = encoder
        self.label_head = label_head
        self.domain_head = domain_head
        self.reversal = GradientReversal(float(lambda_max), name="gradient_reversal")
        self.ramp_steps = int(ramp_steps)
        self.lambda_max = float(lambda_max)
        self.domain_weight = float(domain_weight)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.label_loss_tracker = keras.metrics.Mean(name="label_loss")
        self.domain_loss_tracker = keras.metrics.Mean(name="domain_loss")
        self.label_accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.domain_accuracy = keras.metrics.BinaryAccuracy(name="domain_accuracy", threshold=0.0)
        self.lambda_tracker = keras.metrics.Mean(name="lambda")
        self.built = True  # every part is a built model: nothing to build from input shapes

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.label_loss_tracker,
            self.domain_loss_tracker,
            self.label_accuracy,
            self.domain_accuracy,
            self.lambda_tracker,
        ]

    def current_lambda(self):
        """λ_p at the optimizer's current step, as a tensor (``lambda_max`` before compile)."""
        if getattr(self, "optimizer", None) is None:  # keras sets the attribute in compile
            return ops.convert_to_tensor(self.lambda_max, "float32")
        p = ops.minimum(ops.cast(self.optimizer.iterations, "float32") / float(self.ramp_steps), 1.0)
        return self.lambda_max * (2.0 / (1.0 + ops.exp(-10.0 * p)) - 1.0)

    def call(self, inputs, training=None):
        if isinstance(inputs, (tuple, list)):
            if len(inputs) != 2:
                raise ValueError("DANN: training inputs are (source_images, target_images).")
            xs, xt = inputs
            n = ops.shape(xs)[0]
            feats = self.encoder(ops.concatenate([xs, xt], axis=0), training=training)
            labels = self.label_head(feats[:n], training=training)
            domain = self.domain_head(self.reversal(feats, lambda_=self.current_lambda()), training=training)
            return {"label": labels, "domain": domain}
        return self.label_head(self.encoder(inputs, training=training), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        probs = y_pred["label"] if isinstance(y_pred, dict) else y_pred
        label_loss = ops.mean(keras.losses.sparse_categorical_crossentropy(y, probs))
        total = label_loss
        if isinstance(y_pred, dict):
            n = ops.shape(probs)[0]
            d_logits = ops.squeeze(y_pred["domain"], axis=-1)
            d_true = ops.concatenate(
                [ops.zeros((n,), d_logits.dtype), ops.ones((ops.shape(d_logits)[0] - n,), d_logits.dtype)]
            )
            domain_loss = ops.mean(keras.losses.binary_crossentropy(d_true[:, None], d_logits[:, None], from_logits=True))
            total = total + self.domain_weight * domain_loss
            self.domain_loss_tracker.update_state(domain_loss)
            self.lambda_tracker.update_state(self.current_lambda())
        if self.losses:
            total = total + ops.sum(self.losses)
        self.loss_tracker.update_state(total)
        self.label_loss_tracker.update_state(label_loss)
        return scale_loss(total)  # / replicas under a strategy (kerasvk.layers.replicas)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):
            n = ops.shape(y_pred["label"])[0]
            d_logits = y_pred["domain"]
            d_true = ops.concatenate(
                [ops.zeros((n, 1), d_logits.dtype), ops.ones((ops.shape(d_logits)[0] - n, 1), d_logits.dtype)]
            )
            self.domain_accuracy.update_state(d_true, d_logits)
            y_pred = y_pred["label"]
        self.label_accuracy.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def classifier(self, name=None):
        """Encoder + label head as a plain functional classifier (shares the weights; save/export this)."""
        inputs = keras.Input(shape=self.encoder.inputs[0].shape[1:], name="images")
        outputs = self.label_head(self.encoder(inputs))
        return keras.Model(inputs, outputs, name=name or f"{self.name}_classifier")

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "label_head": keras.saving.serialize_keras_object(self.label_head),
            "domain_head": keras.saving.serialize_keras_object(self.domain_head),
            "ramp_steps": self.ramp_steps,
            "lambda_max": self.lambda_max,
            "domain_weight": self.domain_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for k in ("encoder", "label_head", "domain_head"):
            config[k] = keras.saving.deserialize_keras_object(config[k])
        return cls(**config)


def digits_encoder(input_shape=(32, 32, 3), name="encoder"):
    """Ganin et al.'s MNIST encoder without its head (feature maps), named ``encoder``.

    Kept for old callers; the model lives in ``kerasvk.models.classification.digits_encoder`` and is
    registered as ``"digits_encoder"`` (``build_dann("digits_encoder", ...)`` builds it headless).
    """
    return _digits_encoder(input_shape, include_top=False, name=name)


def build_dann(
    backbone,
    num_classes,
    *,
    input_shape=None,
    pooling="avg",
    domain_units=64,
    label_units=None,
    ramp_steps=1000,
    lambda_max=1.0,
    domain_weight=1.0,
    name="dann",
    **build_kwargs,
):
    """A :class:`DANN` around ``backbone``: a registered classifier name (built with ``include_top=False``)
    or a keras encoder model. Feature maps become vectors by ``pooling``: ``"avg"`` (global average) or
    ``"flatten"`` (keeps the spatial layout of the feature maps).

    Heads: ``[Dense(label_units, relu)] → Dense(num_classes, softmax, name="predictions")`` (the hidden
    layer only if ``label_units`` is set) and ``Dense(domain_units, relu) ×2 → Dense(1)``.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"build_dann: num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
    if isinstance(backbone, str):
        from kerasvk.registry import build

        kw = dict(build_kwargs, include_top=False, pooling=None)
        if input_shape is not None:
            kw["input_shape"] = input_shape
        encoder = build(backbone, **kw)
    elif isinstance(backbone, keras.Model):
        encoder = backbone
    else:
        raise ValueError(
            f"build_dann: backbone must be a registered model name or a keras.Model encoder. Received: {backbone!r}"
        )
    if pooling not in ("avg", "flatten"):
        raise ValueError(f"build_dann: pooling must be 'avg' or 'flatten'. Received: pooling={pooling!r}")
    if len(encoder.outputs[0].shape) == 4:
        inp = keras.Input(shape=encoder.inputs[0].shape[1:], name="images")
        pool = keras.layers.GlobalAveragePooling2D(name="avg_pool") if pooling == "avg" else keras.layers.Flatten(name="flatten")
        encoder = keras.Model(inp, pool(encoder(inp)), name="encoder")
    elif len(encoder.outputs[0].shape) != 2:
        raise ValueError(
            f"build_dann: the encoder must output feature maps (batch, h, w, c) or vectors (batch, features). "
            f"Received output shape {tuple(encoder.outputs[0].shape)}"
        )
    feat = encoder.outputs[0].shape[-1]
    hidden = [keras.layers.Dense(int(label_units), activation="relu", name="label_fc")] if label_units else []
    # the two outputs float32 under a mixed precision policy: the losses on them stay float32
    label_head = keras.Sequential(
        [keras.Input((feat,)), *hidden,
         keras.layers.Dense(num_classes, activation="softmax", name="predictions", dtype="float32")],
        name="label_head",
    )
    domain_head = keras.Sequential(
        [
            keras.Input((feat,)),
            keras.layers.Dense(domain_units, activation="relu", name="domain_fc1"),
            keras.layers.Dense(domain_units, activation="relu", name="domain_fc2"),
            keras.layers.Dense(1, name="domain_logit", dtype="float32"),
        ],
        name="domain_head",
    )
    return DANN(
        encoder, label_head, domain_head, ramp_steps=ramp_steps, lambda_max=lambda_max,
        domain_weight=domain_weight, name=name,
    )


def dann_dataset(source, target):
    """Zip a labelled source pipeline and a (repeated) target pipeline into ``((xs, xt), ys)`` batches.

    Target labels, if the pipeline has them, are dropped: DANN never sees them. Each target batch is cut
    to its source batch's size, so every step's domain loss sees as many source as target images (the
    last, short source batch of an epoch included).
    """
    import tensorflow as tf

    target_images = target.map(lambda *el: el[0]).repeat()
    return tf.data.Dataset.zip((source, target_images)).map(
        lambda s, t: ((s[0], t[: tf.shape(s[0])[0]]), s[1]), num_parallel_calls=tf.data.AUTOTUNE
    )


@keras.saving.register_keras_serializable(package="kerasvk")
class DANNLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """Ganin & Lempitsky's annealing ``lr_p = initial / (1 + 10·p)^0.75`` with ``p`` = step / ``total_steps``."""

    def __init__(self, initial_learning_rate=0.01, total_steps=1000):
        if not initial_learning_rate > 0 or not int(total_steps) >= 1:
            raise ValueError(
                f"DANNLearningRate: initial_learning_rate must be > 0 and total_steps >= 1. "
                f"Received: {initial_learning_rate!r}, {total_steps!r}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        p = ops.minimum(ops.cast(step, "float32") / float(self.total_steps), 1.0)
        return self.initial_learning_rate / (1.0 + 10.0 * p) ** 0.75

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps}


def fit_dann(model, source, target, *, epochs=10, optimizer=None, validation_data=None, callbacks=None,
             verbose=0, jit_compile="auto"):
    """Set ``model.ramp_steps`` to the whole run, compile (``jit_compile`` as keras' ``compile`` takes it)
    and fit on :func:`dann_dataset` batches."""
    import tensorflow as tf

    steps = int(tf.data.experimental.cardinality(source).numpy())
    if steps <= 0:
        raise ValueError("fit_dann: the source pipeline must be finite with a known number of batches.")
    model.ramp_steps = max(1, steps * int(epochs))
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    from kerasvk.training.trainer import build_optimizer

    build_optimizer(model)  # the first train step is traced once, not twice
    return model.fit(
        dann_dataset(source, target), epochs=epochs, validation_data=validation_data, callbacks=callbacks, verbose=verbose
    )
