"""GPU training/inference throughput: kerasvk's uint8 path vs keras.applications fed float32 through fit.

Written for a lent GPU machine with Keras 3 on JAX (TensorFlow is not installed there): nothing here
imports TensorFlow, and the kerasvk models are built from their family modules (``kerasvk.build`` would
import every family, the generative ones with TensorFlow). For each model (resnet50, efficientnet_b0,
mobilenet_v2; 224×224, batch 256, ``mixed_bfloat16``), in one process per (model, side), one run:

- **kerasvk**: uint8 images in host memory go to the device as uint8 (``model.fit`` on uint8 NumPy); the model
  runs kerasvk's "standard" augmentation (``RandomColor`` + ``RandomAffine``, the fused resampling, float32)
  and the normalisation (``Rescaling(1/255)``) on the device, in the jitted train step, then the kerasvk network.
  Predict: the same model at inference (augmentation is identity), uint8 in.
- **keras.applications**: the same architecture (``ResNet50``, ``EfficientNetB0``, ``MobileNetV2``,
  ``weights=None``) fed float32 NumPy through ``model.fit`` / ``model.predict`` (no augmentation).

Reported: train and predict images/s (after a warm-up epoch that compiles), peak host memory (``ru_maxrss``)
and peak device memory (``jax`` ``memory_stats()["peak_bytes_in_use"]``, where the backend reports it).

    KERAS_BACKEND=jax python bench/gpu_throughput.py                    # the GPU run (defaults)
    KERAS_BACKEND=jax python bench/gpu_throughput.py --image-size 32 --batch 8 --steps 2 --models mobilenet_v2
                                                                        # a smoke test on CPU

Measured anchors on one H100 (Keras 3.15 on JAX, bf16, b256, from the issue): keras.applications ResNet50 +
fit 2,412–2,559 img/s; a jitted train step on a batch already on the device 3,078 img/s. Target: >= 3,000 img/s
for resnet50 through kerasvk's path with augmentation on the device.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("resnet50", "efficientnet_b0", "mobilenet_v2")
APPLICATIONS = {"resnet50": "ResNet50", "efficientnet_b0": "EfficientNetB0", "mobilenet_v2": "MobileNetV2"}
FAMILY = {"resnet50": "resnet", "efficientnet_b0": "efficientnet", "mobilenet_v2": "mobilenet"}


def kerasvk_model(name, size, num_classes, augment=True):
    """uint8 images → [augmentation] → /255 → kerasvk network, all inside one keras model (on the device)."""
    import importlib

    import keras

    from kerasvk.layers.augment import RandomAffine, RandomColor

    builder = getattr(importlib.import_module(f"kerasvk.models.classification.{FAMILY[name]}"), name)
    net = builder(input_shape=(size, size, 3), num_classes=num_classes)
    images = keras.Input((size, size, 3), dtype="uint8", name="images")
    x = images
    if augment:  # the "standard" config; float32 whatever the policy (pixel arithmetic on 0..255 values)
        x = RandomColor(brightness=0.2, contrast=0.2, value_range=(0, 255), seed=1, dtype="float32", name="augment_color")(x)
        x = RandomAffine(rotation=15.0, zoom=0.2, seed=0, dtype="float32", name="augment_affine")(x)
    x = keras.layers.Rescaling(1.0 / 255.0, name="normalize")(x)
    return keras.Model(images, net(x), name=f"kerasvk_{name}")


def applications_model(name, size, num_classes):
    import keras

    return getattr(keras.applications, APPLICATIONS[name])(weights=None, input_shape=(size, size, 3), classes=num_classes)


def device_peak_bytes():
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def measure(name, side, size, batch, steps, precision, num_classes=1000):
    import keras
    import numpy as np

    keras.config.set_dtype_policy(precision)
    rng = np.random.default_rng(0)
    n = batch * steps
    low = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    x = np.repeat(np.repeat(low, -(-size // 8), axis=1), -(-size // 8), axis=2)[:, :size, :size]  # blocky uint8 images
    y = rng.integers(0, num_classes, n).astype("int32")
    if side == "kerasvk":
        model = kerasvk_model(name, size, num_classes)
    else:
        model = applications_model(name, size, num_classes)
        x = x.astype("float32")  # what a NumPy float pipeline hands to fit
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compile + warm-up
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    train = n / (time.perf_counter() - t0)
    model.predict(x[:batch], batch_size=batch, verbose=0)
    t0 = time.perf_counter()
    model.predict(x, batch_size=batch, verbose=0)
    predict = n / (time.perf_counter() - t0)
    peak = device_peak_bytes()
    return {"model": name, "side": side, "train": train, "predict": predict,
            "host_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "device_peak_mib": None if peak is None else peak / 2**20,
            "device": device_name(), "params": int(model.count_params()),
            "tensorflow_imported": "tensorflow" in sys.modules}  # must stay False: the GPU machine has none


def device_name():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform}:{getattr(d, 'device_kind', d)}"
    return keras.backend.backend()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="batches per timed epoch")
    ap.add_argument("--precision", default="mixed_bfloat16", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "SIDE"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        r = measure(a.one[0], a.one[1], a.image_size, a.batch, a.steps, a.precision)
        print("RESULT " + json.dumps(r), flush=True)
        return
    print(f"Keras backend {os.environ['KERAS_BACKEND']}; {a.image_size}×{a.image_size}, batch {a.batch}, {a.precision}, "
          f"{a.steps} timed steps; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| model | path | device | train img/s | predict img/s | peak host MiB | peak device MiB |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in a.models:
        for side in ("kerasvk", "keras.applications"):
            cmd = [sys.executable, __file__, "--one", name, side, "--image-size", str(a.image_size),
                   "--batch", str(a.batch), "--steps", str(a.steps), "--precision", a.precision]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"| {name} | {side} | failed: {(out.stderr.strip().splitlines() or ['?'])[-1]} | | | | |", flush=True)
                continue
            r = json.loads(line[7:])
            if r["tensorflow_imported"]:
                print(f"  (warning: {name} {side} imported TensorFlow, which the GPU machine does not have)")
            dev = "n/a" if r["device_peak_mib"] is None else f"{r['device_peak_mib']:.0f}"
            label = "kerasvk (uint8 in, augment + /255 on device)" if side == "kerasvk" else "keras.applications (float32 NumPy)"
            print(f"| {name} | {label} | {r['device']} | {r['train']:.0f} | {r['predict']:.0f} | "
                  f"{r['host_peak_mib']:.0f} | {dev} |", flush=True)


if __name__ == "__main__":
    main()
