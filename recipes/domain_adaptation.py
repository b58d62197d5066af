"""Domain adaptation (DANN): labelled digits → unlabelled inverted, noisy digits.

Source domain: scikit-learn digits (light strokes on black). Target domain: the same kind of images with
half the contrast on a grey background (0.5·x + 110) and Gaussian noise (σ = 50 grey levels) — a real
covariate shift. (Full colour inversion is a harder case: the source-only network then scores *below*
chance, and DANN aligns the domains but with permuted classes — see the note at the end of this file.) The target's labels
are never used for training; only its test split's labels, to measure accuracy.

Both rows train the same network (LeNet-5 encoder, softmax label head, 2-layer domain head behind a
gradient-reversal layer) on the same batches for the same number of steps:

- source only: the domain loss switched off (``domain_weight=0``), i.e. ordinary supervised training;
- DANN: domain loss on, reversal strength ramped 0 → 1 with λ_p = 2/(1+e^(−10p)) − 1.

Run: ``python recipes/domain_adaptation.py`` (one to two minutes on 2 CPU cores).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasvk.data import load, load_arrays  # noqa: E402
from kerasvk.training.domain_adaptation import build_dann, fit_dann  # noqa: E402

SEED = 0
EPOCHS = 12
NOISE = 50.0


def shifted(x, seed=SEED):
    """Half contrast on a grey background plus Gaussian noise (uint8 in, uint8 out)."""
    rng = np.random.default_rng(seed)
    noisy = 0.5 * x.astype("float32") + 110.0 + rng.normal(0.0, NOISE, x.shape)
    return np.clip(np.round(noisy), 0, 255).astype("uint8")


def target_accuracy(model, data):
    clf = model.classifier()
    clf.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return clf.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]


def main():
    t0 = time.time()
    x, y, names = load_arrays("digits")
    src = load((x, y), class_names=names, batch_size=64, seed=SEED)
    tgt = load((shifted(x), y), class_names=names, batch_size=64, seed=SEED)

    rows = []
    for label, domain_weight in (("source only", 0.0), ("DANN", 1.0)):
        keras.utils.set_random_seed(SEED)
        model = build_dann(
            "lenet5", src.num_classes, input_shape=src.input_shape, activation="relu",
            domain_units=64, domain_weight=domain_weight,
        )
        hist = fit_dann(model, src.train, tgt.train, epochs=EPOCHS, optimizer=keras.optimizers.Adam(1e-3))
        src_acc = target_accuracy(model, src)  # on the source test split
        rows.append((label, src_acc, target_accuracy(model, tgt), hist.history["domain_accuracy"][-1]))

    print(f"source: digits {src.counts}; target: 0.5·x + 110 + noise σ={NOISE:g} (labels unused in training)")
    print(f"network: LeNet-5 encoder, {model.classifier().count_params():,} classifier params; {EPOCHS} epochs\n")
    print(f"{'training':<14}{'source test acc':>17}{'target test acc':>17}{'final domain acc':>18}")
    for label, s, t, d in rows:
        print(f"{label:<14}{s:>17.3f}{t:>17.3f}{d:>18.3f}")
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
