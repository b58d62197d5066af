"""Domain adaptation (DANN): labelled digits → unlabelled digits on photo backgrounds (MNIST-M style).

Source domain: scikit-learn's digits as RGB (light strokes on black). Target domain: the embedded source
``digits_photo`` — the same digits added onto random 32×32 crops of scikit-learn's two sample photos
(china.jpg, flower.jpg), the construction of Ganin et al.'s MNIST-M built from data that ships with
scikit-learn. A source-trained network keeps only about three quarters of its accuracy there. The
target's labels are never used for training; only its test split's labels, to measure accuracy.

Both rows train the same network — Ganin et al.'s MNIST encoder (``digits_encoder``: conv 32@5×5, pool,
conv 48@5×5, pool, no batch norm), a Dense(100) → softmax label head and a 100-100-1 domain head behind
the gradient-reversal layer — on the same balanced source/target batches for the same number of steps,
with the paper's optimiser: SGD, momentum 0.9, lr_0 / (1 + 10p)^0.75 (p: progress 0 → 1).

- source only: the domain loss switched off (``domain_weight=0``), i.e. ordinary supervised training;
- DANN: the encoder minimises L_label − λ·L_domain (λ ramped 0 → 1 as 2/(1+e^(−10p)) − 1).

Measured on the current code with ``python recipes/domain_adaptation.py --seed 0`` (and ``--seed 1``,
``--seed 2``; defaults otherwise: 20 epochs = 800 steps, lr_0 0.01, λ_max 1), one process per seed; test
splits of 359 images; the previous figures in brackets:

    seed   source test acc (source only / DANN)   target test acc: source only → DANN   final domain acc
    0      0.967 / 0.939  [0.972 / 0.958]         0.741 → 0.721  [0.758 → 0.788]        0.806  [0.777]
    1      0.975 / 0.972  [0.981 / 0.972]         0.738 → 0.769  [0.733 → 0.808]        0.764  [0.727]
    2      0.972 / 0.969  [0.981 / 0.967]         0.719 → 0.780  [0.738 → 0.741]        0.747  [0.712]
    mean                                          0.733 → 0.757  [0.743 → 0.779]

DANN gains 2.4 points on average [was 3.6], but not on every seed [every seed was better]: seed 0 loses
1.9 points (7 images), seeds 1 and 2 gain 3.1 and 6.1 (11 and 22 images). DANN costs 0.3-2.8 points of
source accuracy [0.9-1.4]. The domain head ends at 0.75-0.81 accuracy [0.71-0.78]: the encoder confuses
it only partly on 1,259 images, and the gain is correspondingly moderate and seed-dependent. Time per seed
on the machine's 2 CPU cores, shared with other jobs (load average 4-5): 38 / 41 / 38 s reported by the
script, 45 / 47 / 44 s wall for the process.

Re-measured after the initialization fix d87d655: the first model of a process no longer starts from a
shifted RNG stream. That moved the source-only rows (the process's first build; the code before d87d655
still prints the bracketed ones). The DANN rows did not move with d87d655 (that run re-seeds after the
model modules are imported; the code before it prints the same rows), but they differ from the previous
record: the code of a69022c, the commit that recorded them, prints these new DANN rows here (seed 0
checked; its source-only row matches its record), so that DANN record was already stale (cause not found).

Earlier experiments, NOT re-run on the current code (they used variants of the data or network that this
file no longer contains, so these numbers cannot be reproduced by any command of this file): harder shifts
did not help at this data size (same network, 20 epochs): MNIST-M's |photo − digit| blend 0.501 → 0.490;
with per-image standardisation 0.510 → 0.496; LeNet-5 encoder on it 0.501 → 0.490; grey background +
heavy noise (0.35·x + 120, σ 70): seeds 0/1/2 0.262/0.351/0.318 → 0.568/0.348/0.203. On the paper's
two-moons toy (a 35° rotation) the same DANN code lifted target accuracy from 0.67 to 0.95. The
adversarial wiring itself is checked by the tests (gradients); on these small image sets the gain is
modest and seed-dependent.

Run: ``python recipes/domain_adaptation.py [--seed 0] [--epochs 20] [--lr 0.01] [--lambda-max 1]``
(about a minute per seed here).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from kerasvk.data import load  # noqa: E402
from kerasvk.training.domain_adaptation import (  # noqa: E402
    DANNLearningRate,
    build_dann,
    fit_dann,
)
from kerasvk.training.speed import NO_SPEED, add_speed_arguments, recipe_speed  # noqa: E402
from kerasvk.training.strategy import (  # noqa: E402
    NO_STRATEGY, RecipeParser, add_strategy_arguments, recipe_strategy,
)

SEED = 0
EPOCHS = 20
BATCH = 32
LEARNING_RATE = 0.01
LAMBDA_MAX = 1.0
UNITS = 100  # label head hidden layer and domain head layers (Ganin et al.)


def test_accuracy(model, data, sp=NO_SPEED):
    clf = model.classifier()
    clf.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], **sp.compile_kwargs)
    return sp.check(clf).evaluate(data.test, verbose=0, return_dict=True)["accuracy"]


def run(seed=SEED, epochs=EPOCHS, lambda_max=LAMBDA_MAX, lr=LEARNING_RATE, rs=NO_STRATEGY, sp=NO_SPEED):
    """The two runs; ``rs`` a :class:`~kerasvk.training.strategy.RecipeStrategy` (``--strategy``), ``sp`` a
    :class:`~kerasvk.training.speed.RecipeSpeed` (``--precision``, ``--jit-compile``): both models are built,
    compiled and trained in their scopes."""
    t0 = time.time()
    batch, lr = rs.batch(BATCH), lr * rs.lr_factor
    src = load("digits", channels=3, batch_size=batch, seed=seed)
    tgt = load("digits_photo", batch_size=batch, seed=seed)

    rows = []
    for label, domain_weight in (("source only", 0.0), ("DANN", 1.0)):
        keras.utils.set_random_seed(seed)
        with rs.scope(), sp.policy():
            model = build_dann(
                "digits_encoder", src.num_classes, input_shape=src.input_shape, pooling="flatten",
                label_units=UNITS, domain_units=UNITS, domain_weight=domain_weight, lambda_max=lambda_max,
            )
            steps = epochs * int(src.train.cardinality())
            optimizer = keras.optimizers.SGD(DANNLearningRate(lr, steps), momentum=0.9)
            hist = fit_dann(model, src.train, tgt.train, epochs=epochs, optimizer=optimizer,
                            **sp.compile_kwargs)
            sp.check(model)
            domain_acc = hist.history["domain_accuracy"][-1]
            rows.append((label, test_accuracy(model, src, sp), test_accuracy(model, tgt, sp), domain_acc))

    print(f"source: digits (RGB) {src.counts}; target: digits_photo (labels unused in training)")
    print(f"network: Ganin et al.'s digits encoder, {model.classifier().count_params():,} classifier params; "
          f"{epochs} epochs ({steps} steps), SGD lr_0={lr:g} annealed, λ_max={lambda_max:g}, seed {seed}; "
          f"{sp.describe()}\n")
    print(f"{'training':<14}{'source test acc':>17}{'target test acc':>17}{'final domain acc':>18}")
    for label, s, t, d in rows:  # the source-only run never trains its domain head: no domain accuracy
        print(f"{label:<14}{s:>17.3f}{t:>17.3f}" + (f"{d:>18.3f}" if label == "DANN" else f"{'-':>18}"))
    print(f"\n({time.time() - t0:.0f} s)")


def main(argv=None):
    parser = RecipeParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=SEED, help="split, photo crops, shuffling and init seed")
    parser.add_argument("--lambda-max", type=float, default=LAMBDA_MAX, help="λ at the end of the ramp")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE, help="lr_0 of the annealed SGD")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    add_strategy_arguments(parser)
    add_speed_arguments(parser)
    args = parser.parse_args(argv)
    sp = recipe_speed(parser, args)
    rs = recipe_strategy(parser, args, allowed=("mirrored",), batches=[BATCH],
                         why="the DANN model's own train step is set up for one machine")
    run(args.seed, args.epochs, args.lambda_max, args.lr, rs=rs, sp=sp)


if __name__ == "__main__":
    main()
