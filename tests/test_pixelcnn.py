"""PixelCNN: the mask (no pixel sees itself or later pixels), quantisation, bits/dim, in-graph generate export."""

import math

import numpy as np
import pytest
import tensorflow as tf

import kerasvk
from kerasvk.models.generative.pixelcnn import levels_to_uint8, quantize


@pytest.mark.parametrize("channels,gated", [(1, False), (3, True)])
def test_mask_changing_a_value_never_changes_earlier_distributions(channels, gated):
    h = w = 5
    model = kerasvk.build(
        "pixelcnn", input_shape=(h, w, channels), levels=4, filters=24, num_blocks=2, first_kernel_size=3, gated=gated
    )
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 4, (1, h, w, channels)) / 3.0).astype("float32")
    n = h * w * channels
    batch = np.repeat(x, n, axis=0)
    for p in range(n):  # row p: value p (raster order, then colour) changed
        i, j, c = p // (w * channels), (p // channels) % w, p % channels
        batch[p, i, j, c] = 1.0 - batch[p, i, j, c] + 0.37
    base = model(x).numpy()[0]  # (H, W, C, L)
    changed = np.abs(model(batch).numpy() - base[None]).max(axis=-1).reshape(n, n)  # [perturbed p, output q]
    q, p = np.meshgrid(np.arange(n), np.arange(n))
    assert changed[q <= p].max() < 1e-6, "an output saw its own or a later value"
    # and the mask is not over-blocking: each value influences the next one in its row (24 filters keep
    # dead-ReLU paths from hiding it)
    # (across a row end the next value can lie outside this small network's receptive field)
    same_row = [p for p in range(n - 1) if p // (w * channels) == (p + 1) // (w * channels)]
    assert all(changed[p, p + 1] > 1e-6 for p in same_row)


def test_quantize_binarise_and_bits_per_dim():
    images = np.array([[[0, 127], [128, 255]]], dtype="uint8")
    x, y = quantize(images, levels=2)
    np.testing.assert_array_equal(y[..., 0], [[[0, 0], [1, 1]]])
    np.testing.assert_array_equal(x, y.astype("float32"))
    x, y = quantize(images, levels=256)
    np.testing.assert_array_equal(levels_to_uint8(y, 256), images[..., None])
    with pytest.raises(ValueError, match=r"levels must be an integer in \[2, 256\]"):
        quantize(images, levels=1)

    model = kerasvk.build("pixelcnn", input_shape=(4, 4, 1), levels=4, filters=4, num_blocks=1, first_kernel_size=3)
    head = model.get_layer("head_logits")
    head.kernel.assign(tf.zeros_like(head.kernel))
    head.bias.assign(tf.zeros_like(head.bias))  # uniform predictions → exactly log2(levels) bits/dim
    x = np.random.default_rng(0).integers(0, 4, (3, 4, 4, 1)) / 3.0
    assert model.bits_per_dim(x) == pytest.approx(math.log2(4), abs=1e-5)


def test_generate_is_seeded_and_exported_generate_matches(tmp_path):
    from kerasvk.export import export_model

    model = kerasvk.build("pixelcnn", input_shape=(4, 4, 1), levels=4, filters=4, num_blocks=1, first_kernel_size=3)
    a = model.generate(3, seed=2, return_levels=True)
    assert a.shape == (3, 4, 4, 1) and a.min() >= 0 and a.max() <= 3
    np.testing.assert_array_equal(a, model.generate(3, seed=2, return_levels=True))
    assert not np.array_equal(a, model.generate(3, seed=3, return_levels=True))
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        model.generate(2, temperature=0.0)
    path = export_model(model, base=tmp_path, name="pixelcnn_tiny")
    gen = tf.saved_model.load(str(path)).signatures["generate"]
    out = gen(num_samples=tf.constant(3), temperature=tf.constant(1.0), seed=tf.constant(2))
    np.testing.assert_array_equal(out["levels"].numpy(), a)
    np.testing.assert_array_equal(out["images"].numpy(), levels_to_uint8(a, 4))
