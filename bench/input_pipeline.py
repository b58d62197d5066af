"""Where the time goes in training on this machine: the input pipeline alone vs the model step alone vs both.

For each model, in one process per model (so its peak memory is its own):

- **pipeline**: images/s of kerasvk's training pipeline alone (the trainer's path: in-memory uint8 images →
  shuffled positions → gathered batch → fused "standard" augmentation to uint8 → prefetch), iterated
  without a model;
- **step**: images/s of ``model.fit`` on one batch already in memory, repeated (``Dataset.from_tensors(...)
  .repeat()``): the compiled train step (uint8 → float32 [0, 1] in the step, forward, backward, Adam), no
  pipeline work;
- **both**: images/s of ``model.fit`` on the pipeline (what ``kerasvk train`` does);
- **bottleneck**: the slower of pipeline and step; "both" close to it means the two overlap (prefetch), well
  below it means they compete for the same cores;
- **peak host memory** of the process (``ru_maxrss``: model, optimizer state, data, pipeline buffers) at the
  benchmark batch size, and its growth during training over the process right after importing TensorFlow.

Rounds alternate between the three measurements, medians reported; the load average is printed with them.

    python bench/input_pipeline.py                                  # simple_cnn, resnet18, mobilenet_v2 @ 32x32
    python bench/input_pipeline.py --models resnet18 --image-size 64 --batch 32 --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

DEFAULT_MODELS = ("simple_cnn", "resnet18", "mobilenet_v2")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def images(count, size, seed=0):
    """Smooth random uint8 images (a low-res field upsampled) and labels of 10 classes."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (count, max(2, size // 8), max(2, size // 8), 3), dtype=np.uint8)
    x = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(low, (size, size), method="bicubic")), 0, 255), tf.uint8).numpy()
    return x, rng.integers(0, 10, count).astype("int32")


def measure(model_name, size, batch, steps, rounds, augment="standard"):
    import keras
    import tensorflow as tf

    import kerasvk
    from kerasvk.data import Augmenter, make_pipeline
    from kerasvk.training.device_input import scale_uint8_inputs

    base = peak_rss_mib()
    x, y = images(max(batch * steps, 4 * batch), size)
    aug = Augmenter(augment, seed=0) if augment != "none" else None
    pipeline = make_pipeline((x, y), batch_size=batch, training=True, seed=0, augment=aug, image_dtype="uint8",
                             drop_remainder=True)
    model = kerasvk.build(model_name, input_shape=(size, size, 3), num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    scale_uint8_inputs(model, pipeline.element_spec)
    first = next(iter(pipeline))
    in_memory = tf.data.Dataset.from_tensors(first).repeat()
    stream = pipeline.repeat()

    def run_pipeline():
        n, t0 = 0, time.perf_counter()
        for i, (xb, _) in enumerate(stream):
            n += int(xb.shape[0])
            if i + 1 >= steps:
                break
        return n / (time.perf_counter() - t0)

    def run_fit(data):
        t0 = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        return steps * batch / (time.perf_counter() - t0)

    run_pipeline()  # warm-up: XLA compile of the augmentation, first trace of the train step
    run_fit(in_memory)
    run_fit(stream)
    p, s, b = [], [], []
    for _ in range(rounds):
        p.append(run_pipeline())
        s.append(run_fit(in_memory))
        b.append(run_fit(stream))
    med = statistics.median
    return {"model": model_name, "params": int(model.count_params()), "pipeline": med(p), "step": med(s),
            "both": med(b), "rounds": {"pipeline": p, "step": s, "both": b},
            "peak_rss_mib": peak_rss_mib(), "rss_after_import_mib": base}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="batches per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--augment", default="standard", help="augmentation config (none: no augmentation)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model in this process, print JSON
    a = ap.parse_args(argv)
    if a.one:
        print("RESULT " + json.dumps(measure(a.one, a.image_size, a.batch, a.steps, a.rounds, a.augment)), flush=True)
        return
    print(f"{a.image_size}×{a.image_size}×3 uint8 images, batch {a.batch}, augment {a.augment}, {a.steps} steps × "
          f"{a.rounds} rounds, {os.cpu_count()} CPU cores; load average before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| model | params | pipeline img/s | step img/s | both img/s | bottleneck | peak host MiB (growth) |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for name in a.models:
        cmd = [sys.executable, __file__, "--one", name, "--image-size", str(a.image_size), "--batch", str(a.batch),
               "--steps", str(a.steps), "--rounds", str(a.rounds), "--augment", a.augment]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"| {name} | failed: {(out.stderr.strip().splitlines() or ['?'])[-1]} |")
            continue
        r = json.loads(line[7:])
        slow = "pipeline" if r["pipeline"] < r["step"] else "model step"
        print(f"| {name} | {r['params'] / 1e6:.2f}M | {r['pipeline']:.0f} | {r['step']:.0f} | {r['both']:.0f} | {slow} "
              f"({r['both'] / min(r['pipeline'], r['step']):.0%} of it together) | {r['peak_rss_mib']:.0f} "
              f"(+{r['peak_rss_mib'] - r['rss_after_import_mib']:.0f}) |", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
