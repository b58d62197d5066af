"""Variational autoencoder (Kingma & Welling, 2014), optionally label-conditioned (CVAE).

Encoder: ``len(filters)`` stride-2 3×3 convs → Dense(dense_units) → mean μ and log-variance (latent_dim
each); ``Sampling`` layer z = μ + σ·ε (owned SeedGenerator; μ at inference); decoder: Dense → reshape →
stride-2 transposed convs → sigmoid image of the input shape.

Loss per example = reconstruction NLL summed over pixels (``likelihood="bernoulli"``: binary
cross-entropy; ``"gaussian"``: Σ(x − x̂)² / (2σ²), constant dropped) + β · KL(q(z|x) ‖ N(0, I)). It lives
in ``compute_loss``, so the stock ``train_step``/``test_step`` of every backend (TensorFlow, JAX,
PyTorch) train and evaluate it; ``fit``/``evaluate`` report ``loss``, ``reconstruction_loss`` and
``kl_loss``. ``evaluate`` runs the encoder at inference, so it scores z = μ (deterministic); use
``negative_elbo(x, num_samples)`` for a Monte-Carlo negative ELBO.

The model is a functional ``keras.Model`` subclass: inputs ``images`` (and ``labels`` for a CVAE),
outputs ``[reconstruction, z_mean, z_log_var]``. ``get_config`` holds only hyper-parameters, so
``.keras`` files load with ``safe_mode=True``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kerasvk.layers.generative import Sampling, seeded_normal
from kerasvk.layers.replicas import scale_loss
from kerasvk.models.generative._policy import built_under, with_policy
from kerasvk.models.checks import check_image_shape, check_int, check_int_sequence, check_number
from kerasvk.registry import variant

LIKELIHOODS = ("bernoulli", "gaussian")


def _validate(input_shape, latent_dim, filters, likelihood, beta, num_classes, dense_units=1, gaussian_sigma=1.0):
    shape = check_image_shape(input_shape, model="VAE")
    check_int("latent_dim", latent_dim)
    filters = check_int_sequence("filters", filters, why=" (one per stride-2 conv block)")
    check_int("dense_units", dense_units)
    check_number("gaussian_sigma", gaussian_sigma, low=0, low_open=True)
    step = 2 ** len(filters)
    if shape[0] % step or shape[1] % step:
        ok = [step * k for k in range(1, 5)]
        raise ValueError(
            f"The decoder upsamples by 2 per conv block ({len(filters)} blocks → ×{step}), "
            "so height and width "
            f"must be multiples of {step} (e.g. {ok}) to be reached exactly. Received: input_shape={shape}. "
            "Resize the images or change the number of filters."
        )
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}. Received: likelihood={likelihood!r}")
    check_number("beta", beta, low=0.0, why=" (the KL weight)")
    if num_classes is not None and (not isinstance(num_classes, (int, np.integer)) or num_classes < 2):
        raise ValueError(
            f"num_classes must be None (unconditional) or an int >= 2. Received: num_classes={num_classes!r}"
        )
    return tuple(int(d) for d in shape), filters


def _build_encoder(shape, latent_dim, filters, dense_units, num_classes):
    images = keras.Input(shape, name="images")
    x = images
    for i, f in enumerate(filters, start=1):
        x = keras.layers.Conv2D(
            f, 3, strides=2, padding="same", activation="relu", name=f"enc_block{i}_conv"
        )(x)
    x = keras.layers.Flatten(name="enc_flatten")(x)
    inputs = images
    if num_classes:
        labels = keras.Input((), dtype="int32", name="labels")
        onehot = keras.layers.CategoryEncoding(num_classes, output_mode="one_hot", name="enc_label_onehot")(
            labels
        )
        x = keras.layers.Concatenate(name="enc_condition")([x, onehot])
        inputs = [images, labels]
    x = keras.layers.Dense(dense_units, activation="relu", name="enc_dense")(x)
    # float32 under a mixed precision policy: the KL term and the reconstruction loss read these
    mean = keras.layers.Dense(latent_dim, name="z_mean", dtype="float32")(x)
    log_var = keras.layers.Dense(latent_dim, kernel_initializer="zeros", name="z_log_var", dtype="float32")(x)
    return keras.Model(inputs, [mean, log_var], name="encoder")


def _build_decoder(shape, latent_dim, filters, dense_units, num_classes):
    h, w, c = shape
    step = 2 ** len(filters)
    z = keras.Input((latent_dim,), name="z")
    x, inputs = z, z
    if num_classes:
        labels = keras.Input((), dtype="int32", name="labels")
        onehot = keras.layers.CategoryEncoding(num_classes, output_mode="one_hot", name="dec_label_onehot")(
            labels
        )
        x = keras.layers.Concatenate(name="dec_condition")([z, onehot])
        inputs = [z, labels]
    x = keras.layers.Dense(dense_units, activation="relu", name="dec_dense")(x)
    x = keras.layers.Dense((h // step) * (w // step) * filters[-1], activation="relu", name="dec_project")(x)
    x = keras.layers.Reshape((h // step, w // step, filters[-1]), name="dec_reshape")(x)
    for i, f in enumerate(reversed(filters), start=1):
        x = keras.layers.Conv2DTranspose(
            f, 3, strides=2, padding="same", activation="relu", name=f"dec_block{i}_deconv"
        )(x)
    out = keras.layers.Conv2D(c, 3, padding="same", activation="sigmoid", name="dec_output", dtype="float32")(x)
    return keras.Model(inputs, out, name="decoder")


@keras.saving.register_keras_serializable(package="kerasvk")
class VAE(keras.Model):
    """Convolutional (conditional) VAE; see the module docstring. Build with ``kerasvk.build("vae")``."""

    serving_output_names = ("reconstruction", "z_mean", "z_log_var")  # serving_default's outputs

    def __init__(
        self,
        input_shape=(32, 32, 1),
        latent_dim=16,
        filters=(32, 64),
        dense_units=256,
        beta=1.0,
        likelihood="bernoulli",
        gaussian_sigma=0.1,
        num_classes=None,
        seed=None,
        name="vae",
        **kwargs,
    ):
        shape, filters = _validate(input_shape, latent_dim, filters, likelihood, beta, num_classes, dense_units,
                                   gaussian_sigma)
        encoder = _build_encoder(shape, latent_dim, filters, dense_units, num_classes)
        decoder = _build_decoder(shape, latent_dim, filters, dense_units, num_classes)
        images = keras.Input(shape, name="images")
        if num_classes:
            labels = keras.Input((), dtype="int32", name="labels")
            inputs = [images, labels]
            mean, log_var = encoder([images, labels])
            z = Sampling(seed=seed, name="sampling")([mean, log_var])
            recon = decoder([z, labels])
        else:
            inputs = images
            mean, log_var = encoder(images)
            z = Sampling(seed=seed, name="sampling")([mean, log_var])
            recon = decoder(z)
        recon = keras.layers.Identity(name="reconstruction", dtype="float32")(recon)  # float32 under mixed precision
        mean = keras.layers.Identity(name="z_mean", dtype="float32")(mean)
        log_var = keras.layers.Identity(name="z_log_var", dtype="float32")(log_var)
        super().__init__(inputs, [recon, mean, log_var], name=name, **kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self._hp = dict(
            input_shape=shape,
            latent_dim=int(latent_dim),
            filters=filters,
            dense_units=int(dense_units),
            beta=float(beta),
            likelihood=likelihood,
            gaussian_sigma=float(gaussian_sigma),
            num_classes=None if not num_classes else int(num_classes),
            seed=seed,
        )
        self.latent_dim = int(latent_dim)
        self.num_classes = self._hp["num_classes"]
        self.beta = float(beta)
        self.likelihood = likelihood
        self.gaussian_sigma = float(gaussian_sigma)
        self.image_shape = shape
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    # ----- loss -------------------------------------------------------------------------------
    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def _reconstruction_nll(self, images, recon):
        """Per-example reconstruction negative log-likelihood, summed over pixels."""
        images = ops.cast(images, recon.dtype)
        axes = tuple(range(1, len(recon.shape)))
        if self.likelihood == "bernoulli":
            p = ops.clip(recon, 1e-7, 1.0 - 1e-7)
            nll = -(images * ops.log(p) + (1.0 - images) * ops.log(1.0 - p))
        else:
            nll = ops.square(images - recon) / (2.0 * self.gaussian_sigma**2)
        return ops.sum(nll, axis=axes)

    @staticmethod
    def _kl(mean, log_var):
        """Per-example KL(N(μ, σ²) ‖ N(0, I)), summed over latent dimensions."""
        return -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)

    def _split_inputs(self, x):
        if self.num_classes:
            if not isinstance(x, (list, tuple)) or len(x) != 2:
                raise ValueError("A conditional VAE takes inputs [images, labels].")
            return x[0], x[1]
        return x, None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images, _ = self._split_inputs(x)
        recon, mean, log_var = y_pred
        rec = self._reconstruction_nll(images, recon)
        kl = self._kl(mean, log_var)
        rec_mean, kl_mean = ops.mean(rec), ops.mean(kl)
        total = rec_mean + self.beta * kl_mean
        if self.losses:
            total = total + ops.sum(ops.stack([ops.cast(v, total.dtype) for v in self.losses]))
        self.total_loss_tracker.update_state(total)
        self.reconstruction_loss_tracker.update_state(rec_mean)
        self.kl_loss_tracker.update_state(kl_mean)
        return scale_loss(total)  # / replicas under a strategy (kerasvk.layers.replicas)

    # ----- user API -----------------------------------------------------------------------------
    def _with_labels(self, values, labels):
        """Encoder/decoder input: ``values`` alone, or ``[values, labels]`` for a conditional VAE."""
        values = ops.convert_to_tensor(values, dtype=self.compute_dtype)
        if self.num_classes:
            if labels is None:
                raise ValueError("This VAE is conditional (num_classes is set): pass labels=.")
            return [values, ops.cast(ops.convert_to_tensor(labels), "int32")]
        return values

    def encode(self, images, labels=None):
        """``(z_mean, z_log_var)`` of a batch of images in [0, 1]."""
        return self.encoder(self._with_labels(images, labels), training=False)

    def decode(self, z, labels=None):
        """Images (decoder means, in [0, 1]) for latent codes ``z`` of shape ``(n, latent_dim)``."""
        return self.decoder(self._with_labels(z, labels), training=False)

    def sample(self, n, seed=0, labels=None):
        """``n`` images decoded from z ~ N(0, I); the same ``seed`` gives the same images."""
        if int(n) < 1:
            raise ValueError(f"n must be >= 1. Received: n={n}")
        z = seeded_normal((int(n), self.latent_dim), seed, dtype=self.compute_dtype)
        return self.decode(z, labels)

    def reconstruct(self, images, labels=None):
        """Decode the posterior mean of each image: x → μ(x) → x̂."""
        mean, _ = self.encode(images, labels)
        return self.decode(mean, labels)

    def interpolate(self, a, b, steps=8, label=None):
        """Decode ``steps`` evenly spaced points on the line between the latent means of images a and b."""
        if int(steps) < 2:
            raise ValueError(f"steps must be >= 2. Received: steps={steps}")
        pair = np.stack(
            [
                np.asarray(a, "float32").reshape(self.image_shape),
                np.asarray(b, "float32").reshape(self.image_shape),
            ]
        )
        labels = None if label is None else np.full((2,), int(label), "int32")
        mean, _ = self.encode(pair, labels)
        mean = ops.convert_to_numpy(mean)
        t = np.linspace(0.0, 1.0, int(steps), dtype="float32")[:, None]
        z = (1.0 - t) * mean[0] + t * mean[1]
        lab = None if label is None else np.full((int(steps),), int(label), "int32")
        return self.decode(z, lab)

    def anomaly_score(self, images, labels=None):
        """Per-example negative ELBO at z = μ: reconstruction NLL + KL (β = 1). Higher = more anomalous."""
        mean, log_var = self.encode(images, labels)
        recon = self.decode(mean, labels)
        # images at the variable dtype (float32), as the loss reads them in training, not bfloat16/float16
        return self._reconstruction_nll(ops.convert_to_tensor(images, self.variable_dtype), recon) + self._kl(
            mean, log_var
        )

    def negative_elbo(self, images, labels=None, num_samples=8, seed=0):
        """Per-example Monte-Carlo negative ELBO: E_q[−log p(x|z)] (``num_samples`` draws) + KL (β = 1)."""
        x = ops.convert_to_tensor(images, self.variable_dtype)  # as in anomaly_score
        mean, log_var = self.encode(images, labels)  # float32 under a mixed policy (the encoder's heads)
        std = ops.exp(0.5 * log_var)
        rec = 0.0
        for s in range(int(num_samples)):
            eps = seeded_normal(tuple(mean.shape), seed * 1000 + s, dtype=mean.dtype)
            rec = rec + self._reconstruction_nll(x, self.decode(mean + std * eps, labels))
        return ops.convert_to_numpy(rec / float(num_samples) + self._kl(mean, log_var))

    # ----- export -------------------------------------------------------------------------------
    def serving_endpoints(self):
        """Named SavedModel signatures: encode, decode, sample(n, seed), anomaly_score."""
        import tensorflow as tf

        img = tf.TensorSpec((None, *self.image_shape), tf.float32, name="images")
        zs = tf.TensorSpec((None, self.latent_dim), tf.float32, name="z")
        n = tf.TensorSpec((), tf.int32, name="n")
        seed = tf.TensorSpec((), tf.int32, name="seed")
        if self.num_classes:
            lab = tf.TensorSpec((None,), tf.int32, name="labels")

            def encode(images, labels):
                m, lv = self.encoder([images, labels], training=False)
                return {"z_mean": m, "z_log_var": lv}

            def decode(z, labels):
                return {"images": self.decoder([z, labels], training=False)}

            def sample(n, seed, labels):
                z = seeded_normal(tf.stack([n, self.latent_dim]), seed)
                return {"images": self.decoder([z, labels], training=False)}

            def score(images, labels):
                return {"score": self.anomaly_score(images, labels)}

            return {
                "encode": (encode, [img, lab]),
                "decode": (decode, [zs, lab]),
                "sample": (sample, [n, seed, lab]),
                "anomaly_score": (score, [img, lab]),
            }

        def encode(images):
            m, lv = self.encoder(images, training=False)
            return {"z_mean": m, "z_log_var": lv}

        def decode(z):
            return {"images": self.decoder(z, training=False)}

        def sample(n, seed):
            z = seeded_normal(tf.stack([n, self.latent_dim]), seed)
            return {"images": self.decoder(z, training=False)}

        def score(images):
            return {"score": self.anomaly_score(images)}

        return {
            "encode": (encode, [img]),
            "decode": (decode, [zs]),
            "sample": (sample, [n, seed]),
            "anomaly_score": (score, [img]),
        }

    # ----- serialization ------------------------------------------------------------------------
    def get_config(self):
        return with_policy(self, {"name": self.name, "trainable": self.trainable, **self._hp})

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        with built_under(config):
            return cls(**config)


def _example_inputs(model, batch_size, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (batch_size, *model.image_shape)).astype("float32")
    if model.num_classes:
        return [x, rng.integers(0, model.num_classes, batch_size).astype("int32")], None
    return x, None


_TINY = {"input_shape": (16, 16, 1), "latent_dim": 2, "filters": (4, 8), "dense_units": 16}


vae = variant(
    VAE,
    "vae",
    task="generative",
    family="vae",
    fixed={"num_classes": None},
    description="Convolutional VAE: stride-2 conv encoder → (μ, log σ²) → Sampling → transposed-conv decoder.",
    test_kwargs=_TINY,
    example_inputs=_example_inputs,
)
cvae = variant(
    VAE,
    "cvae",
    task="generative",
    family="vae",
    fixed={},
    defaults={"num_classes": 10},
    description="Label-conditioned VAE: inputs [images, labels]; one-hot labels join encoder head and decoder input.",
    test_kwargs={**_TINY, "num_classes": 3},
    example_inputs=_example_inputs,
)
