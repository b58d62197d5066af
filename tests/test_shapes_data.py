"""The ``shapes`` detection dataset and the detection data pipeline (kerasvk.data.shapes / .detection)."""

import numpy as np
import pytest

from kerasvk.data.detection import (
    BOX_FORMATS,
    DETECTION_AUGMENTS,
    DetectionAugmenter,
    check_boxes,
    load_detection,
    parse_detection_source,
)
from kerasvk.data.shapes import MIN_VISIBLE_PIXELS, SHAPE_CLASSES, SMALL_SIZE, shapes

H = W = 64


@pytest.fixture(scope="module")
def data():
    return shapes(120, image_size=(H, W), seed=3, max_objects=5)


def tight(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], "float32")


# ------------------------------------------------------------------------------------------- generator


def test_shapes_arrays_dtypes_and_determinism(data):
    n, m = 120, 5
    assert data["images"].shape == (n, H, W, 3) and data["images"].dtype == np.uint8
    assert data["masks"].shape == (n, m, H, W) and data["masks"].dtype == np.uint8
    assert data["boxes"].shape == (n, m, 4) and data["boxes"].dtype == np.float32
    assert data["labels"].shape == (n, m) and data["labels"].dtype == np.int32
    assert data["class_names"] == list(SHAPE_CLASSES) and len(SHAPE_CLASSES) >= 4
    again = shapes(120, image_size=(H, W), seed=3, max_objects=5)
    for key in ("images", "masks", "boxes", "labels"):
        np.testing.assert_array_equal(data[key], again[key])
    other = shapes(120, image_size=(H, W), seed=4, max_objects=5)
    assert not np.array_equal(data["images"], other["images"])
    no_masks = shapes(120, image_size=(H, W), seed=3, max_objects=5, with_masks=False)
    assert "masks" not in no_masks
    np.testing.assert_array_equal(no_masks["boxes"], data["boxes"])  # masks do not change the draw


def test_every_class_occurs_and_backgrounds_are_textured(data):
    labels = data["labels"][data["labels"] >= 0]
    counts = np.bincount(labels, minlength=len(SHAPE_CLASSES))
    assert (counts > 0.1 * len(labels)).all(), counts
    # background: not flat (std over the image well above the sensor noise) and different per image
    bg = data["images"].astype("float32")
    stds = bg.reshape(len(bg), -1, 3).std(axis=1).mean(axis=1)
    assert np.median(stds) > 15
    assert len({tuple(np.round(im.mean(axis=(0, 1)))) for im in bg}) > 100


def test_boxes_are_tight_boxes_of_visible_masks(data):
    boxes, labels, masks = data["boxes"], data["labels"], data["masks"]
    real = labels >= 0
    assert real.sum() > 200
    for i, j in np.argwhere(real):
        assert masks[i, j].sum() >= MIN_VISIBLE_PIXELS, (i, j)
        np.testing.assert_array_equal(boxes[i, j], tight(masks[i, j]), err_msg=f"image {i} row {j}")
    # padding: label -1, box -1, empty mask, after the real rows
    assert (boxes[~real] == -1).all() and (masks[~real] == 0).all()
    assert (np.diff(real.astype(int), axis=1) <= 0).all()
    # instances are visible pixels: no pixel belongs to two instances
    assert masks.sum(axis=1).max() == 1
    b = boxes[real]
    assert (b[:, :2] >= 0).all() and (b[:, 2] <= W).all() and (b[:, 3] <= H).all()


def test_box_convention_exclusive_edges():
    d = shapes(4, image_size=(32, 32), seed=0, max_objects=1, min_size=8, max_size=10)
    for i in range(4):
        if d["labels"][i, 0] < 0:
            continue
        cols = np.flatnonzero(d["masks"][i, 0].any(axis=0))
        rows = np.flatnonzero(d["masks"][i, 0].any(axis=1))
        assert d["boxes"][i, 0].tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_small_objects_and_overlaps_occur(data):
    boxes, labels, masks = data["boxes"], data["labels"], data["masks"]
    real = labels >= 0
    side = np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])[real]
    assert (side <= SMALL_SIZE).mean() > 0.15, (side <= SMALL_SIZE).mean()
    assert side.max() >= 24
    # overlapping boxes within an image, and occlusion: a later shape's pixels inside an earlier
    # (convex: circle, square, triangle) shape's box
    overlaps = occluded = 0
    for i in range(len(boxes)):
        b = boxes[i][real[i]]
        for a in range(len(b)):
            for c in range(a + 1, len(b)):
                iw = min(b[a, 2], b[c, 2]) - max(b[a, 0], b[c, 0])
                ih = min(b[a, 3], b[c, 3]) - max(b[a, 1], b[c, 1])
                overlaps += iw > 0 and ih > 0
                x1, y1, x2, y2 = b[a].astype(int)
                occluded += labels[i, a] != 3 and masks[i, c, y1:y2, x1:x2].sum() > 4
    assert overlaps >= 20 and occluded >= 10, (overlaps, occluded)
    # some shapes are cut by the border
    on_border = (boxes[..., 0] == 0) | (boxes[..., 1] == 0) | (boxes[..., 2] == W) | (boxes[..., 3] == H)
    assert (on_border & real).sum() >= 10


