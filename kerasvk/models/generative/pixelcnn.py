"""PixelCNN (van den Oord et al., 2016): p(x) = Π p(x_i | x_<i) over pixels in raster order.

Input: images as float ``level / (levels - 1)`` in [0, 1] (``quantize`` makes them from uint8).
A 7×7 mask-"A" convolution (cannot see the pixel it predicts) → residual blocks of mask-"B"
convolutions (ReLU blocks, or gated ``tanh·σ`` blocks with ``gated=True``) → two 1×1 mask-"B"
convolutions → logits ``(batch, H, W, C, levels)``: a softmax over ``levels`` values (256 for
8-bit, 2 for binarised) per pixel and channel; with C > 1 channels are ordered R → G → B.

``bits_per_dim`` is the test negative log-likelihood in bits per dimension (the loss in nats
divided by ln 2). ``generate`` samples all H·W·C values in order inside one ``tf.while_loop`` (a
full forward pass per value: PixelCNN has no cache to reuse); the export adds a ``generate``
signature running that loop.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kerasvk.layers.causal_conv import GatedActivation, MaskedConv2D
from kerasvk.models.checks import check_bool, check_image_shape, check_int, is_int
from kerasvk.models.generative import _sampling
from kerasvk.layers.replicas import scale_loss
from kerasvk.registry import variant


def quantize(images, levels=256):
    """uint8 images 0..255 → ``(x float32 in [0, 1], y int32 levels)``; ``levels=2`` binarises at 128."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"quantize expects uint8 images 0..255. Received dtype={images.dtype}")
    if not isinstance(levels, int) or not 2 <= levels <= 256:
        raise ValueError(f"levels must be an integer in [2, 256] (2 = binarised). Received: levels={levels!r}")
    if images.ndim == 3:
        images = images[..., None]
    y = (images.astype("int32") * levels) // 256
    return (y.astype("float32") / (levels - 1)).astype("float32"), y


def levels_to_uint8(levels_array, levels):
    """Sampled levels → uint8 images 0..255 for saving/plotting."""
    return np.round(np.asarray(levels_array, dtype="float32") * (255.0 / (levels - 1))).astype("uint8")


