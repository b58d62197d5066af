"""VAE / CVAE: loss maths, fit/evaluate trackers, methods, .keras resume, export signatures, backends."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import kerasvk

TINY = {"input_shape": (16, 16, 1), "latent_dim": 2, "filters": (4, 8), "dense_units": 16}


def _images(n=8, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 16, 16, 1)).astype("float32")


def test_sampling_layer_reparameterises_with_owned_seed():
    import keras

    from kerasvk.layers.generative import Sampling

    mean = np.full((4000, 2), [1.0, -2.0], "float32")
    log_var = np.full((4000, 2), [0.0, np.log(0.25)], "float32")
    layer = Sampling(seed=7)
    z = np.asarray(layer([mean, log_var], training=True))
    np.testing.assert_allclose(z.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(z.std(0), [1.0, 0.5], atol=0.05)
    again = np.asarray(Sampling(seed=7)([mean, log_var], training=True))
    np.testing.assert_allclose(z, again)  # same seed, same draw
    assert not np.allclose(z, np.asarray(layer([mean, log_var], training=True)))  # the generator advances
    np.testing.assert_allclose(np.asarray(layer([mean, log_var], training=False)), mean)
    clone = Sampling.from_config(layer.get_config())
    assert clone.seed == 7 and isinstance(
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)), Sampling
    )


def test_loss_is_reconstruction_plus_beta_kl():
    vae = kerasvk.build("vae", beta=0.5, **TINY)
    x = _images(4)
    recon, mean, log_var = (np.asarray(t, "float64") for t in vae(x, training=False))
    rng = np.random.default_rng(0)
    mean, log_var = rng.normal(size=mean.shape), rng.normal(size=log_var.shape) * 0.3
    p = np.clip(recon, 1e-7, 1 - 1e-7)
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=(1, 2, 3))
    kl = 0.5 * (mean**2 + np.exp(log_var) - 1 - log_var).sum(-1)
    total = vae.compute_loss(
        x=x, y_pred=[recon.astype("float32"), mean.astype("float32"), log_var.astype("float32")]
    )
    np.testing.assert_allclose(float(total), (bce + 0.5 * kl).mean(), rtol=1e-4)
    assert float(vae.kl_loss_tracker.result()) == pytest.approx(kl.mean(), rel=1e-4)
    assert float(vae.reconstruction_loss_tracker.result()) == pytest.approx(bce.mean(), rel=1e-4)


def test_fit_evaluate_save_load_and_resume(tmp_path):
    """On the session's backend (TensorFlow): trackers in fit and evaluate, learning, .keras resume."""
    import keras

    vae = kerasvk.build("vae", seed=0, **TINY)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    # structured binary images: the top k rows are on, k varies → learnable (random bits would not be)
    k = np.random.default_rng(0).integers(0, 17, 32)
    x = (np.arange(16)[None, :, None, None] < k[:, None, None, None]).repeat(16, axis=2).astype("float32")
    first = vae.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    hist = vae.fit(x, batch_size=8, epochs=6, verbose=0).history
    assert set(hist) == {"loss", "reconstruction_loss", "kl_loss"}
    last = vae.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    assert set(last) == {"loss", "reconstruction_loss", "kl_loss"}
    assert last["loss"] == pytest.approx(last["reconstruction_loss"] + last["kl_loss"], rel=1e-4)
    assert last["loss"] < first["loss"] - 15.0  # starts near 256·ln 2 ≈ 177 nats; untrained stays there

    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        np.asarray(loaded.anomaly_score(x)), np.asarray(vae.anomaly_score(x)), rtol=1e-5
    )
    assert int(loaded.optimizer.iterations.numpy()) == 24  # optimizer state restored
    hist = loaded.fit(x, batch_size=8, epochs=1, verbose=0).history
    assert int(loaded.optimizer.iterations.numpy()) == 28 and hist["loss"][-1] < first["loss"] - 15.0


def test_methods_shapes_and_determinism():
    vae = kerasvk.build("vae", **TINY)
    x = _images(5)
    mean, log_var = vae.encode(x)
    assert tuple(mean.shape) == (5, 2) and tuple(log_var.shape) == (5, 2)
    assert tuple(vae.decode(np.zeros((3, 2), "float32")).shape) == (3, 16, 16, 1)
    s = np.asarray(vae.sample(4, seed=3))
    assert s.shape == (4, 16, 16, 1) and 0 <= s.min() and s.max() <= 1
    np.testing.assert_allclose(s, np.asarray(vae.sample(4, seed=3)))
    assert not np.allclose(s, np.asarray(vae.sample(4, seed=4)))
    rec = np.asarray(vae.reconstruct(x))
    np.testing.assert_allclose(rec, np.asarray(vae(x, training=False)[0]), atol=1e-6)
    strip = np.asarray(vae.interpolate(x[0], x[1], steps=5))
    assert strip.shape == (5, 16, 16, 1)
    np.testing.assert_allclose(strip[0], rec[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], rec[1], atol=1e-5)
    score = np.asarray(vae.anomaly_score(x))
    assert score.shape == (5,) and np.all(np.isfinite(score))
    nelbo = vae.negative_elbo(x, num_samples=4, seed=0)
    assert nelbo.shape == (5,) and np.all(nelbo > 0)
    with pytest.raises(ValueError, match="steps"):
        vae.interpolate(x[0], x[1], steps=1)