def test_shapes_contrast_to_their_surroundings(data):
    """A shape's mean colour differs clearly from the pixels just around it (what a human sees)."""
    images, masks, labels = data["images"].astype("float32"), data["masks"], data["labels"]
    taken = masks.sum(axis=1) > 0
    dists = []
    for i, j in np.argwhere(labels >= 0):
        x1, y1, x2, y2 = data["boxes"][i, j].astype(int)
        sl = (slice(max(y1 - 3, 0), y2 + 3), slice(max(x1 - 3, 0), x2 + 3))
        ring = ~taken[i][sl]
        if ring.sum() < 8:
            continue
        inside = images[i][masks[i, j] > 0].mean(axis=0)
        dists.append(np.linalg.norm(inside - images[i][sl][ring].mean(axis=0)))
    dists = np.array(dists)
    assert np.median(dists) > 80 and (dists > 40).mean() > 0.9, (np.median(dists), (dists > 40).mean())


def test_shapes_options_and_errors():
    d = shapes(6, image_size=(32, 48), seed=1, min_objects=0, max_objects=2, classes=("square", "cross"))
    assert d["images"].shape == (6, 32, 48, 3) and d["class_names"] == ["square", "cross"]
    assert set(np.unique(d["labels"])) <= {-1, 0, 1}
    with pytest.raises(ValueError, match="classes must be distinct names among circle"):
        shapes(2, classes=("circle", "hexagon"))
    with pytest.raises(ValueError, match=r"max_objects must be >= min_objects"):
        shapes(2, min_objects=3, max_objects=2)
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\) integers >= 16"):
        shapes(2, image_size=(8, 8))
    with pytest.raises(ValueError, match=r"max_size must be <= min\(image_size\)"):
        shapes(2, image_size=(32, 32), max_size=40)


# ----------------------------------------------------------------------------------------- check_boxes


def test_check_boxes_clips_drops_and_converts():
    boxes = np.array([[[-5, 2, 10, 12], [30, 30, 40, 40], [-1, -1, -1, -1]],
                      [[33, 0, 40, 8], [2, 2, 6, 6], [-1, -1, -1, -1]]], "float32")
    labels = np.array([[0, 1, -1], [2, 1, -1]])
    out_b, out_l, rep = check_boxes(boxes, labels, (32, 32), num_classes=3)
    assert out_b.dtype == np.float32 and out_l.dtype == np.int32
    np.testing.assert_array_equal(out_b[0, 0], [0, 2, 10, 12])       # clipped
    np.testing.assert_array_equal(out_b[0, 1], [30, 30, 32, 32])     # clipped
    np.testing.assert_array_equal(out_b[1, 0], [2, 2, 6, 6])         # the outside box dropped, rows packed
    assert out_l.tolist() == [[0, 1, -1], [1, -1, -1]] and (out_b[1, 1:] == -1).all()
    assert rep == {"images": 2, "boxes": 3, "clipped": 2, "dropped": 1, "images_without_boxes": 0,
                   "max_boxes_per_image": 2}
    # any keras format; per-image lists
    xywh = [np.array([[1, 2, 3, 4]]), np.zeros((0, 4))]
    out_b, out_l, rep = check_boxes(xywh, [np.array([0]), np.zeros(0, int)], (32, 32), box_format="xywh")
    np.testing.assert_allclose(out_b[0, 0], [1, 2, 4, 6])
    assert out_l.tolist() == [[0], [-1]] and rep["images_without_boxes"] == 1
    rel = check_boxes(np.array([[[0.25, 0.5, 0.5, 1.0]]]), np.array([[0]]), (32, 64), "rel_xyxy")[0]
    np.testing.assert_allclose(rel[0, 0], [16, 16, 32, 32])


