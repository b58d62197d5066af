"""Training-step speed of kerasvk builders against their keras.applications twins.

For each pair the two models are built at the same input size and class count, compiled identically
(Adam, sparse categorical cross-entropy, keras' default jit_compile) and trained on the same batch
with ``train_on_batch``. After ``--warmup`` steps each (compilation excluded), ``--rounds`` rounds
alternate between the two models (the order flips every round so neither always runs first), each
round timing ``--steps`` steps. The table reports the median seconds per step and

    ratio = keras step time / kerasvk step time      (>= 1.0: kerasvk is at least as fast)

Run: ``python bench/builder_parity.py --size 128 --batch 8`` (a few minutes on a 2-core CPU).
Nothing is downloaded (weights=None).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PAIRS = {
    "resnet50": "ResNet50",
    "efficientnet_b0": "EfficientNetB0",
    "mobilenet_v2": "MobileNetV2",
    "vgg16": "VGG16",
    "densenet121": "DenseNet121",
}


def _compile(model, keras):
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    return model


def _time_steps(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(loss)  # block until the last step is done
    return (time.perf_counter() - start) / steps


def bench_pair(name, size, batch, classes, warmup, rounds, steps, seed=0):
    import keras
    import numpy as np

    import kerasvk

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, (batch,))
    ours = _compile(kerasvk.build(name, input_shape=(size, size, 3), num_classes=classes), keras)
    theirs = _compile(
        getattr(keras.applications, PAIRS[name])(weights=None, input_shape=(size, size, 3), classes=classes),
        keras,
    )
    assert ours.count_params() == theirs.count_params(), (name, ours.count_params(), theirs.count_params())
    for m in (ours, theirs):
        _time_steps(m, x, y, warmup)
    t_ours, t_keras = [], []
    for r in range(rounds):
        order = [(ours, t_ours), (theirs, t_keras)]
        for model, times in order if r % 2 == 0 else order[::-1]:
            times.append(_time_steps(model, x, y, steps))
    med_ours, med_keras = statistics.median(t_ours), statistics.median(t_keras)
    del ours, theirs
    keras.backend.clear_session()
    return med_ours, med_keras


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128, help="input height = width (default 128)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="alternating timed rounds (default 5)")
    p.add_argument("--steps", type=int, default=3, help="steps per model per round (default 3)")
    p.add_argument("--models", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    args = p.parse_args(argv)

    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(
        f"builder parity: {device}, input {args.size}x{args.size}x3, batch {args.batch}, "
        f"{args.classes} classes, "
        f"{args.warmup} warm-up steps, median of {args.rounds} alternating rounds x {args.steps} steps"
    )
    print("ratio = keras step time / kerasvk step time (>= 1.0 means kerasvk is at least as fast)\n")
    header = f"{'model':<16} {'kerasvk s/step':>15} {'keras s/step':>13} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    ratios = []
    for name in args.models:
        ours, theirs = bench_pair(
            name, args.size, args.batch, args.classes, args.warmup, args.rounds, args.steps
        )
        ratios.append(theirs / ours)
        print(f"{name:<16} {ours:>15.4f} {theirs:>13.4f} {theirs / ours:>7.3f}", flush=True)
    print(f"\nmin ratio {min(ratios):.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