def test_exported_signatures_match_keras(tmp_path):
    import tensorflow as tf

    from kerasvk.export import export_model

    vae = kerasvk.build("vae", **TINY)
    loaded = tf.saved_model.load(str(export_model(vae, base=tmp_path, name="vae")))
    assert {"serving_default", "encode", "decode", "sample", "anomaly_score"} <= set(loaded.signatures)
    x = _images(3)
    enc = loaded.signatures["encode"](images=tf.constant(x))
    mean, log_var = vae.encode(x)
    np.testing.assert_allclose(enc["z_mean"].numpy(), np.asarray(mean), atol=1e-5)
    np.testing.assert_allclose(enc["z_log_var"].numpy(), np.asarray(log_var), atol=1e-5)
    z = np.random.default_rng(0).standard_normal((2, 2)).astype("float32")
    np.testing.assert_allclose(
        loaded.signatures["decode"](z=tf.constant(z))["images"].numpy(), np.asarray(vae.decode(z)), atol=1e-5
    )
    served = loaded.signatures["sample"](n=tf.constant(3), seed=tf.constant(11))["images"].numpy()
    np.testing.assert_allclose(served, np.asarray(vae.sample(3, seed=11)), atol=1e-5)
    score = loaded.signatures["anomaly_score"](images=tf.constant(x))["score"].numpy()
    np.testing.assert_allclose(score, np.asarray(vae.anomaly_score(x)), rtol=1e-5)
    default = loaded.signatures["serving_default"]
    assert set(default.structured_outputs) == {"reconstruction", "z_mean", "z_log_var"}  # no output_N


def test_conditional_vae_uses_labels():
    # (fit on [images, labels] is covered by the shared registered-model test)
    cvae = kerasvk.build("cvae", num_classes=3, seed=0, **TINY)
    x, y = _images(6), np.array([0, 1, 2, 0, 1, 2], "int32")
    assert tuple(cvae.reconstruct(x, labels=y).shape) == (6, 16, 16, 1)
    a = np.asarray(cvae.sample(2, seed=0, labels=[0, 0]))
    b = np.asarray(cvae.sample(2, seed=0, labels=[1, 1]))
    assert a.shape == (2, 16, 16, 1) and not np.allclose(a, b)
    with pytest.raises(ValueError, match="labels"):
        cvae.sample(2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latent_dim": 0}, "latent_dim must be an integer >= 1"),
        ({"input_shape": (30, 30, 1), "filters": (8, 16)}, "multiples of 4"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"beta": -1.0}, "beta"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kerasvk.build("vae", **{**TINY, **kwargs})


_BACKEND_SCRIPT = textwrap.dedent("""
    import numpy as np, keras
    from kerasvk.models.generative.vae import VAE
    assert keras.backend.backend() == "{backend}", keras.backend.backend()
    keras.utils.set_random_seed(0)
    vae = VAE(input_shape=(8, 8, 1), latent_dim=2, filters=(4,), dense_units=8, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = (np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)) > 0.5).astype("float32")
    h = vae.fit(x, batch_size=8, epochs=5, verbose=0).history
    assert set(h) == {{"loss", "reconstruction_loss", "kl_loss"}}, h.keys()
    assert all(np.isfinite(v).all() for v in h.values())
    assert h["loss"][-1] < h["loss"][0], h["loss"]
    ev = vae.evaluate(x, verbose=0, return_dict=True)
    assert abs(ev["loss"] - ev["reconstruction_loss"] - ev["kl_loss"]) < 1e-3 * ev["loss"]
    print("OK", h["loss"][0], h["loss"][-1])
    """)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_vae_trains_on_other_backend(backend):
    """compute_loss-based training needs no TF: run the script in a subprocess with KERAS_BACKEND set.

    The TensorFlow backend is the test session's own: ``test_fit_evaluate_save_load_and_resume``.
    """
    pytest.importorskip(
        backend, reason=f"{backend} is not installed; the VAE {backend}-backend check needs it"
    )
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", _BACKEND_SCRIPT.format(backend=backend)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout
