"""LiteRT float32 vs int8: file size and test accuracy of the device classifiers on embedded digits.

Trains each model briefly with ``kerasvk.training.train`` (digits, 32×32), exports it with
``kerasvk.export.litert.export_run_litert`` (int8 calibrated on 200 training images) and prints, from one
run: Keras accuracy, float32 and int8 accuracy and size, the int8 size ratio and accuracy drop.

BatchNormalization momentum is set to ``--bn-momentum`` (0.9) for these short runs: with the zoo's
keras.applications values (0.99, MobileNet V2/V3 0.999) ~200 steps leave the moving statistics near their
initial values, and the Keras model itself (so both LiteRT files) scored chance (0.097) in inference mode,
which says nothing about quantisation.

    python bench/litert_quantization.py [--epochs 10] [--models lenet5,simple_cnn,mobilenet_v2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

MODELS = {
    "lenet5": {},
    "simple_cnn": {},
    "mobilenet_v1": {"alpha": 0.25},
    "mobilenet_v2": {"alpha": 0.35},
    "mobilenet_v3_small": {"alpha": 0.5},
    "efficientnet_b0": {},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--bn-momentum", type=float, default=0.9)
    args = p.parse_args(argv)
    import keras

    from kerasvk.export.litert import export_run_litert
    from kerasvk.training import train
    from kerasvk.training.regularization import configure_batch_norm

    class BatchNormMomentum(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            try:
                configure_batch_norm(self.model, momentum=args.bn_momentum)
            except ValueError:  # no BatchNormalization layers (lenet5, simple_cnn)
                pass

    rows = []
    for name in args.models.split(","):
        run = Path(tempfile.mkdtemp()) / name
        channels = 1 if name == "lenet5" else 3
        train(name, "digits", epochs=args.epochs, out=run, verbose=0, channels=channels, image_size=(32, 32),
              model_kwargs={**MODELS.get(name, {}), "input_shape": (32, 32, channels)}, callbacks=[BatchNormMomentum()])
        r = export_run_litert(run)
        f, i = r["files"]["float32"], r["files"]["int8"]
        rows.append((name, r["keras_accuracy"], f["accuracy"], i["accuracy"], f["size_bytes"], i["size_bytes"]))
        print(rows[-1], flush=True)
    print(f"\n{'model':<20}{'keras':>8}{'float32':>9}{'int8':>8}{'drop':>8}{'float KB':>10}{'int8 KB':>9}{'ratio':>7}")
    for n, k, f, i, fs, is_ in rows:
        print(f"{n:<20}{k:>8.4f}{f:>9.4f}{i:>8.4f}{f - i:>8.4f}{fs / 1024:>10.1f}{is_ / 1024:>9.1f}{is_ / fs:>7.2f}")


if __name__ == "__main__":
    main()
