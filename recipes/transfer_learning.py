"""Transfer learning on embedded data: pre-train on digits 0–4, then learn digits 5–9 from ~10 images per class.

Three ways to fit the small target set, same architecture (LeNet-5), same test images:

1. from scratch;
2. feature extraction: the pre-trained encoder frozen (``transfer_classifier``), a new head trained;
3. fine-tuning: (2), then every encoder block unfrozen at a 10× lower learning rate with an L2-SP
   penalty λ‖θ − θ_pre‖² pulling the weights toward their pre-trained values (``fine_tune(l2sp=λ)``).

Measured with ``python recipes/transfer_learning.py`` (defaults: ``--shots 10``, seed 0; the machine's
2 CPU cores were shared with other jobs, load average 6: 17 s reported by the script, 24 s wall for the
process; the previous figures in brackets):

    pre-trained LeNet-5 on digits 0-4: test accuracy 0.972  [0.978]
    target: digits 5-9, 54 training images, 842 test images

    method                                        trainable params   test accuracy
    from scratch                                            61,281           0.935  [0.929]
    frozen encoder + new head                                2,005           0.939  [0.932]
    fine-tune c1+c3 + L2-SP λ=0.001                          4,577           0.941  [0.933]

At 10 shots on these easy digits the pre-trained encoder adds only 0.5-0.6 points (4-5 of 842 test
images) [0.3-0.4 points, about 3]; the result is one seed, no spread measured. Re-measured after the
initialization fix d87d655: the first model of a process no longer starts from a shifted RNG stream. Every
number moved, since all three models are built after the one ``set_random_seed``: the pre-trained model
by one of 180 source test images, the target rows by 5-6 of 842 images (the code before d87d655 still
prints the bracketed numbers).

Run: ``python recipes/transfer_learning.py [--shots 10]``.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasvk  # noqa: E402
from kerasvk.data import load, load_arrays  # noqa: E402
from kerasvk.training.speed import NO_SPEED, add_speed_arguments, recipe_speed  # noqa: E402
from kerasvk.training.strategy import (  # noqa: E402
    NO_STRATEGY, RecipeParser, add_strategy_arguments, recipe_strategy,
)
from kerasvk.training.transfer import fine_tune, trainable_summary, transfer_classifier  # noqa: E402

SEED = 0
SHOTS = 10  # labelled target images per class (about)
L2SP = 1e-3
CUT_AT = "c5_conv"  # keep C1-S4 (generic strokes); C5 is specific to the source classes


def compile_(model, lr, rs=NO_STRATEGY, data=None, sp=NO_SPEED):
    """Compile (in ``rs``'s scope and ``sp``'s policy, the rate scaled with the global batch,
    ``--jit-compile``) and prepare ``fit`` on ``data``."""
    with rs.scope(), sp.policy():
        model.compile(keras.optimizers.Adam(lr * rs.lr_factor), "sparse_categorical_crossentropy",
                      metrics=["accuracy"], **sp.compile_kwargs)
    return rs.prepare(sp.check(model), data)


def test_accuracy(model, data):
    return model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]


def run(shots=SHOTS, rs=NO_STRATEGY, sp=NO_SPEED):
    """The comparison; ``rs`` a :class:`~kerasvk.training.strategy.RecipeStrategy` (``--strategy``), ``sp`` a
    :class:`~kerasvk.training.speed.RecipeSpeed` (``--precision``, ``--jit-compile``): every model is built,
    compiled and trained in their scopes."""
    keras.utils.set_random_seed(SEED)
    t0 = time.time()
    x, y, _ = load_arrays("digits")  # 1,797 digits, 32×32×1 uint8
    src = load((x[y < 5], y[y < 5]), batch_size=rs.batch(64), val_split=0.1, test_split=0.2, seed=SEED)
    n_per_class = np.bincount(y[y >= 5] - 5).min()
    tgt = load(
        (x[y >= 5], y[y >= 5] - 5), class_names=[str(d) for d in range(5, 10)],
        batch_size=rs.batch(16), val_split=0.0, test_split=1 - (shots + 0.5) / n_per_class, seed=SEED,
    )
    for d in (src, tgt):
        d.train, d.val, d.test = (rs.shard(s) for s in (d.train, d.val, d.test))
    print(f"source digits 0-4: {src.counts}; target digits 5-9: {tgt.counts}")

    # Pre-training on the source task
    with rs.scope(), sp.policy():
        pretrained = kerasvk.build("lenet5", num_classes=5, activation="relu", subsampling="max")
    compile_(pretrained, 1e-3, rs, src.train, sp)
    pretrained.fit(src.train, validation_data=src.val, epochs=15, verbose=0)
    src_acc = test_accuracy(pretrained, src)

    rows = []
    # 1. From scratch
    with rs.scope(), sp.policy():
        scratch = kerasvk.build("lenet5", num_classes=5, activation="relu", subsampling="max")
    compile_(scratch, 1e-3, rs, tgt.train, sp)
    scratch.fit(tgt.train, epochs=80, verbose=0)
    rows.append(("from scratch", trainable_summary(scratch)["trainable"], test_accuracy(scratch, tgt)))

    # 2. Feature extraction: frozen encoder, new head
    with rs.scope(), sp.policy():
        model = transfer_classifier(pretrained, 5, cut_at=CUT_AT, pooling="flatten", name="lenet5_transfer")
    compile_(model, 1e-2, rs, tgt.train, sp)
    model.fit(tgt.train, epochs=80, verbose=0)
    rows.append(("frozen encoder + new head", trainable_summary(model)["trainable"], test_accuracy(model, tgt)))

    # 3. Fine-tuning all blocks with L2-SP toward the pre-trained weights
    with rs.scope(), sp.policy():
        blocks = fine_tune(model, "all", l2sp=L2SP)
    compile_(model, 1e-3, rs, tgt.train, sp)
    model.fit(tgt.train, epochs=40, verbose=0)
    rows.append((f"fine-tune {'+'.join(blocks)} + L2-SP λ={L2SP:g}", trainable_summary(model)["trainable"],
                 test_accuracy(model, tgt)))

    print(f"\npre-trained LeNet-5 on digits 0-4: test accuracy {src_acc:.3f}; {sp.describe()}")
    print(f"target: digits 5-9, {tgt.counts['train']} training images, {tgt.counts['test']} test images\n")
    print(f"{'method':<44}{'trainable params':>18}{'test accuracy':>16}")
    for name, params, acc in rows:
        print(f"{name:<44}{params:>18,}{acc:>16.3f}")
    print(f"\n({time.time() - t0:.0f} s)")


def main(argv=None):
    parser = RecipeParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=SHOTS, help="labelled target images per class")
    add_strategy_arguments(parser)
    add_speed_arguments(parser)
    args = parser.parse_args(argv)
    sp = recipe_speed(parser, args)
    run(args.shots, recipe_strategy(parser, args, batches=[64, 16]), sp)


if __name__ == "__main__":
    main()
