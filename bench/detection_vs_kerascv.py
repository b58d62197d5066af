"""kerasvk's YOLO against keras-cv's ``YOLOV8Detector``: same shapes data, same wall-clock budget, COCO mAP.

Both detectors are trained from scratch (no preset, nothing downloaded) on the same ``shapes`` training
split, batch size, optimizer and learning rate, each for ``--seconds`` of wall time (a callback stops
``fit`` once the budget is spent; the first steps' graph tracing counts, as it does for a user), then
both predict the same test split and are scored by ``kerasvk.evaluation.detection.coco_evaluate``
(pycocotools). If keras-cv is missing or its detector cannot build, train or predict on this
TensorFlow/Keras, its row carries the error instead of numbers.

keras-cv 0.9.0 is not a kerasvk dependency (it is the ``bench`` extra); install it next to kerasvk in a
separate virtual environment, so it cannot change the TensorFlow/Keras kerasvk uses::

    python -m venv .venv-bench && .venv-bench/bin/pip install -e '.[bench]'
    .venv-bench/bin/python bench/detection_vs_kerascv.py --seconds 300 --image-size 128 --seed 0

keras-cv's side: ``YOLOV8Backbone`` built from ``--kcv-channels``/``--kcv-depth`` (default: the sizes of
its ``yolo_v8_xs_backbone`` preset, without its weights), inputs in [0, 1] (``include_rescaling=False``,
as kerasvk's), ``classification_loss="binary_crossentropy"``, ``box_loss="ciou"``, targets converted to
its ``{"boxes", "classes"}`` (xyxy pixels, -1 padding, the same convention as ours), and its NMS decoder
set to kerasvk's thresholds (score 0.05, IoU 0.5, 100 detections; keras-cv's NMS is class-agnostic,
kerasvk's per class).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

NMS = {"score_threshold": 0.05, "iou_threshold": 0.5, "max_detections": 100}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=300.0, help="wall-clock training budget of each detector")
    p.add_argument("--image-size", type=int, default=128, help="square input size in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (both)")
    p.add_argument("--model", default="yolo", help="the kerasvk detector (a registered detection model)")
    p.add_argument("--model-kwargs", type=json.loads, default={}, metavar="JSON",
                   help='keyword arguments of kerasvk.build, e.g. \'{"backbone": "resnet18"}\'')
    p.add_argument("--kcv-channels", type=int, nargs=4, default=[32, 64, 128, 256], metavar="C",
                   help="YOLOV8Backbone stackwise_channels (default: the xs preset's)")
    p.add_argument("--kcv-depth", type=int, nargs=4, default=[1, 2, 2, 1], metavar="D",
                   help="YOLOV8Backbone stackwise_depth (default: the xs preset's)")
    p.add_argument("--kcv-fpn-depth", type=int, default=1, help="YOLOV8Detector fpn_depth")
    p.add_argument("--only", choices=("both", "kerasvk", "keras-cv"), default="both")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: TensorFlow's default)")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.image_size < 32 or args.image_size % 32 or args.batch_size < 1:
        p.error("--seconds must be > 0, --image-size a multiple of 32 (>= 32), --batch-size >= 1. Received: "
                f"--seconds {args.seconds} --image-size {args.image_size} --batch-size {args.batch_size}")
    return args


def wall_clock_budget(seconds, steps_per_epoch):
    """A callback that stops ``fit`` after the first batch that ends past ``seconds`` from the start of training."""
    import keras

    class WallClockBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()
            self.batches, self.first_step_s, self.seconds = 0, None, 0.0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            self.seconds = time.perf_counter() - self.t0
            if self.first_step_s is None:
                self.first_step_s = self.seconds  # graph tracing and the first step
            if self.seconds >= seconds:
                self.model.stop_training = True

        @property
        def epochs(self):
            return self.batches / steps_per_epoch

    return WallClockBudget()


def load_data(args):
    from kerasvk.data.detection import load_detection

    size = (args.image_size, args.image_size)
    return load_detection("shapes", image_size=size, batch_size=args.batch_size, seed=args.seed)


def _steps(dd, batch_size):
    return max(1, math.ceil(dd.counts["train"] / batch_size))


def _fit(model, train, args, steps):
    budget = wall_clock_budget(args.seconds, steps)
    model.fit(train, epochs=100_000, callbacks=[budget], shuffle=False, verbose=0)  # the pipeline shuffles
    return budget


def _score(det, dd):
    from kerasvk.evaluation.detection import coco_evaluate

    arrays = dd.test_arrays
    gt = {"boxes": arrays["boxes"], "labels": arrays["labels"]}
    return coco_evaluate(gt, det, dd.class_names, image_shape=dd.input_shape[:2])


def run_kerasvk(dd, args):
    import keras

    import kerasvk

    keras.utils.set_random_seed(args.seed)
    model = kerasvk.build(args.model, input_shape=tuple(dd.input_shape), num_classes=int(dd.num_classes),
                          class_names=list(dd.class_names), **args.model_kwargs)
    model.compile(optimizer=keras.optimizers.AdamW(args.lr))
    steps = _steps(dd, args.batch_size)
    budget = _fit(model, dd.train, args, steps)
    det = model.detect(dd.test_arrays["images"], batch_size=args.batch_size, **NMS)
    return _row(f"kerasvk {args.model}", model.count_params(), budget, _score(det, dd))


def run_kerascv(dd, args):
    import keras
    import tensorflow as tf

    try:
        import keras_cv
    except ImportError as e:  # its row says so; kerasvk's still runs
        raise RuntimeError(f"keras-cv is not importable here ({e}); install it in a separate venv: "
                           "pip install -e '.[bench]'") from None

    keras.utils.set_random_seed(args.seed)
    backbone = keras_cv.models.YOLOV8Backbone(
        stackwise_channels=list(args.kcv_channels), stackwise_depth=list(args.kcv_depth), include_rescaling=False,
        activation="swish", input_shape=tuple(dd.input_shape))
    model = keras_cv.models.YOLOV8Detector(
        num_classes=int(dd.num_classes), bounding_box_format="xyxy", backbone=backbone, fpn_depth=args.kcv_fpn_depth,
        prediction_decoder=keras_cv.layers.NonMaxSuppression(
            bounding_box_format="xyxy", from_logits=False, confidence_threshold=NMS["score_threshold"],
            iou_threshold=NMS["iou_threshold"], max_detections=NMS["max_detections"]))
    model.compile(optimizer=keras.optimizers.AdamW(args.lr), classification_loss="binary_crossentropy",
                  box_loss="ciou")

    def to_kerascv(images, targets):  # our padded targets → keras-cv's bounding-box dict (same -1 padding)
        return images, {"boxes": targets["boxes"], "classes": tf.cast(targets["labels"], tf.float32)}

    steps = _steps(dd, args.batch_size)
    budget = _fit(model, dd.train.map(to_kerascv), args, steps)
    pred = model.predict(dd.test_arrays["images"], batch_size=args.batch_size, verbose=0)
    det = {"boxes": np.asarray(pred["boxes"], "float32"), "scores": np.asarray(pred["confidence"], "float32"),
           "classes": np.asarray(pred["classes"]).astype("int32"),
           "num_detections": np.asarray(pred["num_detections"]).astype("int32")}
    return _row(f"keras-cv {keras_cv.__version__} YOLOV8Detector", model.count_params(), budget, _score(det, dd))


def _row(name, params, budget, report):
    return {"model": name, "params": int(params), "epochs": budget.epochs, "steps": budget.batches,
            "train_s": budget.seconds, "first_step_s": budget.first_step_s, "mAP_50": report["mAP_50"],
            "mAP": report["mAP"], "report": report}


def format_table(rows):
    head = f"{'model':<36} {'params':>10} {'epochs':>7} {'steps':>6} {'train s':>8} {'1st step s':>10} " \
           f"{'mAP@.5':>7} {'mAP@[.5:.95]':>12}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<36} failed: {r['error']}")
            continue
        lines.append(f"{r['model']:<36} {r['params']:>10,} {r['epochs']:>7.2f} {r['steps']:>6d} {r['train_s']:>8.1f} "
                     f"{r['first_step_s']:>10.1f} {r['mAP_50']:>7.4f} {r['mAP']:>12.4f}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, args.threads // 2))
    dd = load_data(args)
    print(f"shapes {args.image_size}x{args.image_size}: {dd.counts} images, classes {list(dd.class_names)}, "
          f"batch {args.batch_size}, AdamW lr {args.lr}, {args.seconds:g} s of training each, seed {args.seed}",
          flush=True)
    rows = []
    runs = {"kerasvk": (f"kerasvk {args.model}", run_kerasvk), "keras-cv": ("keras-cv YOLOV8Detector", run_kerascv)}
    for key, (name, fn) in runs.items():
        if args.only not in ("both", key):
            continue
        import keras

        keras.backend.clear_session()
        try:
            rows.append(fn(dd, args))
        except Exception as e:  # the bench reports what failed (keras-cv on newer Keras) instead of stopping
            detail = traceback.format_exc(limit=-3)
            rows.append({"model": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                         "traceback": detail})
        print(f"done: {rows[-1]['model']}", flush=True)
    print()
    print(format_table(rows))
    for r in rows:
        if "traceback" in r:
            print(f"\n{r['model']} failed:\n{r['traceback']}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
