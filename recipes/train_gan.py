"""Train a DCGAN (or WGAN-GP) on the embedded digits and measure it with FID-digits and Inception Score.

The training itself is ``kerasvk.training.train`` (the one trainer every task uses); this recipe adds the
measurement. FID/IS need a feature extractor. Offline, a LeNet-5 trained on the same digits plays
InceptionV3's role: its 84-d F6 features give "FID-digits" and its softmax gives "IS-digits" (both
comparable between runs on digits only, not with published numbers; pass ``--inception`` to use ImageNet
InceptionV3 if its weights can be downloaded). The recipe prints, for the untrained and the trained generator:

- FID-digits between generated samples and the real test digits (lower is better; the real training
  digits against the same test digits give the floor to aim for);
- IS-digits of the samples (higher is better, at most 10), next to the real test digits' IS.

Run folder: the trainer's layout (``run.json``, ``history.json``, ``metrics.json`` with the test-split
D/G losses, ``model.keras``, ``training_log.csv``, ``checkpoints/last.keras``, ``plots/history.png``,
``plots/samples.png``, ``plots/samples_epochNNN.png`` from fixed noise every fifth of the run) plus this
recipe's ``quality.json`` (FID/IS) and ``plots/samples_start.png`` / ``plots/samples_end.png``.

Run: ``python recipes/train_gan.py [--model dcgan|wgan_gp] [--epochs 60] [--out runs/gan]``.

Measured with ``python recipes/train_gan.py --out /tmp/rc2/gan`` (the defaults: dcgan, 60 epochs, 1000
samples, seed 0; LeNet-5 extractor at 96.7 % test accuracy), 3 min 44 s wall (148 s of it training) on 2
heavily shared CPU cores::

                              FID-digits   IS-digits
    untrained generator           703.08        1.00
    trained generator              37.30        6.61
    real (train vs test)            2.01        9.14
    final: d_g_z 0.419, d_loss 1.277, d_x 0.483, g_loss 0.888

The pre-trainer recipe (its own ``gan.fit``, no validation pass) printed 706 → 36.6 (real 2.03), IS 6.71 with
the same seeds. The trainer's validation pass each epoch draws its noise from the GAN's own evaluation
seed generator, so it does not shift the training noise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasvk import plots  # noqa: E402
from kerasvk.data import dataset_arrays, load  # noqa: E402
from kerasvk.evaluation.generative import InceptionFeatures, fid, inception_score  # noqa: E402
from kerasvk.io import read_json, write_json  # noqa: E402
from kerasvk.training import load_run_model, train  # noqa: E402
from kerasvk.training.feature_classifier import train_feature_classifier  # noqa: E402
from kerasvk.training.speed import add_speed_arguments, recipe_speed  # noqa: E402
from kerasvk.training.strategy import (  # noqa: E402
    RecipeParser, add_strategy_arguments, check_recipe_strategy, is_chief_process,
)

IMAGE_SIZE = (32, 32)
SAMPLE_SEED = 123  # the same noise for the untrained and the trained generator


def quality(extractor, real_feats, images, splits=5):
    feats, probs = extractor(images)
    return {"fid": fid(real_feats, feats), "is": inception_score(probs, splits=splits)[0]}


class MeasureUntrained(keras.callbacks.Callback):
    """FID/IS of the generator the trainer built, before its first step (the 'untrained' row)."""

    def __init__(self, extractor, real_feats, num_samples, path, title):
        super().__init__()
        self.args = (extractor, real_feats, num_samples, path, title)
        self.result = None

    def on_train_begin(self, logs=None):
        extractor, real_feats, n, path, title = self.args
        # a seeded draw: the model's own noise stream is left alone
        images = np.asarray(self.model.sample(n, seed=SAMPLE_SEED))
        self.result = quality(extractor, real_feats, images)
        plots.image_grid(images[:64], path, title=title)


def main(argv=None):
    p = RecipeParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="dcgan", choices=["dcgan", "wgan_gp"])
    p.add_argument("--out", default="runs/gan")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--num-samples", type=int, default=1000, help="generated images per FID/IS measurement")
    p.add_argument("--classifier-epochs", type=int, default=25)
    p.add_argument(
        "--inception", action="store_true", help="use ImageNet InceptionV3 features (downloads weights)"
    )
    p.add_argument("--seed", type=int, default=0)
    add_strategy_arguments(p)
    add_speed_arguments(p)  # the GAN's training; the FID/IS feature extractor stays float32
    args = p.parse_args(argv)
    sp = recipe_speed(p, args)  # mixed_float16 without a float16 GPU: one line, exit 2
    check_recipe_strategy(p, args)  # TF_CONFIG of --strategy multiworker: one line, exit 2
    out = Path(args.out)
    t0 = time.time()

    # 1. the feature extractor and the real digits' own scores (the same split the trainer uses)
    data = load("digits", image_size=IMAGE_SIZE, batch_size=64, seed=args.seed)
    x_train, _ = dataset_arrays(data.train)
    x_test, _ = dataset_arrays(data.test)
    if args.inception:
        extractor, clf_acc = InceptionFeatures(), None
    else:
        extractor, clf_acc = train_feature_classifier(
            "digits", image_size=IMAGE_SIZE, model="lenet5", epochs=args.classifier_epochs, seed=args.seed
        )
        print(f"{extractor.name} feature classifier (LeNet-5): test accuracy {clf_acc:.3f}")
    real_feats, real_probs = extractor(x_test)
    real = {
        "is_test": inception_score(real_probs, splits=5)[0],
        "fid_train_vs_test": fid(real_feats, extractor(x_train)[0]),
    }

    # 2. training: the one trainer. No lr/optimizer given, so the GAN compiles its own two optimizers:
    # Adam(2e-4, β1=0.5) ×2, label smoothing 0.1 (WGAN-GP: Adam(1e-4, 0.5, 0.9), n_critic 5).
    untrained = MeasureUntrained(
        extractor, real_feats, args.num_samples, out / "plots" / "samples_start.png",
        f"{args.model}, untrained",
    )
    report = train(
        args.model,
        "digits",
        epochs=args.epochs,
        batch_size=64,
        image_size=IMAGE_SIZE,
        seed=args.seed,
        out=out,
        model_kwargs={
            "latent_dim": args.latent_dim, "seed": args.seed, "g_filters": (64, 32), "d_filters": (32, 64),
        },
        callbacks=[untrained],
        strategy=args.strategy,
        batch_scaling=args.batch_scaling,
        **sp.train_kwargs,  # the GAN scales both its losses under mixed_float16 (LossScaleOptimizer)
        verbose=0,
    )
    if not is_chief_process(args.strategy):
        return  # a non-chief worker's part was the training; the chief measures and writes

    # 3. the trained generator, as saved in the run folder
    gan, _ = load_run_model(out)
    end_images = np.asarray(gan.sample(args.num_samples, seed=SAMPLE_SEED))
    start, end = untrained.result, quality(extractor, real_feats, end_images)
    plots.image_grid(
        end_images[:64], out / "plots" / "samples_end.png", title=f"{args.model}, {args.epochs} epochs"
    )

    history = read_json(out / "history.json")
    run = read_json(out / "run.json")
    name = extractor.name
    metrics = {
        "model": args.model,
        "epochs": args.epochs,
        "precision": run["precision"],
        "jit_compile": run["jit_compile"],
        "feature_extractor": name,
        "feature_classifier_test_accuracy": clf_acc,
        "num_generated": args.num_samples,
        "start": start,
        "end": end,
        "real": real,
        "final_losses": {
            k: v[-1] for k, v in history.items() if not k.startswith("val_") and k != "learning_rate"
        },
        "test": report,
        "seconds": round(time.time() - t0, 1),
    }
    write_json(metrics, out / "quality.json")
    is_name = name.replace("FID", "IS")
    print(f"{'':24s}{name:>12s}{is_name:>12s}")
    print(f"{'untrained generator':24s}{start['fid']:12.2f}{start['is']:12.2f}")
    print(f"{'trained generator':24s}{end['fid']:12.2f}{end['is']:12.2f}")
    print(f"{'real (train vs test)':24s}{real['fid_train_vs_test']:12.2f}{real['is_test']:12.2f}")
    print("final: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["final_losses"].items()))
    print(f"Wrote {out}/ in {metrics['seconds']} s (training {report['train_seconds']} s)")
    return metrics


if __name__ == "__main__":
    main()