def test_check_boxes_rejects_bad_inputs():
    ok = np.array([[[1, 1, 5, 5], [2, 2, 8, 8]]], "float32")
    nan = ok.copy()
    nan[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"image 0, row 1 is not finite"):
        check_boxes(nan, np.array([[0, 1]]), (16, 16))
    inf = ok.copy()
    inf[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"image 0, row 0 is not finite"):
        check_boxes(inf, np.array([[0, 1]]), (16, 16))
    nan_pad = nan.copy()
    # a padding row may hold anything
    assert check_boxes(nan_pad, np.array([[0, -1]]), (16, 16))[2]["boxes"] == 1
    swapped = ok.copy()
    swapped[0, 1] = [8, 2, 2, 8]
    with pytest.raises(ValueError, match=r"image 0, row 1 has x2 < x1 or y2 < y1.*never swapped"):
        check_boxes(swapped, np.array([[0, 1]]), (16, 16))
    with pytest.raises(ValueError, match=r"x2 < x1 or y2 < y1"):
        check_boxes(np.array([[[1, 1, -2, 3]]]), np.array([[0]]), (16, 16), box_format="xywh")
    with pytest.raises(ValueError, match=r"Unknown bounding box format 'xyhw'\. Allowed: xyxy, yxyx, xywh"):
        check_boxes(ok, np.array([[0, 1]]), (16, 16), box_format="xyhw")
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 2\).*labels\[0, 1\]=2"):
        check_boxes(ok, np.array([[0, 2]]), (16, 16), num_classes=2)
    with pytest.raises(ValueError, match=r"Labels must be in >= 0.*labels\[0, 0\]=-3"):
        check_boxes(ok, np.array([[-3, 1]]), (16, 16))
    with pytest.raises(ValueError, match=r"boxes must have shape \(images, max_boxes, 4\)"):
        check_boxes(ok[0], np.array([0, 1]), (16, 16))
    assert set(BOX_FORMATS) >= {"xyxy", "yxyx", "xywh", "center_xywh", "rel_xyxy"}


# ----------------------------------------------------------------------------------------- the pipeline


def test_pipeline_shapes_dtypes_padding_and_test_arrays():
    d = load_detection("shapes:count=40,size=48,max_objects=3", batch_size=8, with_masks=True, max_boxes=5,
                       seed=2)
    assert d.input_shape == (48, 48, 3) and d.max_boxes == 5 and d.num_classes == 4
    assert d.class_names == list(SHAPE_CLASSES) and d.counts == {"train": 28, "val": 4, "test": 8}
    x, y = next(iter(d.train))
    assert x.shape == (8, 48, 48, 3) and x.dtype.name == "float32"
    assert 0.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 1.0
    assert y["boxes"].shape == (8, 5, 4) and y["boxes"].dtype.name == "float32"
    assert y["labels"].shape == (8, 5) and y["labels"].dtype.name == "int32"
    assert y["masks"].shape == (8, 5, 48, 48) and y["masks"].dtype.name == "uint8"
    lab = y["labels"].numpy()
    assert (lab[:, 3:] == -1).all() and (y["boxes"].numpy()[lab < 0] == -1).all()
    assert sum(int(b[0].shape[0]) for b in d.train) == 28
    # test split: not shuffled, the same as test_arrays, and the same split for the same seed
    xs = np.concatenate([b[0].numpy() for b in d.test])
    np.testing.assert_allclose(xs, d.test_arrays["images"])
    test_boxes = np.concatenate([b[1]["boxes"].numpy() for b in d.test])
    np.testing.assert_array_equal(test_boxes, d.test_arrays["boxes"])
    again = load_detection("shapes:count=40,size=48,max_objects=3", batch_size=8, seed=2, max_boxes=5)
    np.testing.assert_array_equal(again.test_arrays["labels"], d.test_arrays["labels"])
    assert "masks" not in again.test_arrays and "masks" not in next(iter(again.val))[1]
    # train is shuffled and reshuffled each epoch
    first = [next(iter(d.train))[0].numpy() for _ in range(2)]
    assert not np.array_equal(first[0], first[1])
    with pytest.raises(ValueError, match=r"max_boxes=2 is less than the 3 boxes"):
        load_detection("shapes:count=40,size=48,max_objects=3", max_boxes=2)


def _augmented(d):
    out = [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in d.train]
    return np.concatenate([o[0] for o in out]), {k: np.concatenate([o[1][k] for o in out]) for k in out[0][1]}


