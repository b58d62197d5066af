"""Domain adaptation (DANN): labelled digits → unlabelled inverted, noisy digits.

Source domain: scikit-learn digits (light strokes on black). Target domain: the same kind of images with
half the contrast on a grey background (0.5·x + 110) and Gaussian noise (σ = 50 grey levels) — a real
covariate shift: a source-trained network keeps a fair part of its accuracy on it, but far from all.
(Full colour inversion is a harder case: the source-only network then scores *below* chance, and DANN
tends to align the domains with permuted classes, since nothing ties a target cluster to its label.)
The target's labels are never used for training; only its test split's labels, to measure accuracy.

Both rows train the same network (LeNet-5 encoder without batch norm, so source and target batches share
one set of statistics; softmax label head; 2-layer domain head behind a gradient-reversal layer) on the
same balanced source/target batches for the same number of steps, with Ganin & Lempitsky's optimiser:
SGD, momentum 0.9, learning rate annealed as lr_0 / (1 + 10p)^0.75 over the whole run (p: progress 0 → 1).

- source only: the domain loss switched off (``domain_weight=0``), i.e. ordinary supervised training;
- DANN: the domain head minimises the domain loss while the encoder receives its reversed gradient, i.e.
  the encoder minimises L_label − λ·L_domain, with λ ramped 0 → ``LAMBDA_MAX`` as
  λ_p = LAMBDA_MAX·(2/(1+e^(−10p)) − 1).

Measured, target test accuracy (359 images), source only → DANN:
- previous setting (0.5·x + 110, σ = 50; linear label head, 64-unit domain head; lr_0 0.03, λ_max 0.5):
  seeds 0/1/2: 0.891/0.930/0.880 → 0.858/0.786/0.794;
- this setting (0.35·x + 120, σ = 70; label head Dense(100) → softmax, domain head 100-100-1;
  lr_0 0.01, λ_max 1): seed 0 0.262 → 0.568, seed 1 0.351 → 0.348, seed 2 0.318 → 0.203;
  λ_max 0.5 seed 1: 0.351 → 0.217; λ_max 0.2 seeds 1/2: 0.351 → 0.290, 0.318 → 0.201;
- lr_0 0.03 with λ_max 1 diverges (source accuracy 0.57 on this shift, 0.87 on the milder one).
DANN does NOT reliably help yet (only seed 0) — open problem. The domain head ends at 0.8-0.93 accuracy,
i.e. the encoder does not manage to confuse it; the loss wiring is verified by the tests (encoder gets
exactly −λ·∂L_domain, domain head +∂L_domain, label head source only).

Run: ``python recipes/domain_adaptation.py`` (two to three minutes on 2 CPU cores).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasvk.data import load, load_arrays  # noqa: E402
from kerasvk.training.domain_adaptation import DANNLearningRate, build_dann, fit_dann  # noqa: E402

SEED = 0
EPOCHS = 12
CONTRAST = 0.35
BACKGROUND = 120.0
NOISE = 70.0
LEARNING_RATE = 0.01  # lr_0 of the annealed SGD (0.03 with λ_max = 1 diverges: source accuracy 0.57)
LAMBDA_MAX = 1.0
UNITS = 100  # label head hidden layer and domain head layers (Ganin et al.'s digits architecture)


def shifted(x, seed=SEED):
    """Low contrast on a grey background plus heavy Gaussian noise (uint8 in, uint8 out)."""
    rng = np.random.default_rng(seed)
    noisy = CONTRAST * x.astype("float32") + BACKGROUND + rng.normal(0.0, NOISE, x.shape)
    return np.clip(np.round(noisy), 0, 255).astype("uint8")


def target_accuracy(model, data):
    clf = model.classifier()
    clf.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return clf.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]


def main(seed=SEED):
    t0 = time.time()
    x, y, names = load_arrays("digits")
    src = load((x, y), class_names=names, batch_size=64, seed=seed)
    tgt = load((shifted(x), y), class_names=names, batch_size=64, seed=seed)

    rows = []
    for label, domain_weight in (("source only", 0.0), ("DANN", 1.0)):
        keras.utils.set_random_seed(seed)
        model = build_dann(
            "lenet5", src.num_classes, input_shape=src.input_shape, activation="relu", pooling="flatten",
            label_units=UNITS, domain_units=UNITS, domain_weight=domain_weight, lambda_max=LAMBDA_MAX,
        )
        steps = EPOCHS * int(src.train.cardinality())
        optimizer = keras.optimizers.SGD(DANNLearningRate(LEARNING_RATE, steps), momentum=0.9)
        hist = fit_dann(model, src.train, tgt.train, epochs=EPOCHS, optimizer=optimizer)
        src_acc = target_accuracy(model, src)  # on the source test split
        rows.append((label, src_acc, target_accuracy(model, tgt), hist.history["domain_accuracy"][-1]))

    print(f"source: digits {src.counts}; target: {CONTRAST:g}·x + {BACKGROUND:g} + noise σ={NOISE:g} "
          "(labels unused in training)")
    print(f"network: LeNet-5 encoder, {model.classifier().count_params():,} classifier params; {EPOCHS} epochs, "
          f"SGD lr_0={LEARNING_RATE:g} annealed, λ_max={LAMBDA_MAX:g}\n")
    print(f"{'training':<14}{'source test acc':>17}{'target test acc':>17}{'final domain acc':>18}")
    for label, s, t, d in rows:  # the source-only run never trains its domain head: no domain accuracy
        print(f"{label:<14}{s:>17.3f}{t:>17.3f}" + (f"{d:>18.3f}" if label == "DANN" else f"{'-':>18}"))
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=SEED, help="split, shuffling and initialisation seed")
    parser.add_argument("--lambda-max", type=float, default=LAMBDA_MAX, help="λ at the end of the ramp")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE, help="lr_0 of the annealed SGD")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    LAMBDA_MAX, LEARNING_RATE, EPOCHS = args.lambda_max, args.lr, args.epochs
    main(args.seed)
