"""SSD: shapes, hard-negative mining, a short fit, detect, .keras round trip, empty batches, errors."""

import keras
import numpy as np
import pytest

import kerasvk
from kerasvk.models.detection.base import example_inputs
from kerasvk.models.detection.ssd import SSD, hard_negative_mask
from kerasvk.registry import get_spec

TINY = get_spec("ssd").test_kwargs


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return kerasvk.build("ssd", **TINY)


def test_forward_shapes_and_anchor_table(tiny):
    x, _ = example_inputs(tiny, batch_size=2)
    out = tiny(x)
    # 64×64, strides 8, 16, 32, 64: 64 + 16 + 4 + 1 cells, 4 boxes each (ratios 1, 2, ½ + the extra box)
    assert tiny.strides == (8, 16, 32, 64)
    assert len(tiny.anchors) == (64 + 16 + 4 + 1) * 4
    assert tuple(out["boxes"].shape) == (2, 340, 4)
    assert tuple(out["classes"].shape) == (2, 340, TINY["num_classes"] + 1)
    boxes, scores = tiny.decode_predictions(out)
    assert tuple(boxes.shape) == (2, 340, 4) and tuple(scores.shape) == (2, 340, TINY["num_classes"])
    s = keras.ops.convert_to_numpy(scores)
    assert np.all((s >= 0) & (s <= 1)) and np.all(s.sum(-1) < 1)  # background column removed
    # zero offsets decode to the anchors themselves
    zeros = {"boxes": np.zeros((1, 340, 4), "float32"), "classes": np.zeros((1, 340, 4), "float32")}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tiny.decode_predictions(zeros)[0])[0], tiny.anchors,
                               atol=1e-4)


def test_hard_negative_mining_keeps_at_most_three_per_positive(tiny):
    rng = np.random.default_rng(0)
    loss = rng.uniform(0, 5, (3, 50)).astype("float32")
    cand = rng.uniform(size=(3, 50)) > 0.3
    num_pos = np.array([2, 5, 30], "float32")
    hard = keras.ops.convert_to_numpy(hard_negative_mask(loss, cand, num_pos, 3.0))
    for b in range(3):
        k = min(int(3 * num_pos[b]), int(cand[b].sum()))
        assert hard[b].sum() == k and not np.any(hard[b] & ~cand[b])
        # the chosen are the highest-loss candidates
        chosen = np.sort(loss[b][hard[b]])
        rest = loss[b][cand[b] & ~hard[b]]
        assert rest.size == 0 or chosen.min() >= rest.max()
    # inside the model's loss: ≤ 3 hard negatives per positive in every image with objects
    x, y = example_inputs(tiny, batch_size=3)
    _, _, details = tiny.loss_terms(y, tiny(x))
    pos = keras.ops.convert_to_numpy(details["positive"]).sum(1)
    neg = keras.ops.convert_to_numpy(details["hard_negative"]).sum(1)
    assert np.all(pos[:2] > 0) and np.all(neg[:2] <= 3 * pos[:2]) and np.all(neg[:2] > 0)
    assert pos[2] == 0 and neg[2] == 3  # the image without objects keeps ratio × 1 negatives


@pytest.fixture(scope="module")
def trained():
    """A tiny SSD fitted 30 steps on one fixed batch of 4 (the last image without objects)."""
    keras.utils.set_random_seed(1)
    model = kerasvk.build("ssd", **TINY)
    x, y = example_inputs(model, batch_size=4, seed=3)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.optimizer.build(model.trainable_variables)  # built outside the traced step: traced once, not twice
    hist = model.fit(x, y, epochs=30, batch_size=4, verbose=0).history
    return model, x, y, hist


def test_short_fit_reduces_box_and_class_loss(trained):
    *_, hist = trained
    assert set(hist) == {"loss", "box_loss", "class_loss"}
    for key in ("box_loss", "class_loss"):
        first, last = hist[key][0], hist[key][-1]
        assert np.isfinite(last) and last < 0.6 * first, (key, first, last)


