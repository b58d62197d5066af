"""DCGAN (Radford et al., 2016) and WGAN-GP (Gulrajani et al., 2017), trained with plain ``model.fit``.

Generator: noise (latent_dim) → Dense → BN → ReLU → reshape to (H/2^k, W/2^k, filters[0]) → stride-2 4×4
transposed convs (BN, ReLU) → tanh → rescaled to [0, 1]. Discriminator / critic: images in [0, 1] →
rescaled to [−1, 1] → stride-2 4×4 convs with LeakyReLU(0.2) → Dense(1) logit (a score for WGAN-GP).
No batch norm in the discriminator, so the WGAN-GP gradient penalty is per example.

A ``GAN`` is a functional model ``noise → images``; ``generator`` and ``discriminator`` are its
sub-models. ``fit`` takes real images in [0, 1] (arrays or a dataset of images, or of ``(images, labels)``
with the labels ignored); the generator's noise is drawn from the model's own ``SeedGenerator``, or
given explicitly with ``fit(x=noise, y=images)``. One ``train_step`` = ``d_steps`` discriminator updates
on real and fake batches (one-sided label smoothing: real targets 1 − ``label_smoothing``), then one generator
update with flipped labels (non-saturating loss). History: ``d_loss``, ``g_loss``, ``d_x`` = mean D(x)
on real images and ``d_g_z`` = mean D(G(z)) on fakes (probabilities; raw critic scores for WGAN-GP, which
also reports ``gp``).

``train_step`` uses ``tf.GradientTape`` (two optimizers and an inner loop), so GANs train on the
TensorFlow backend; the VAE is the backend-agnostic ``compute_loss`` example.

Failure modes of the plain GAN — mode collapse (D(G(z)) high while samples all look alike), vanishing
generator gradients (D(x) → 1, D(G(z)) → 0, g_loss climbing) and oscillation — are what ``WGANGP``
addresses: a critic with no sigmoid, the Wasserstein loss, a gradient penalty λ(‖∇D(x̂)‖₂ − 1)² on random
interpolates x̂ and ``d_steps`` (n_critic) = 5 critic updates per generator update.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kerasvk.layers.generative import seeded_normal
from kerasvk.layers.replicas import replica_slice, scale_loss
from kerasvk.models.generative._policy import built_under, with_policy
from kerasvk.models.checks import check_image_shape, check_int, check_int_sequence, check_number
from kerasvk.registry import variant


def _validate(input_shape, latent_dim, g_filters, d_filters):
    shape = check_image_shape(input_shape, model="GAN")
    check_int("latent_dim", latent_dim)
    g_filters = check_int_sequence("g_filters", g_filters, why=" (the generator's, one per block)")
    d_filters = check_int_sequence("d_filters", d_filters, why=" (the discriminator's, one per block)")
    step = 2 ** len(g_filters)
    if shape[0] % step or shape[1] % step:
        raise ValueError(
            f"The generator upsamples by 2 per filter entry ({len(g_filters)} → ×{step}), "
            "so height and width must "
            f"be multiples of {step} (e.g. {[step * k for k in range(1, 5)]}). Received: input_shape={shape}."
        )
    return tuple(int(d) for d in shape), g_filters, d_filters


def build_generator(shape, latent_dim, filters, name="generator"):
    """DCGAN generator: noise → images in [0, 1] (tanh, then rescaled)."""
    h, w, c = shape
    step = 2 ** len(filters)
    noise = keras.Input((latent_dim,), name="noise")
    x = keras.layers.Dense((h // step) * (w // step) * filters[0], use_bias=False, name="g_project")(noise)
    x = keras.layers.BatchNormalization(synchronized=True, name="g_project_bn")(x)
    x = keras.layers.ReLU(name="g_project_relu")(x)
    x = keras.layers.Reshape((h // step, w // step, filters[0]), name="g_reshape")(x)
    for i, f in enumerate(filters[1:], start=1):
        x = keras.layers.Conv2DTranspose(
            f, 4, strides=2, padding="same", use_bias=False, name=f"g_block{i}_deconv"
        )(x)
        x = keras.layers.BatchNormalization(synchronized=True, name=f"g_block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"g_block{i}_relu")(x)
    x = keras.layers.Conv2DTranspose(c, 4, strides=2, padding="same", activation="tanh", name="g_output")(x)
    x = keras.layers.Rescaling(0.5, offset=0.5, name="g_to_unit", dtype="float32")(x)  # float32 images under mixed precision
    return keras.Model(noise, x, name=name)


def build_discriminator(shape, filters, name="discriminator"):
    """DCGAN discriminator / WGAN critic: images in [0, 1] → one logit (score) per image."""
    images = keras.Input(shape, name="images")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="d_from_unit")(images)
    for i, f in enumerate(filters, start=1):
        x = keras.layers.Conv2D(f, 4, strides=2, padding="same", name=f"d_block{i}_conv")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"d_block{i}_lrelu")(x)
    x = keras.layers.Flatten(name="d_flatten")(x)
    x = keras.layers.Dense(1, name="d_logit", dtype="float32")(x)
    return keras.Model(images, x, name=name)


def _clone_optimizer(opt):
    return opt.__class__.from_config(opt.get_config())


@keras.saving.register_keras_serializable(package="kerasvk")
class GAN(keras.Model):
    """DCGAN: ``noise → images`` with an adversarial ``train_step``; see the module docstring."""

    default_d_steps = 1
    serving_output_names = ("images",)  # serving_default: the generator's images of the given noise

    def __init__(
        self,
        input_shape=(32, 32, 1),
        latent_dim=64,
        g_filters=(128, 64),
        d_filters=(64, 128),
        seed=None,
        name="dcgan",
        **kwargs,
    ):
        shape, g_filters, d_filters = _validate(input_shape, latent_dim, g_filters, d_filters)
        generator = build_generator(shape, latent_dim, g_filters)
        discriminator = build_discriminator(shape, d_filters)
        noise = keras.Input((latent_dim,), name="noise")
        images = keras.layers.Identity(name="images", dtype="float32")(generator(noise))
        super().__init__(noise, images, name=name, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.image_shape = shape
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # validation draws its own noise, so evaluating between epochs never shifts the training noise
        self.eval_seed_generator = keras.random.SeedGenerator(None if seed is None else int(seed) + 7919)
        self._hp = dict(
            input_shape=shape, latent_dim=int(latent_dim), g_filters=g_filters, d_filters=d_filters, seed=seed
        )
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_x_tracker = keras.metrics.Mean(name="d_x")
        self.d_g_z_tracker = keras.metrics.Mean(name="d_g_z")
        self.d_steps = self.default_d_steps
        self.label_smoothing = 0.0

    # ----- compile ------------------------------------------------------------------------------
    def _default_optimizer(self):
        return keras.optimizers.Adam(2e-4, beta_1=0.5)

    def compile(
        self, optimizer=None, d_optimizer=None, g_optimizer=None, label_smoothing=0.1, d_steps=None, **kwargs
    ):
        """Two optimizers (default Adam(2e-4, β1=0.5) each). ``optimizer`` alone: D uses it, G a copy.

        ``label_smoothing`` ∈ [0, 0.5): real targets are 1 − label_smoothing (one-sided).
        ``d_steps``: discriminator updates per generator update (default 1; 5 for WGAN-GP).
        """
        optimizer = keras.optimizers.get(optimizer) if isinstance(optimizer, (str, dict)) else optimizer
        if d_optimizer is None:
            d_optimizer = optimizer if optimizer is not None else self._default_optimizer()
        if g_optimizer is None:
            g_optimizer = _clone_optimizer(optimizer) if optimizer is not None else self._default_optimizer()
        d_optimizer, g_optimizer = keras.optimizers.get(d_optimizer), keras.optimizers.get(g_optimizer)
        if self.dtype_policy.name == "mixed_float16":  # loss scaling for both (keras' compile does it for one)
            scaled = keras.optimizers.LossScaleOptimizer
            d_optimizer = d_optimizer if isinstance(d_optimizer, scaled) else scaled(d_optimizer)
            g_optimizer = g_optimizer if isinstance(g_optimizer, scaled) else scaled(g_optimizer)
        if d_optimizer is g_optimizer:
            raise ValueError(
                "d_optimizer and g_optimizer must be two optimizer objects (each keeps its own state)."
            )
        if not 0.0 <= float(label_smoothing) < 0.5:
            raise ValueError(
                f"label_smoothing must be in [0, 0.5). Received: label_smoothing={label_smoothing}"
            )
        d_steps = self.default_d_steps if d_steps is None else d_steps
        if not isinstance(d_steps, (int, np.integer)) or d_steps < 1:
            raise ValueError(f"d_steps must be an integer >= 1. Received: d_steps={d_steps!r}")
        kwargs.pop("loss", None)
        super().compile(optimizer=g_optimizer, **kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.label_smoothing = float(label_smoothing)
        self.d_steps = int(d_steps)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "label_smoothing": self.label_smoothing,
            "d_steps": self.d_steps,
        }

    def compile_from_config(self, config):
        config = dict(config)
        for k in ("d_optimizer", "g_optimizer"):
            config[k] = keras.saving.deserialize_keras_object(config[k])
        self.compile(**config)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_x_tracker, self.d_g_z_tracker]

    # ----- training -----------------------------------------------------------------------------
    def _noise(self, batch, eval=False):
        """``(batch, latent_dim)`` standard normal noise; under a strategy this replica's rows of the global
        batch's draw, so N replicas use the noise one device would (``kerasvk.layers.replicas``)."""
        seed = self.eval_seed_generator if eval else self.seed_generator
        return replica_slice(lambda n: keras.random.normal((n, self.latent_dim), dtype=self.compute_dtype, seed=seed), batch)

    def _d_loss(self, real, fake, tape):
        """Discriminator loss on one real and one fake batch → (loss, mean D(x), mean D(G(z)), extras)."""
        real_logits = self.discriminator(real, training=True)
        fake_logits = self.discriminator(fake, training=True)
        real_t = ops.full_like(real_logits, 1.0 - self.label_smoothing)
        loss = ops.mean(ops.binary_crossentropy(real_t, real_logits, from_logits=True)) + ops.mean(
            ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits, from_logits=True)
        )
        return loss, ops.mean(ops.sigmoid(real_logits)), ops.mean(ops.sigmoid(fake_logits)), {}

    def _g_loss(self, fake_logits):
        return ops.mean(ops.binary_crossentropy(ops.ones_like(fake_logits), fake_logits, from_logits=True))

    def train_step(self, data):
        import tensorflow as tf

        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "GAN.train_step uses tf.GradientTape: train GANs with KERAS_BACKEND=tensorflow."
            )
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if y is not None and len(getattr(x, "shape", ())) == 2 and len(y.shape) == 4:
            noise, real = x, y  # fit(x=noise, y=real images)
        else:
            noise, real = None, x  # fit(real images) or fit((images, labels)): labels unused
        real = tf.cast(real, self.compute_dtype)
        batch = tf.shape(real)[0]
        for step in range(self.d_steps):
            z = noise if (noise is not None and step == 0) else self._noise(batch)
            fake = self.generator(z, training=True)
            with tf.GradientTape() as tape:
                d_loss, d_x, d_g_z, extras = self._d_loss(real, fake, tape)
                # / replicas (their gradients are summed), × the loss scale under mixed_float16
                scaled = self.d_optimizer.scale_loss(scale_loss(d_loss))
            grads = tape.gradient(scaled, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        z = noise if noise is not None else self._noise(batch)
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = self._g_loss(fake_logits)
            scaled = self.g_optimizer.scale_loss(scale_loss(g_loss))
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_x_tracker.update_state(d_x)
        self.d_g_z_tracker.update_state(d_g_z)
        for name, value in extras.items():
            getattr(self, f"{name}_tracker").update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        """Discriminator/generator losses on a held-out real batch, no updates."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if y is not None and len(getattr(x, "shape", ())) == 2 and len(y.shape) == 4:
            noise, real = x, y
        else:
            real = x
            noise = self._noise(ops.shape(real)[0], eval=True)
        real = ops.cast(real, self.compute_dtype)
        fake = self.generator(noise, training=False)
        real_logits = self.discriminator(real, training=False)
        fake_logits = self.discriminator(fake, training=False)
        d_loss = ops.mean(
            ops.binary_crossentropy(ops.ones_like(real_logits), real_logits, from_logits=True)
        ) + ops.mean(ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits, from_logits=True))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(self._g_loss(fake_logits))
        self.d_x_tracker.update_state(ops.mean(ops.sigmoid(real_logits)))
        self.d_g_z_tracker.update_state(ops.mean(ops.sigmoid(fake_logits)))
        return {m.name: m.result() for m in self.metrics}

    # ----- user API -----------------------------------------------------------------------------
    def generate(self, noise):
        """Images in [0, 1] for noise of shape ``(n, latent_dim)``."""
        return self.generator(ops.convert_to_tensor(noise, self.compute_dtype), training=False)

    def sample(self, n, seed=0):
        """``n`` images from z ~ N(0, I); the same ``seed`` gives the same images."""
        if int(n) < 1:
            raise ValueError(f"n must be >= 1. Received: n={n}")
        return self.generate(seeded_normal((int(n), self.latent_dim), seed, dtype=self.compute_dtype))

    def discriminate(self, images):
        """The discriminator's logit (critic score for WGAN-GP) per image in [0, 1]."""
        return self.discriminator(ops.convert_to_tensor(images, self.compute_dtype), training=False)

    def serving_endpoints(self):
        """Named SavedModel signatures: ``generate(noise)`` and ``sample(n, seed)``."""
        import tensorflow as tf

        def generate(noise):
            return {"images": self.generator(noise, training=False)}

        def sample(n, seed):
            z = seeded_normal(tf.stack([n, self.latent_dim]), seed)
            return {"images": self.generator(z, training=False)}

        return {
            "generate": (generate, [tf.TensorSpec((None, self.latent_dim), tf.float32, name="noise")]),
            "sample": (
                sample,
                [tf.TensorSpec((), tf.int32, name="n"), tf.TensorSpec((), tf.int32, name="seed")],
            ),
        }

    # ----- serialization ------------------------------------------------------------------------
    def get_config(self):
        return with_policy(self, {"name": self.name, "trainable": self.trainable, **self._hp})

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        with built_under(config):
            return cls(**config)


@keras.saving.register_keras_serializable(package="kerasvk")
class WGANGP(GAN):
    """WGAN-GP: Wasserstein critic loss + gradient penalty λ(‖∇D(x̂)‖₂ − 1)², ``d_steps`` = n_critic = 5."""

    default_d_steps = 5

    def __init__(
        self,
        input_shape=(32, 32, 1),
        latent_dim=64,
        g_filters=(128, 64),
        d_filters=(64, 128),
        gp_weight=10.0,
        seed=None,
        name="wgan_gp",
        **kwargs,
    ):
        super().__init__(
            input_shape=input_shape, latent_dim=latent_dim, g_filters=g_filters, d_filters=d_filters, seed=seed,
            name=name, **kwargs,
        )
        check_number("gp_weight", gp_weight, low=0.0, why=" (the gradient-penalty weight)")
        self.gp_weight = float(gp_weight)
        self._hp["gp_weight"] = self.gp_weight
        self.gp_tracker = keras.metrics.Mean(name="gp")

    def _default_optimizer(self):
        return keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)

    def compile(self, *args, label_smoothing=0.0, **kwargs):
        if label_smoothing:
            raise ValueError("WGAN-GP has no labels to smooth: label_smoothing must be 0.")
        super().compile(*args, label_smoothing=0.0, **kwargs)

    @property
    def metrics(self):
        return [*super().metrics, self.gp_tracker]

    def _d_loss(self, real, fake, tape):
        import tensorflow as tf

        batch = tf.shape(real)[0]
        alpha = replica_slice(lambda n: keras.random.uniform((n, 1, 1, 1), dtype=real.dtype, seed=self.seed_generator), batch)
        x_hat = alpha * real + (1.0 - alpha) * fake
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(x_hat)
            hat_scores = self.discriminator(x_hat, training=True)
        g = gp_tape.gradient(hat_scores, x_hat)
        norm = tf.sqrt(tf.reduce_sum(tf.square(g), axis=[1, 2, 3]) + 1e-12)
        gp = tf.reduce_mean(tf.square(norm - 1.0))
        real_s = self.discriminator(real, training=True)
        fake_s = self.discriminator(fake, training=True)
        d_x, d_g_z = ops.mean(real_s), ops.mean(fake_s)
        return d_g_z - d_x + self.gp_weight * gp, d_x, d_g_z, {"gp": gp}

    def _g_loss(self, fake_scores):
        return -ops.mean(fake_scores)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        real = y if (y is not None and len(getattr(x, "shape", ())) == 2 and len(y.shape) == 4) else x
        noise = x if real is y else self._noise(ops.shape(real)[0], eval=True)
        real_s = self.discriminator(ops.cast(real, self.compute_dtype), training=False)
        fake_s = self.discriminator(self.generator(noise, training=False), training=False)
        self.d_loss_tracker.update_state(ops.mean(fake_s) - ops.mean(real_s))
        self.g_loss_tracker.update_state(-ops.mean(fake_s))
        self.d_x_tracker.update_state(ops.mean(real_s))
        self.d_g_z_tracker.update_state(ops.mean(fake_s))
        return {m.name: m.result() for m in self.metrics}


def _example_inputs(model, batch_size, seed):
    """``(noise, real images)``: the forward pass maps noise → images; ``fit(noise, images)`` trains."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((batch_size, model.latent_dim)).astype("float32")
    real = rng.uniform(0, 1, (batch_size, *model.image_shape)).astype("float32")
    return noise, real


_TINY = {"input_shape": (8, 8, 1), "latent_dim": 4, "g_filters": (8, 4), "d_filters": (4, 8)}


dcgan = variant(
    GAN,
    "dcgan",
    task="generative",
    family="gan",
    fixed={},
    description="DCGAN generator/discriminator pair trained adversarially (BCE, label smoothing, d_steps).",
    test_kwargs=_TINY,
    example_inputs=_example_inputs,
)
wgan_gp = variant(
    WGANGP,
    "wgan_gp",
    task="generative",
    family="gan",
    fixed={},
    description="WGAN-GP: DCGAN generator, critic without sigmoid, gradient penalty, n_critic = 5.",
    test_kwargs=_TINY,
    example_inputs=_example_inputs,
)