@pytest.mark.parametrize("augment", DETECTION_AUGMENTS)
def test_augmented_boxes_stay_inside_and_are_tight_boxes_of_the_masks(augment):
    d = load_detection("shapes:count=48,size=64,max_objects=5", batch_size=16, augment=augment,
                       with_masks=True, seed=5, val_split=0.0, test_split=0.0)
    x, y = _augmented(d)
    boxes, labels, masks = y["boxes"], y["labels"], y["masks"]
    real = labels >= 0
    assert real.sum() > 80
    b = boxes[real]
    assert (b[:, :2] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, 3] <= 64).all()
    assert ((boxes[real][:, 2:] - boxes[real][:, :2]) >= 2).all()
    for i, j in np.argwhere(real):
        np.testing.assert_array_equal(boxes[i, j], tight(masks[i, j]))
    assert (boxes[~real] == -1).all() and (masks[~real] == 0).all()
    assert (np.diff(real.astype(int), axis=1) <= 0).all()
    # flip only mirrors pixels: each augmented image has the mean colour of one source image
    if augment == "flip":
        plain = load_detection("shapes:count=48,size=64,max_objects=5", with_masks=True, seed=5,
                               val_split=0.0, test_split=0.0)
        src = np.stack([im.mean((0, 1)) for im in np.concatenate([b[0].numpy() for b in plain.train])])
        for im in x:
            assert np.abs(src - im.mean((0, 1))).max(axis=1).min() < 1e-4


def test_keras_box_transforms_enclose_the_transformed_masks():
    """Without masks the boxes come from keras' own box transforms: with the same seed they see the same
    random parameters as the masks do, and every box encloses its transformed mask (≤ 1 px rounding)."""
    import tensorflow as tf

    d = shapes(32, image_size=(64, 64), seed=7, max_objects=4)
    images = tf.constant(d["images"].astype("float32") / 255.0)
    with_m = DetectionAugmenter("standard", seed=11)
    without = DetectionAugmenter("standard", seed=11)
    t_b = {"boxes": tf.constant(d["boxes"]), "labels": tf.constant(d["labels"])}
    t_m = {**t_b, "masks": tf.constant(d["masks"])}
    xm, ym = with_m(images, t_m)  # eager: the same code tf.data traces, without the tracing time
    xb, yb = without(images, t_b)
    np.testing.assert_allclose(xm.numpy(), xb.numpy(), atol=1e-6)  # same random parameters
    assert "masks" not in yb
    lm, lb = ym["labels"].numpy(), yb["labels"].numpy()
    bm, bb = ym["boxes"].numpy(), yb["boxes"].numpy()
    checked = 0
    for i in range(32):
        loose = {int(lab): [] for lab in lb[i] if lab >= 0}
        for j in np.flatnonzero(lb[i] >= 0):
            loose[int(lb[i, j])].append(bb[i, j])
        for j in np.flatnonzero(lm[i] >= 0):
            # the mask's tight box lies inside one keras box of the same class (rows may be re-packed)
            t = bm[i, j]
            same_class = loose.get(int(lm[i, j]), [])
            ok = any((b[:2] <= t[:2] + 1).all() and (b[2:] >= t[2:] - 1).all() for b in same_class)
            assert ok, (i, j, t, loose.get(int(lm[i, j])))
            checked += 1
    assert checked > 60
    real = lb >= 0
    assert (bb[real][:, :2] >= 0).all() and (bb[real][:, 2] <= 64).all() and (bb[real][:, 3] <= 64).all()


def test_boxes_that_leave_the_image_are_dropped():
    """A 4-px object at the right border: ±10 % translation and ±25 % zoom push it out in many images."""
    n = 48
    images = np.full((n, 64, 64, 3), 60, "uint8")
    images[:, 30:34, 60:64] = 250
    boxes = np.tile(np.array([[[60, 30, 64, 34], [10, 10, 30, 30]]], "float32"), (n, 1, 1))
    labels = np.tile(np.array([[1, 0]], "int32"), (n, 1))
    images[:, 10:30, 10:30] = 200
    masks = np.zeros((n, 2, 64, 64), "uint8")
    masks[:, 0, 30:34, 60:64] = 1
    masks[:, 1, 10:30, 10:30] = 1
    targets = {"boxes": boxes, "labels": labels, "masks": masks}
    d = load_detection((images, targets), batch_size=16, augment="standard", with_masks=True,
                       seed=1, val_split=0.0, test_split=0.0)
    _, y = _augmented(d)
    # without masks (keras' box transforms), called eagerly on the same batch
    _, y_keras = DetectionAugmenter("standard", seed=1)(images.astype("float32") / 255.0,
                                                        {"boxes": boxes, "labels": labels})
    for y in (y, {k: v.numpy() for k, v in y_keras.items()}):
        lab, bx = y["labels"], y["boxes"]
        small_kept = (lab == 1).sum()
        assert 0 < small_kept < n - 5, small_kept  # some left the image and were dropped ...
        assert ((lab == 0).sum(axis=1) == 1).all()  # ... the big square never does
        real = lab >= 0
        assert (bx[real][:, 2] <= 64).all() and ((bx[real][:, 2:] - bx[real][:, :2]) >= 2).all()
        assert (bx[~real] == -1).all() and (lab[:, 0] >= 0).all()  # packed: kept rows first


