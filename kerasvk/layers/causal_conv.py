"""Causal convolutions for autoregressive models: PixelCNN masks and WaveNet's cached dilated convs.

- ``MaskedConv2D``: a 2-D convolution whose kernel is multiplied by a fixed raster-order mask
  (van den Oord et al., 2016). Mask ``"A"`` (first layer) hides the centre pixel's own value,
  mask ``"B"`` (later layers) lets it through. With ``color_channels > 1`` channel ``k`` belongs to
  colour group ``k % color_channels`` and, at the centre tap, group ``g`` sees input groups ``< g``
  (mask A) or ``<= g`` (mask B), so R → G → B is autoregressive inside a pixel too.
- ``GatedActivation``: ``tanh(a) * sigmoid(b)`` of the two halves of the last axis.
- ``CausalConv1D``: ``Conv1D(padding="causal")`` with a ``step`` for generation: the layer keeps a
  queue of its last ``(kernel_size - 1) * dilation_rate`` inputs, so one new sample costs one kernel
  application per layer instead of a pass over the receptive field (Fast WaveNet, Paine et al. 2016).
- ``WaveNetResidualBlock``: dilated causal conv → (+ global conditioning) → gated unit → 1×1
  residual and skip convolutions, with the same ``step`` contract.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def raster_mask(kernel_size, in_channels, out_channels, mask_type, color_channels=1) -> np.ndarray:
    """The ``(kh, kw, in, out)`` 0/1 mask of a PixelCNN convolution (raster order, colour groups)."""
    kh, kw = kernel_size
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B'. Received: mask_type={mask_type!r}")
    mask = np.zeros((kh, kw, in_channels, out_channels), dtype="float32")
    ch, cw = kh // 2, kw // 2
    mask[:ch] = 1.0  # rows above the centre
    mask[ch, :cw] = 1.0  # left of the centre in the centre row
    gin = np.arange(in_channels) % color_channels
    gout = np.arange(out_channels) % color_channels
    if mask_type == "A":
        centre = gin[:, None] < gout[None, :]
    else:
        centre = gin[:, None] <= gout[None, :]
    mask[ch, cw] = centre.astype("float32")
    return mask


@keras.saving.register_keras_serializable(package="kerasvk")
class MaskedConv2D(keras.layers.Conv2D):
    """``Conv2D`` (padding "same", stride 1) with a PixelCNN raster mask of type ``"A"`` or ``"B"``."""

    def __init__(self, filters, kernel_size, mask_type="B", color_channels=1, **kwargs):
        kwargs.pop("padding", None)
        kwargs.pop("strides", None)
        super().__init__(filters, kernel_size, padding="same", strides=1, **kwargs)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B'. Received: mask_type={mask_type!r}")
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"MaskedConv2D needs odd kernel sizes. Received: kernel_size={kernel_size}")
        if int(filters) % int(color_channels):
            raise ValueError(
                f"filters must be a multiple of color_channels={color_channels}. Received: filters={filters}"
            )
        self.mask_type = mask_type
        self.color_channels = int(color_channels)

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = raster_mask(
            self.kernel_size, int(input_shape[-1]), self.filters, self.mask_type, self.color_channels
        )

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * ops.cast(self.mask, kernel.dtype))

    def get_config(self):
        config = super().get_config()
        for k in ("padding", "strides"):
            config.pop(k, None)
        return {**config, "mask_type": self.mask_type, "color_channels": self.color_channels}


@keras.saving.register_keras_serializable(package="kerasvk")
class GatedActivation(keras.layers.Layer):
    """``tanh(a) * sigmoid(b)`` where ``a, b`` are the first and second halves of the last axis."""

    def call(self, x):
        a, b = ops.split(x, 2, axis=-1)
        return ops.tanh(a) * ops.sigmoid(b)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)


@keras.saving.register_keras_serializable(package="kerasvk")
class CausalConv1D(keras.layers.Conv1D):
    """``Conv1D(padding="causal")`` plus ``initial_state``/``step`` for one-sample-at-a-time generation.

    ``step(x_t, queue)`` takes the new input ``(batch, in)`` and the queue ``(batch, (k-1)·d, in)``
    of the previous inputs (zeros at the start, which is exactly the causal zero padding) and returns
    ``(y_t, new_queue)`` with ``y_t`` equal to the full convolution's output at that time step.
    """

    def __init__(self, filters, kernel_size, dilation_rate=1, **kwargs):
        kwargs.pop("padding", None)
        super().__init__(filters, kernel_size, dilation_rate=dilation_rate, padding="causal", **kwargs)

    @property
    def queue_length(self) -> int:
        return (self.kernel_size[0] - 1) * self.dilation_rate[0]

    def initial_state(self, batch_size, in_channels=None, dtype="float32"):
        c = in_channels if in_channels is not None else self.kernel.shape[1]
        return ops.zeros((batch_size, self.queue_length, c), dtype=dtype)

    def step(self, x_t, queue):
        full = ops.concatenate([queue, x_t[:, None, :]], axis=1)  # (B, (k-1)d + 1, in)
        taps = full[:, :: self.dilation_rate[0], :]  # (B, k, in): the kernel's taps, oldest first
        y = ops.einsum("bki,kio->bo", taps, ops.cast(self.kernel, x_t.dtype))
        if self.use_bias:
            y = y + ops.cast(self.bias, y.dtype)
        if self.activation is not None:
            y = self.activation(y)
        return y, full[:, 1:, :]

    def prefill(self, x):
        """Full-sequence output and the queue after ``x`` ``(B, T, in)``: its last ``(k-1)·d`` inputs.

        ``T`` may be 0 (a one-sample prompt leaves nothing to prefill). TensorFlow's convolution of a
        zero-length sequence returns a non-empty tensor of uninitialised memory, so the convolution
        runs over ``x`` plus one zero sample and the output is cut back to ``T`` steps; causality
        makes the first ``T`` outputs exactly ``self(x)``.
        """
        q = self.queue_length
        batch, length, channels = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        y = self(ops.concatenate([x, ops.zeros((batch, 1, channels), x.dtype)], axis=1))[:, :length, :]
        padded = ops.concatenate([ops.zeros((batch, q, channels), x.dtype), x], axis=1)
        return y, padded[:, ops.shape(padded)[1] - q :, :]

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        return config


@keras.saving.register_keras_serializable(package="kerasvk")
class WaveNetResidualBlock(keras.layers.Layer):
    """One WaveNet layer: ``z = tanh(W_f*x + V_f h) · σ(W_g*x + V_g h)``; ``x + 1×1(z)``, skip ``1×1(z)``.

    ``call(x, cond=None)`` returns ``(residual_out, skip)`` for a whole sequence; ``step`` the same for
    one time step with the dilated conv's queue. ``cond`` is a ``(batch, cond_dim)`` global
    conditioning vector (e.g. an embedded class id) or None.
    """

    def __init__(
        self, residual_channels, skip_channels, dilation_rate, kernel_size=2, use_cond=False, use_residual=True, **kwargs
    ):
        super().__init__(**kwargs)
        self.residual_channels = int(residual_channels)
        self.skip_channels = int(skip_channels)
        self.dilation_rate = int(dilation_rate)
        self.kernel_size = int(kernel_size)
        self.use_cond = bool(use_cond)
        self.use_residual = bool(use_residual)  # False in the last block: only its skip output is used
        self.dilated = CausalConv1D(
            2 * self.residual_channels, self.kernel_size, dilation_rate=self.dilation_rate, name="dilated_conv"
        )
        self.cond_proj = keras.layers.Dense(2 * self.residual_channels, use_bias=False, name="cond_proj") if use_cond else None
        self.gate = GatedActivation(name="gate")
        self.res_conv = keras.layers.Dense(self.residual_channels, name="res_1x1") if self.use_residual else None
        self.skip_conv = keras.layers.Dense(self.skip_channels, name="skip_1x1")

    def build(self, input_shape):
        # (cond_proj builds on its first call: its input width is the conditioning vector's)
        self.dilated.build(input_shape)
        if self.use_residual:
            self.res_conv.build((*input_shape[:-1], self.residual_channels))
        self.skip_conv.build((*input_shape[:-1], self.residual_channels))

    def _after_conv(self, h, x, cond, expand):
        if self.use_cond:
            c = self.cond_proj(cond)
            h = h + (c[:, None, :] if expand else c)
        z = self.gate(h)
        return (x + self.res_conv(z) if self.use_residual else x), self.skip_conv(z)

    def call(self, x, cond=None):
        return self._after_conv(self.dilated(x), x, cond, expand=True)

    def initial_state(self, batch_size, dtype="float32"):
        return self.dilated.initial_state(batch_size, self.residual_channels, dtype)

    def prefill(self, x, cond=None):
        """``call`` over a prompt, also returning the dilated conv's queue for ``step``."""
        h, queue = self.dilated.prefill(x)
        res, skip = self._after_conv(h, x, cond, expand=True)
        return res, skip, queue

    def step(self, x_t, queue, cond=None):
        h, queue = self.dilated.step(x_t, queue)
        res, skip = self._after_conv(h, x_t, cond, expand=False)
        return res, skip, queue

    def get_config(self):
        return {
            **super().get_config(),
            "residual_channels": self.residual_channels,
            "skip_channels": self.skip_channels,
            "dilation_rate": self.dilation_rate,
            "kernel_size": self.kernel_size,
            "use_cond": self.use_cond,
            "use_residual": self.use_residual,
        }