@keras.saving.register_keras_serializable(package="kerasvk")
class PixelCNN(_sampling.NextTokenModel, keras.Model):
    """Input ``images`` ``(batch, H, W, C)`` in [0, 1] → logits ``(batch, H, W, C, levels)``."""

    CONFIG_ATTRIBUTES = {"input_shape": "image_shape"}

    def __init__(
        self,
        input_shape=(16, 16, 1),
        levels=256,
        filters=64,
        num_blocks=5,
        first_kernel_size=7,
        gated=False,
        name="pixelcnn",
        **kwargs,
    ):
        image_shape = check_image_shape(input_shape)
        h, w, c = image_shape
        check_int("filters", filters)
        check_int("num_blocks", num_blocks, minimum=0, why=" (0: the mask-A conv and the head only)")
        if not is_int(first_kernel_size) or first_kernel_size < 1 or first_kernel_size % 2 == 0:
            raise ValueError(f"first_kernel_size must be an odd integer >= 1 (the mask-A conv is centred on the pixel). "
                             f"Received: first_kernel_size={first_kernel_size!r}")
        check_bool("gated", gated)
        if not isinstance(levels, int) or not 2 <= levels <= 256:
            raise ValueError(f"levels must be an integer in [2, 256] (2 = binarised). Received: levels={levels!r}")
        if filters % c:
            raise ValueError(f"filters must be a multiple of the channels ({c}). Received: filters={filters}")
        images = keras.Input(image_shape, name="images")
        x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(images)
        x = MaskedConv2D(filters, first_kernel_size, "A", color_channels=c, name="conv_in_maskA")(x)
        for i in range(num_blocks):
            p = f"block{i + 1}"
            if gated:
                hdn = MaskedConv2D(2 * filters, 3, "B", color_channels=c, name=f"{p}_conv3x3")(x)
                hdn = GatedActivation(name=f"{p}_gate")(hdn)
            else:
                hdn = keras.layers.ReLU(name=f"{p}_relu1")(x)
                hdn = MaskedConv2D(filters, 3, "B", color_channels=c, name=f"{p}_conv3x3")(hdn)
                hdn = keras.layers.ReLU(name=f"{p}_relu2")(hdn)
            hdn = MaskedConv2D(filters, 1, "B", color_channels=c, name=f"{p}_conv1x1")(hdn)
            x = keras.layers.Add(name=f"{p}_add")([x, hdn])
        x = keras.layers.ReLU(name="head_relu1")(x)
        x = MaskedConv2D(filters, 1, "B", color_channels=c, name="head_conv1")(x)
        x = keras.layers.ReLU(name="head_relu2")(x)
        x = MaskedConv2D(c * levels, 1, "B", color_channels=c, name="head_logits")(x)
        # channel o = level·C + colour (colour group o % C) → (H, W, levels, C) → (H, W, C, levels)
        x = keras.layers.Reshape((h, w, levels, c), name="split_levels")(x)
        logits = keras.layers.Permute((1, 2, 4, 3), name="logits", dtype="float32")(x)  # float32 under mixed precision
        super().__init__(inputs=images, outputs=logits, name=name, **kwargs)
        self.image_shape = image_shape
        self.levels = levels
        self.filters = filters
        self.num_blocks = num_blocks
        self.first_kernel_size = first_kernel_size
        self.gated = gated
        self.bpd_tracker = keras.metrics.Mean(name="bits_per_dim")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean NLL per dimension in nats; ``y`` (int levels) defaults to ``round(x · (levels-1))``."""
        if getattr(self, "loss", None) is not None:
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        if y is None:
            y = ops.cast(ops.round(ops.cast(x, "float32") * (self.levels - 1)), "int32")
        total, nll = _sampling.next_token_loss(self, x, y, y_pred, sample_weight, training)
        self.bpd_tracker.update_state(nll / math.log(2.0))
        return scale_loss(total)  # / replicas under a strategy (kerasvk.layers.replicas)

    def bits_per_dim(self, x, y=None, batch_size=128):
        """Negative log-likelihood of ``x`` (and integer levels ``y``) in bits per dimension."""
        x = np.asarray(x, dtype="float32")
        y = np.round(x * (self.levels - 1)).astype("int32") if y is None else np.asarray(y)
        total = 0.0
        for s in range(0, len(x), batch_size):
            logits = self(x[s : s + batch_size], training=False)
            nll = keras.losses.sparse_categorical_crossentropy(y[s : s + batch_size], logits, from_logits=True)
            total += float(ops.sum(nll))
        return total / (y.size * math.log(2.0))

    # -- generation -------------------------------------------------------------------------
    def generate_levels(self, num_samples, temperature, seed):
        """Graph-mode core: sample ``(num_samples, H, W, C)`` int32 levels in raster (then colour) order."""
        h, w, c = self.image_shape
        grid = tf.zeros((num_samples, h, w, c), tf.int32)
        flat_pos = tf.reshape(tf.range(h * w * c), (1, h, w, c))
        scale = 1.0 / (self.levels - 1)

        def body(p, grid):
            i, j, k = p // (w * c), (p // c) % w, p % c
            logits = self(tf.cast(grid, tf.float32) * scale, training=False)[:, i, j, k, :]
            drawn = _sampling.sample_logits(logits, p, seed, temperature)
            grid = tf.where(flat_pos == p, drawn[:, None, None, None], grid)
            return p + 1, grid

        _, grid = tf.while_loop(lambda p, _: p < h * w * c, body, (tf.constant(0), grid), parallel_iterations=1)
        return grid

    def generate(self, num_samples=16, *, seed=0, temperature=1.0, return_levels=False):
        """Sample ``num_samples`` images; uint8 ``(n, H, W, C)`` 0..255 (or the raw levels)."""
        temperature, _, _, seed = _sampling.validate_sampling(temperature, 0, 1.0, seed)
        _sampling.validate_positive_int("num_samples", num_samples)
        sig = [tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.float32), tf.TensorSpec((), tf.int32)]
        fn = _sampling.cached_graph_fn(self, "gen", lambda: tf.function(self.generate_levels, input_signature=sig))
        out = fn(num_samples, temperature, seed).numpy()
        return out if return_levels else levels_to_uint8(out, self.levels)

    def serving_endpoints(self):
        """``generate(num_samples, temperature, seed)`` → ``{levels, images}`` (uint8 0..255)."""

        def generate(num_samples, temperature, seed):
            checks = [
                tf.debugging.assert_positive(num_samples, message="num_samples must be >= 1"),
                tf.debugging.assert_greater(temperature, 0.0, message="temperature must be > 0"),
            ]
            with tf.control_dependencies(checks):
                levels = self.generate_levels(num_samples, temperature, seed)
            images = tf.cast(tf.round(tf.cast(levels, tf.float32) * (255.0 / (self.levels - 1))), tf.uint8)
            return {"levels": levels, "images": images}

        sig = [
            tf.TensorSpec((), tf.int32, name="num_samples"),
            tf.TensorSpec((), tf.float32, name="temperature"),
            tf.TensorSpec((), tf.int32, name="seed"),
        ]
        return {"generate": (generate, sig)}


def _example_inputs(model, batch_size=2, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, model.levels, size=(batch_size, *model.image_shape)).astype("int32")
    return (y / (model.levels - 1)).astype("float32"), y


pixelcnn = variant(
    PixelCNN,
    "pixelcnn",
    task="autoregressive",
    family="pixelcnn",
    fixed={},
    description=(
        "PixelCNN: masked convolutions (A then B), residual blocks, softmax over levels per pixel and channel."
    ),
    test_kwargs=dict(input_shape=(6, 6, 1), levels=4, filters=8, num_blocks=1, first_kernel_size=3),
    example_inputs=_example_inputs,
)
