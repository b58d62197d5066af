"""DCGAN / WGAN-GP: adversarial train_step, compile defaults, .keras resume, export signatures, errors."""

import numpy as np
import pytest

import kerasvk

TINY = {"input_shape": (8, 8, 1), "latent_dim": 4, "g_filters": (8, 4), "d_filters": (4, 8)}


def _real(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 8, 8, 1)).astype("float32")


def test_gan_trains_saves_and_resumes(tmp_path):
    import keras

    gan = kerasvk.build("dcgan", seed=1, **TINY)
    gan.compile(label_smoothing=0.1, d_steps=2)
    hist = gan.fit(_real(), batch_size=4, epochs=1, verbose=0).history
    assert set(hist) == {"d_loss", "g_loss", "d_x", "d_g_z"}
    for v in hist.values():
        assert np.isfinite(v[-1])
    assert 0.0 < hist["d_x"][-1] < 1.0 and 0.0 < hist["d_g_z"][-1] < 1.0
    # two update steps of D per batch, one of G
    assert int(gan.d_optimizer.iterations.numpy()) == 4 and int(gan.g_optimizer.iterations.numpy()) == 2

    path = tmp_path / "gan.keras"
    gan.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert (
        isinstance(loaded, type(gan)) and loaded.d_steps == 2 and loaded.label_smoothing == pytest.approx(0.1)
    )
    z = np.random.default_rng(3).standard_normal((3, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded.generate(z)), np.asarray(gan.generate(z)), atol=1e-6)
    x = _real(3, seed=5)
    np.testing.assert_allclose(np.asarray(loaded.discriminate(x)), np.asarray(gan.discriminate(x)), atol=1e-6)
    # optimizer state (iterations and moments) came back, and training continues from it
    assert int(loaded.d_optimizer.iterations.numpy()) == 4
    before = [v.numpy().copy() for v in loaded.generator.trainable_variables]
    loaded.fit(_real(), batch_size=4, epochs=1, verbose=0)
    assert int(loaded.g_optimizer.iterations.numpy()) == 4
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, loaded.generator.trainable_variables))


def test_compile_with_single_optimizer_gives_two(tmp_path):
    import keras

    gan = kerasvk.build("dcgan", **TINY)
    gan.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert gan.d_optimizer is not gan.g_optimizer
    assert float(gan.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="label_smoothing"):
        gan.compile(label_smoothing=0.7)
    with pytest.raises(ValueError, match="d_steps"):
        gan.compile(d_steps=0)


@pytest.mark.slow
def test_fit_with_explicit_noise_is_reproducible():
    real = _real()
    noise = np.random.default_rng(0).standard_normal((8, 4)).astype("float32")
    outs = []
    for _ in range(2):
        import keras

        keras.utils.set_random_seed(0)
        gan = kerasvk.build("dcgan", seed=3, **TINY)
        gan.compile()
        gan.fit(noise, real, batch_size=4, epochs=1, shuffle=False, verbose=0)
        outs.append(np.asarray(gan.generate(noise)))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


def test_wgan_gp_step_reports_penalty():
    gan = kerasvk.build("wgan_gp", seed=0, **TINY)
    gan.compile()
    assert gan.d_steps == 5  # n_critic default (the shared registered-model test trains with it)
    gan.compile(d_steps=2)
    hist = gan.fit(_real(), batch_size=8, epochs=1, verbose=0).history
    assert set(hist) == {"d_loss", "g_loss", "d_x", "d_g_z", "gp"}
    assert hist["gp"][-1] >= 0.0 and np.isfinite(hist["d_loss"][-1])
    assert int(gan.d_optimizer.iterations.numpy()) == 2
    with pytest.raises(ValueError, match="label_smoothing"):
        gan.compile(label_smoothing=0.1)


def test_exported_generate_and_sample_match_keras(tmp_path):
    import tensorflow as tf

    from kerasvk.export import export_model

    gan = kerasvk.build("dcgan", seed=2, **TINY)
    out = export_model(gan, base=tmp_path, name="gan")
    loaded = tf.saved_model.load(str(out))
    assert {"serving_default", "generate", "sample"} <= set(loaded.signatures)
    z = np.random.default_rng(1).standard_normal((5, 4)).astype("float32")
    served = loaded.signatures["generate"](noise=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(served, np.asarray(gan.generate(z)), atol=1e-5)
    sampled = loaded.signatures["sample"](n=tf.constant(6), seed=tf.constant(7))["images"].numpy()
    assert sampled.shape == (6, 8, 8, 1)
    np.testing.assert_allclose(sampled, np.asarray(gan.sample(6, seed=7)), atol=1e-5)
    assert not np.allclose(sampled, np.asarray(gan.sample(6, seed=8)))
    assert 0.0 <= sampled.min() and sampled.max() <= 1.0


def test_sample_grid_callback_writes_pngs(tmp_path):
    from kerasvk.training.callbacks import SampleGridCallback

    gan = kerasvk.build("dcgan", **TINY)
    cb = SampleGridCallback(tmp_path / "samples", num_images=4, every=2, seed=0)
    cb.set_model(gan)
    cb.on_train_begin()
    first = cb._images()
    for epoch in range(3):
        cb.on_epoch_end(epoch)
    np.testing.assert_allclose(cb._images(), first)  # the same noise every time
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["samples_epoch000.png", "samples_epoch002.png"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"input_shape": (30, 30, 1)}, "multiples of 4"),
        ({"input_shape": (32, 32)}, "input_shape"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kerasvk.build("dcgan", **kwargs)


def test_gan_module_holds_models_only():
    """The sample-grid callback is a training piece: it lives in kerasvk.training.callbacks, and the model
    module imports no plotting (models sit below plots in the import graph)."""
    import kerasvk.models.generative.gan as gan_module

    assert not hasattr(gan_module, "SampleGridCallback")
    assert "plots" not in open(gan_module.__file__).read()


def test_validation_does_not_shift_the_training_noise():
    import keras

    import kerasvk

    x = np.random.default_rng(0).random((32, 8, 8, 1)).astype("float32")
    weights = []
    for validate in (False, True):
        keras.utils.set_random_seed(0)
        gan = kerasvk.build("dcgan", input_shape=(8, 8, 1), latent_dim=4, g_filters=(8, 4), d_filters=(4, 8), seed=3)
        gan.compile()
        gan.fit(x, batch_size=16, epochs=2, verbose=0, validation_data=(x,) if validate else None, shuffle=False)
        weights.append([w.numpy() for w in gan.generator.weights])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