def test_images_without_boxes_go_through_the_pipeline():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (10, 32, 32, 3)).astype("float32")
    boxes = -np.ones((10, 3, 4), "float32")
    labels = -np.ones((10, 3), "int32")
    boxes[0, 0], labels[0, 0] = [4, 4, 20, 20], 1
    d = load_detection((images, {"boxes": boxes, "labels": labels}), batch_size=4, augment="standard",
                       val_split=0.0, test_split=0.0, class_names=["a", "b"])
    assert d.class_names == ["a", "b"] and d.input_shape == (32, 32, 3) and d.max_boxes == 3
    assert d.box_report["images_without_boxes"] == 9
    n_boxes = 0
    for x, y in d.train:
        assert x.shape[1:] == (32, 32, 3) and y["labels"].shape[1:] == (3,)
        n_boxes += int((y["labels"].numpy() >= 0).sum())
        assert (y["boxes"].numpy()[y["labels"].numpy() < 0] == -1).all()
    assert n_boxes == 1
    with pytest.raises(ValueError, match=r"Array images are 32x32 but image_size=\(64, 64\)"):
        load_detection((images, {"boxes": boxes, "labels": labels}), image_size=(64, 64))
    with pytest.raises(ValueError, match=r"with_masks=True needs targets\['masks'\]"):
        load_detection((images, {"boxes": boxes, "labels": labels}), with_masks=True)
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 1\)"):
        load_detection((images, {"boxes": boxes, "labels": labels}), num_classes=1)


def test_unknown_source_and_augment_names():
    assert parse_detection_source("shapes") == ("shapes", {})
    assert parse_detection_source("shapes:count=20,size=32,max_objects=2") == (
        "shapes", {"count": 20, "size": 32, "max_objects": 2})
    with pytest.raises(ValueError, match=r"source 'shape'\. Did you mean shapes\? Allowed: shapes"):
        parse_detection_source("shape")
    with pytest.raises(ValueError, match=r"Unknown detection source 'coco'.*Allowed: shapes\[:count=N"):
        load_detection("coco")
    with pytest.raises(ValueError, match=r"Bad option 'colour=3'.*Allowed options: count=N, size=N"):
        parse_detection_source("shapes:colour=3")
    with pytest.raises(ValueError, match=r"Option count must be an integer"):
        parse_detection_source("shapes:count=ten")
    with pytest.raises(ValueError, match=r"array detection source must be \(images, \{'boxes'"):
        parse_detection_source((np.zeros((1, 8, 8, 3)), {"bbox": 1}))
    with pytest.raises(ValueError, match=r"Unknown detection augmentation 'flips'\. Did you mean 'flip'\? "
                                         r"Allowed: None, 'flip', 'standard'"):
        load_detection("shapes:count=10,size=32", augment="flips")
    with pytest.raises(ValueError, match=r"augment must be None or one of 'flip', 'standard'"):
        load_detection("shapes:count=10,size=32", augment=3)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer"):
        load_detection("shapes:count=10,size=32", batch_size=0)
    with pytest.raises(ValueError, match=r"shapes has 4 classes"):
        load_detection("shapes:count=10,size=32", num_classes=9)


def test_augmentation_is_seeded():
    def first():
        d = load_detection("shapes:count=24,size=32", batch_size=8, augment="standard", seed=1,
                           val_split=0.0, test_split=0.0)
        x, y = next(iter(d.train))
        return x.numpy(), y["boxes"].numpy()

    a, b = first(), first()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    d = shapes(8, image_size=(32, 32), seed=0, max_objects=3, with_masks=False)
    x = d["images"].astype("float32") / 255.0
    t = {"boxes": d["boxes"], "labels": d["labels"]}
    one, two, other = (DetectionAugmenter("standard", seed=s)(x, t)[0].numpy() for s in (1, 1, 2))
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, other)