def test_detect_returns_padded_outputs(tiny):
    x, _ = example_inputs(tiny, batch_size=3)
    det = tiny.detect(x, max_detections=7, score_threshold=0.0)
    assert det["boxes"].shape == (3, 7, 4) and det["scores"].shape == (3, 7)
    assert det["classes"].dtype == np.int32 and det["num_detections"].dtype == np.int32
    for i, n in enumerate(det["num_detections"]):
        assert 0 <= n <= 7
        assert np.all(det["scores"][i, n:] == 0) and np.all(det["boxes"][i, n:] == 0)
        assert np.all((det["boxes"][i, :n] >= 0) & (det["boxes"][i, :n] <= 64))  # clipped to the image
        assert np.all((det["classes"][i, :n] >= 0) & (det["classes"][i, :n] < TINY["num_classes"]))
    strict = tiny.detect(x, score_threshold=1.0)
    assert np.all(strict["num_detections"] == 0)


def test_keras_round_trip_equal_outputs_and_config(tmp_path):
    model = kerasvk.build("ssd", **{**TINY, "class_names": ["a", "b", "c"], "neck": "fpn", "head": "separable",
                                    "neck_filters": 16, "score_threshold": 0.2})
    x, _ = example_inputs(model, batch_size=2)
    path = tmp_path / "ssd.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, SSD)
    assert restored.class_names == ["a", "b", "c"] and restored.score_threshold == 0.2
    assert restored.get_config() == model.get_config()
    a, b = model(x), restored(x)
    for k in ("boxes", "classes"):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a[k]), keras.ops.convert_to_numpy(b[k]), atol=1e-5)
    np.testing.assert_allclose(restored.anchors, model.anchors)


def test_batch_without_ground_truth_trains(trained):
    model, x, y, _ = trained  # same shapes as the fit above: the compiled train step is reused
    empty = {"boxes": -np.ones_like(y["boxes"]), "labels": -np.ones_like(y["labels"])}
    before = keras.ops.convert_to_numpy(model(x)["classes"])
    hist = model.fit(x, empty, epochs=2, batch_size=len(x), verbose=0).history
    assert np.all(np.isfinite(hist["loss"])) and hist["box_loss"][-1] == 0.0 and hist["class_loss"][-1] > 0
    assert not np.allclose(before, keras.ops.convert_to_numpy(model(x)["classes"]))  # it did train


BAD_ARGUMENTS = [
    ({"input_shape": (96, 96, 3)}, "multiples of the largest stride 64"),
    ({"input_shape": (32, 32, 3)}, "multiples of the largest stride 64"),
    ({"input_shape": (64, 64, 1)}, r"\(height, width, 3\)"),
    ({"num_classes": 0}, "num_classes must be an integer >= 1"),
    ({"num_classes": 2.5}, "num_classes must be an integer >= 1"),
    ({"backbone": "resnet19"}, "'resnet19' is not a registered model .did you mean 'resnet18'.*Received: backbone="),
    ({"backbone": "gpt"}, "has none"),
    ({"class_names": ["a", "b"]}, "class_names must be None or 3 distinct names"),
    ({"head": "dense"}, "head must be one of"),
    ({"neck": "pan"}, "neck must be one of"),
    ({"levels": ("P3", "P9")}, "levels must be distinct pyramid levels"),
    ({"anchor_sizes": (8, 16)}, "one positive pixel size per level"),
    ({"min_scale": 0.5, "max_scale": 0.2}, "min_scale <= max_scale"),
    ({"positive_iou": 0.3, "negative_iou": 0.4}, "negative_iou must be <= positive_iou"),
    ({"iou_threshold": 1.5}, "iou_threshold must be a number in"),
    ({"backbone_kwargs": [("alpha", 1)]}, "backbone_kwargs must be None or a dict"),
]


def test_bad_arguments():  # one test (one session reset) for the table: each case raises before building
    for kwargs, match in BAD_ARGUMENTS:
        with pytest.raises(ValueError, match=match):
            kerasvk.build("ssd", **{**TINY, **kwargs})
