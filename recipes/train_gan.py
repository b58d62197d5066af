"""Train a DCGAN (or WGAN-GP) on the embedded digits and measure it with FID-digits and Inception Score.

FID/IS need a feature extractor. Offline, a LeNet-5 trained on the same digits plays InceptionV3's role:
its 84-d F6 features give "FID-digits" and its softmax gives "IS-digits" (both comparable between runs on
digits only, not with published numbers; pass ``--inception`` to use ImageNet InceptionV3 if its weights
can be downloaded). The recipe prints, for the untrained and the trained generator:

- FID-digits between generated samples and the real test digits (lower is better; the real training
  digits against the same test digits give the floor to aim for);
- IS-digits of the samples (higher is better, at most 10), next to the real test digits' IS.

Run folder: ``samples_start.png``, ``samples_end.png``, ``samples_epochNNN.png`` (fixed noise every few
epochs), ``history.json``, ``metrics.json``, ``gan.keras``.

Run: ``python recipes/train_gan.py [--model dcgan|wgan_gp] [--epochs 60] [--out runs/gan]``
(about 5 CPU-minutes for dcgan). Measured (dcgan, 60 epochs, 1000 samples, LeNet-5 extractor at 96.1 %
test accuracy): FID-digits 77.5 → 4.26 (real train vs test: 0.40), IS-digits 1.00 → 6.06 (real: 8.84).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasvk  # noqa: E402
from kerasvk import plots  # noqa: E402
from kerasvk.data import dataset_arrays, load  # noqa: E402
from kerasvk.evaluation.generative import InceptionFeatures, fid, inception_score  # noqa: E402
from kerasvk.io import save_model, write_json  # noqa: E402
from kerasvk.training.callbacks import SampleGridCallback  # noqa: E402
from kerasvk.training.feature_classifier import train_feature_classifier  # noqa: E402

IMAGE_SIZE = (32, 32)


def quality(extractor, real_feats, images, splits=5):
    feats, probs = extractor(images)
    return {"fid": fid(real_feats, feats), "is": inception_score(probs, splits=splits)[0]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tf.config.experimental.enable_op_determinism()  # same seed → same numbers

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

    keras.utils.set_random_seed(args.seed)
    small = {"g_filters": (64, 32), "d_filters": (32, 64)}
    gan = kerasvk.build(
        args.model, input_shape=data.input_shape, latent_dim=args.latent_dim, seed=args.seed, **small
    )
    gan.compile()  # Adam(2e-4, β1=0.5) ×2, label smoothing 0.1 (WGAN-GP: Adam(1e-4, 0.5, 0.9), n_critic 5)
    start_images = np.asarray(gan.sample(args.num_samples, seed=123))
    start = quality(extractor, real_feats, start_images)
    plots.image_grid(start_images[:64], out / "samples_start.png", title=f"{args.model}, untrained")

    grid = SampleGridCallback(out, num_images=64, every=max(1, args.epochs // 6), seed=args.seed)
    hist = gan.fit(data.train, epochs=args.epochs, verbose=0, callbacks=[grid]).history

    end_images = np.asarray(gan.sample(args.num_samples, seed=123))
    end = quality(extractor, real_feats, end_images)
    plots.image_grid(end_images[:64], out / "samples_end.png", title=f"{args.model}, {args.epochs} epochs")
    save_model(gan, out / "gan.keras")
    write_json({k: [float(v) for v in vs] for k, vs in hist.items()}, out / "history.json")

    name = extractor.name
    metrics = {
        "model": args.model,
        "epochs": args.epochs,
        "feature_extractor": name,
        "feature_classifier_test_accuracy": clf_acc,
        "num_generated": args.num_samples,
        "start": start,
        "end": end,
        "real": real,
        "final_losses": {k: float(v[-1]) for k, v in hist.items()},
        "seconds": round(time.time() - t0, 1),
    }
    write_json(metrics, out / "metrics.json")
    is_name = name.replace("FID", "IS")
    print(f"{'':24s}{name:>12s}{is_name:>12s}")
    print(f"{'untrained generator':24s}{start['fid']:12.2f}{start['is']:12.2f}")
    print(f"{'trained generator':24s}{end['fid']:12.2f}{end['is']:12.2f}")
    print(f"{'real (train vs test)':24s}{real['fid_train_vs_test']:12.2f}{real['is_test']:12.2f}")
    print("final: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["final_losses"].items()))
    print(f"Wrote {out}/ in {metrics['seconds']} s")
    return metrics


if __name__ == "__main__":
    main()
