"""RoIAlign against a loop-by-loop NumPy reference (torchvision's aligned algorithm), levels, round trip."""

import keras
import numpy as np
import pytest

from kerasvk.layers.roi_align import RoIAlign, assign_levels, roi_align


def _bilinear(f, y, x):
    h, w = f.shape[:2]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(f.shape[2:], "float64")
    y, x = max(y, 0.0), max(x, 0.0)
    if y >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y0 = int(np.floor(y))
        y1 = y0 + 1
    if x >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x0 = int(np.floor(x))
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * f[y0, x0] + (1 - ly) * lx * f[y0, x1]
            + ly * (1 - lx) * f[y1, x0] + ly * lx * f[y1, x1])


def reference(f, box, size, scale, ratio):
    x1, y1, x2, y2 = (v * scale - 0.5 for v in box)
    bh, bw = (y2 - y1) / size, (x2 - x1) / size
    out = np.zeros((size, size, f.shape[2]))
    for p in range(size):
        for q in range(size):
            acc = 0.0
            for iy in range(ratio):
                for ix in range(ratio):
                    yy = y1 + p * bh + (iy + 0.5) * bh / ratio
                    xx = x1 + q * bw + (ix + 0.5) * bw / ratio
                    acc = acc + _bilinear(f, yy, xx)
            out[p, q] = acc / ratio ** 2
    return out


BOXES = np.array([
    [[0.0, 0.0, 16.0, 16.0],      # the whole map
     [-3.0, -2.0, 5.0, 6.0],      # over the top-left border
     [10.0, 9.0, 17.5, 16.0],     # over the bottom-right border
     [4.3, 5.1, 4.9, 5.4],        # sub-pixel
     [2.25, 7.75, 11.5, 8.5]]],   # thin, fractional
    "float32")


@pytest.mark.parametrize("scale,ratio", [(1.0, 2), (0.5, 2), (1.0, 1), (1.0, 3)])
def test_matches_numpy_reference(scale, ratio):
    rng = np.random.default_rng(0)
    side = int(16 * scale)
    f = rng.normal(size=(1, side, side, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(roi_align(f, BOXES, 5, scale, ratio))
    for n, box in enumerate(BOXES[0]):
        np.testing.assert_allclose(got[0, n], reference(f[0], box, 5, scale, ratio), atol=1e-5)


def test_constant_map_and_linear_ramp():
    ones = np.ones((2, 8, 8, 1), "float32")
    box = np.array([[[1.0, 1.0, 6.0, 7.0]], [[0.0, 0.0, 8.0, 8.0]]], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(roi_align(ones, box, 4)), 1.0, atol=1e-6)
    # bilinear is exact on a linear ramp: the bin means are the ramp at the bin centres
    ramp = np.tile(np.arange(8, dtype="float32")[None, :, None], (8, 1, 1))[None]
    out = keras.ops.convert_to_numpy(roi_align(ramp, np.array([[[2.0, 2.0, 6.0, 6.0]]], "float32"), 4))
    np.testing.assert_allclose(out[0, 0, 0, :, 0], [2.0, 3.0, 4.0, 5.0], atol=1e-5)  # centres 2.5.. − 0.5


def test_level_assignment_and_multilevel_layer(tmp_path):
    boxes = np.array([[[0, 0, 8, 8], [0, 0, 32, 32], [0, 0, 64, 64], [0, 0, 200, 200], [0, 0, 0, 0]]], "float32")
    lv = keras.ops.convert_to_numpy(assign_levels(boxes, (2, 3, 4, 5), canonical_size=64, canonical_level=4))
    assert lv.tolist() == [[0, 1, 2, 3, 0]]  # the padding box goes to the finest level (finite output)
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(1, 64 // s, 64 // s, 2)).astype("float32") for s in (4, 8, 16, 32)]
    layer = RoIAlign(output_size=3, levels=(2, 3, 4, 5), canonical_size=64, name="roi")
    out = keras.ops.convert_to_numpy(layer([boxes, *maps]))
    assert out.shape == (1, 5, 3, 3, 2) and np.all(np.isfinite(out))
    for n in range(4):
        one = keras.ops.convert_to_numpy(roi_align(maps[lv[0, n]], boxes[:, n:n + 1], 3, 1 / 2 ** (lv[0, n] + 2)))
        np.testing.assert_allclose(out[0, n], one[0, 0], atol=1e-5)
    again = RoIAlign.from_config(layer.get_config())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again([boxes, *maps])), out, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="output_size must be an integer >= 1"):
        RoIAlign(output_size=0)
    with pytest.raises(ValueError, match="consecutive pyramid level numbers"):
        RoIAlign(levels=(2, 4))
