"""Train a convolutional VAE on the embedded digits, draw what it learned, and use it as an anomaly detector.

1. VAE on all ten digits (32×32, Bernoulli likelihood, β = 1): prints the test negative ELBO (Monte-Carlo,
   nats per image) and writes to the run folder
   ``samples.png`` (decoded z ~ N(0, I)), ``reconstructions.png`` (test images / reconstructions),
   ``interpolation.png`` (latent line between two test digits), ``latent_scatter.png`` (μ of the test
   images coloured by class: the latent plane itself for ``--latent-dim 2``, else its first two principal
   components), ``samples_epochNNN.png`` (fixed-noise progress), ``history.json``, ``metrics.json``,
   ``vae.keras``.
2. Anomaly detection: a second VAE trained on digits 0–8 only scores held-out 0–8 test digits, all 9s,
   and uniform-noise images by negative ELBO (``anomaly_score``); prints ROC-AUC for "9 vs 0–8" and
   "noise vs 0–8" and writes ``anomaly_scores.png``.

Run: ``python recipes/train_vae.py [--epochs 30] [--latent-dim 8] [--out runs/vae]`` (about 6 CPU-minutes:
two 30-epoch trainings). Measured: test negative ELBO 374.9 nats/image; ROC-AUC 9 vs 0–8 0.825, noise vs
0–8 1.000.
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
from kerasvk.io import save_model, write_json  # noqa: E402
from kerasvk.training.callbacks import SampleGridCallback  # noqa: E402

IMAGE_SIZE = (32, 32)


def train_vae(data, args, out=None):
    keras.utils.set_random_seed(args.seed)
    vae = kerasvk.build("vae", input_shape=data.input_shape, latent_dim=args.latent_dim, seed=args.seed)
    vae.compile(optimizer=keras.optimizers.Adam(args.lr))
    callbacks = (
        [SampleGridCallback(out, num_images=32, every=max(1, args.epochs // 3), seed=1)] if out else []
    )
    hist = vae.fit(data.train, validation_data=data.val, epochs=args.epochs, verbose=0, callbacks=callbacks)
    return vae, hist.history


def roc_auc(normal_scores, anomaly_scores):
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(normal_scores)), np.ones(len(anomaly_scores))]
    return float(roc_auc_score(y, np.r_[normal_scores, anomaly_scores]))


def latent_scatter(mean, labels, path, latent_dim):
    plt = plots._plt()
    if latent_dim == 2:
        pts, title = mean, "latent means μ(x), test digits"
    else:
        centred = mean - mean.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        pts, title = centred @ vt[:2].T, f"test μ(x): first 2 principal components of {latent_dim}-d latents"
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=labels, cmap="tab10", s=8, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_title(title, fontsize=9)
    plots.save_figure(fig, path)


def score_histogram(scores, path):
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    hi = np.percentile(np.concatenate(list(scores.values())), 99)
    bins = np.linspace(0, hi, 60)
    for name, s in scores.items():
        ax.hist(np.minimum(s, hi), bins=bins, alpha=0.5, density=True, label=name)
    ax.set_xlabel("anomaly score = negative ELBO (nats)")
    ax.legend()
    plots.save_figure(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/vae")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--latent-dim", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-anomaly", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tf.config.experimental.enable_op_determinism()  # same seed → same numbers

    # ---- 1. VAE on all digits -------------------------------------------------------------------
    data = load("digits", image_size=IMAGE_SIZE, batch_size=64, seed=args.seed)
    vae, history = train_vae(data, args, out)
    x_test, y_test = dataset_arrays(data.test)
    ev = vae.evaluate(data.test, verbose=0, return_dict=True)
    nelbo = vae.negative_elbo(x_test, num_samples=16, seed=args.seed)
    metrics = {
        "test_negative_elbo_nats": float(nelbo.mean()),
        "test_negative_elbo_bits_per_pixel": float(nelbo.mean() / np.log(2) / np.prod(x_test.shape[1:])),
        "test_loss_at_posterior_mean": ev,
        "latent_dim": args.latent_dim,
        "epochs": args.epochs,
        "counts": data.counts,
    }
    print(
        f"VAE (latent {args.latent_dim}, {args.epochs} epochs): "
        f"test negative ELBO = {nelbo.mean():.2f} nats/image "
        f"({metrics['test_negative_elbo_bits_per_pixel']:.4f} bits/pixel; 16-sample MC); "
        f"evaluate(): loss {ev['loss']:.2f} = recon {ev['reconstruction_loss']:.2f} + KL {ev['kl_loss']:.2f}"
    )

    plots.image_grid(
        np.asarray(vae.sample(64, seed=args.seed)), out / "samples.png", title="VAE samples, z ~ N(0, I)"
    )
    show = x_test[:16]
    rec = np.asarray(vae.reconstruct(show))
    plots.image_grid(
        np.concatenate([show[:8], rec[:8], show[8:], rec[8:]]),
        out / "reconstructions.png",
        title="rows 1, 3: test images · rows 2, 4: reconstructions",
    )
    a = int(np.flatnonzero(y_test == 1)[0])
    b = int(np.flatnonzero(y_test == 7)[0])
    strip = np.asarray(vae.interpolate(x_test[a], x_test[b], steps=10))
    plots.image_grid(
        np.concatenate([x_test[a : a + 1], strip, x_test[b : b + 1]]),
        out / "interpolation.png",
        cols=12,
        title="test 1 → latent interpolation → test 7",
    )
    mean, _ = vae.encode(x_test)
    latent_scatter(np.asarray(mean), y_test, out / "latent_scatter.png", args.latent_dim)
    save_model(vae, out / "vae.keras")
    write_json({k: [float(v) for v in vs] for k, vs in history.items()}, out / "history.json")

    # ---- 2. anomaly detection: train on 0-8 ------------------------------------------------------
    if not args.skip_anomaly:
        from kerasvk.data import load_arrays

        images, labels, _ = load_arrays("digits", image_size=IMAGE_SIZE)
        normal = labels != 9
        data08 = load((images[normal], labels[normal]), batch_size=64, seed=args.seed)
        vae08, _ = train_vae(data08, args)
        x08, _ = dataset_arrays(data08.test)
        nines = images[labels == 9].astype("float32") / 255.0
        noise = np.random.default_rng(args.seed).uniform(0, 1, (len(x08), *x08.shape[1:])).astype("float32")
        s_normal = np.asarray(vae08.anomaly_score(x08))
        s_nine = np.asarray(vae08.anomaly_score(nines))
        s_noise = np.asarray(vae08.anomaly_score(noise))
        auc9, auc_noise = roc_auc(s_normal, s_nine), roc_auc(s_normal, s_noise)
        metrics["anomaly"] = {
            "train_classes": "0-8",
            "n_test_normal": len(x08),
            "n_nines": len(nines),
            "n_noise": len(noise),
            "mean_score": {
                "0-8 test": float(s_normal.mean()),
                "9": float(s_nine.mean()),
                "noise": float(s_noise.mean()),
            },
            "roc_auc_9_vs_0_8": auc9,
            "roc_auc_noise_vs_0_8": auc_noise,
        }
        score_histogram(
            {"0-8 (test)": s_normal, "9 (never seen)": s_nine, "uniform noise": s_noise},
            out / "anomaly_scores.png",
        )
        print(
            f"Anomaly detection (VAE trained on 0-8, score = negative ELBO): ROC-AUC 9 vs 0-8 = {auc9:.3f}, "
            f"noise vs 0-8 = {auc_noise:.3f}  "
            f"(mean scores {s_normal.mean():.1f} / {s_nine.mean():.1f} / {s_noise.mean():.1f})"
        )

    metrics["seconds"] = round(time.time() - t0, 1)
    write_json(metrics, out / "metrics.json")
    print(f"Wrote {out}/ in {metrics['seconds']} s")
    return metrics


if __name__ == "__main__":
    main()
