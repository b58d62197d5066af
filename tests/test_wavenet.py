"""WaveNet: queue-cached generation equals naive recomputation, conditioning, audio data, in-graph generate export."""

import ast

import numpy as np
import pytest
import tensorflow as tf

import kerasvk
from kerasvk.data import audio


def _tiny_wavenet(**kw):
    model = kerasvk.build(
        "wavenet",
        **{**dict(quantization_channels=16, residual_channels=8, skip_channels=8, max_dilation=8, num_stacks=2), **kw},
    )
    logits = model.get_layer("logits")
    logits.kernel.assign(logits.kernel * 6.0)  # peaked logits: samples depend on the model
    return model


def test_cached_steps_equal_full_forward():
    model = _tiny_wavenet(num_classes=3)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, size=(2, 24)).astype("int32")
    cls = np.array([0, 2], "int32")
    full = model([codes, cls]).numpy()
    cond = model.class_embedding(tf.constant(cls))
    state = (model.causal_conv.initial_state(2, 8), tuple(b.initial_state(2) for b in model.res_blocks))
    step = model._cached_step(cond)
    outs = []
    for t in range(24):
        logits, state = step(t, tf.constant(codes), state)
        outs.append(logits.numpy())
    np.testing.assert_allclose(np.stack(outs, 1), full, atol=1e-4, rtol=1e-4)
    # the class id matters
    assert np.abs(model([codes, cls[::-1]]).numpy() - full).max() > 1e-3
    assert model.receptive_field == 1 + 2 * (1 + 2 + 4 + 8) + 1


def test_cached_and_naive_generation_give_identical_samples():
    # conditioned model (the unconditional cached path is checked by the export test below)
    num_classes = 3
    model = _tiny_wavenet(num_classes=num_classes, max_dilation=4)
    kw = dict(num_samples=2, seed=11, temperature=0.9, return_codes=True, prompt=np.linspace(-0.5, 0.5, 4))
    if num_classes:
        kw["class_id"] = 2
    cached = model.generate(40, **kw)
    naive = model.generate(40, use_cache=False, **kw)
    assert cached.shape == (2, 44)
    np.testing.assert_array_equal(cached, naive)
    assert not np.array_equal(cached[0], cached[1])
    np.testing.assert_array_equal(cached[:, :4], np.tile(audio.mu_law_encode(np.linspace(-0.5, 0.5, 4), 16), (2, 1)))


def test_prefill_of_empty_and_short_inputs_is_exact():
    # TF's convolution of a zero-length sequence returns uninitialised memory; prefill must not use it
    from kerasvk.layers.causal_conv import CausalConv1D

    conv = CausalConv1D(4, 2, dilation_rate=2)
    conv.build((None, None, 3))
    for length in (0, 1, 2, 5):
        x = tf.random.stateless_normal((2, length, 3), seed=[length, 1])
        y, queue = conv.prefill(x)
        assert tuple(y.shape) == (2, length, 4) and tuple(queue.shape) == (2, 2, 3)
        if length:
            np.testing.assert_allclose(y.numpy(), conv(x).numpy(), atol=1e-6)
        expected = np.concatenate([np.zeros((2, 2, 3), "float32"), x.numpy()], axis=1)[:, -2:]
        np.testing.assert_array_equal(queue.numpy(), expected)
    model = _tiny_wavenet(max_dilation=4, num_stacks=1)
    q0, queues = model.prefill(tf.zeros((3, 0), tf.int32))
    for q in (q0, *queues):
        np.testing.assert_array_equal(q.numpy(), np.zeros(q.shape, "float32"))


@pytest.mark.parametrize("num_classes", [0, 3])
def test_cached_equals_naive_for_short_prompts_and_repeats(num_classes):
    model = _tiny_wavenet(num_classes=num_classes, max_dilation=4, num_stacks=1)
    cls = dict(class_id=1) if num_classes else {}
    for prompt_len in (None, 1, 2, 7):
        prompt = None if prompt_len is None else np.linspace(-0.4, 0.3, prompt_len)
        for seed in (0, 5, 123):
            kw = dict(num_samples=2, seed=seed, prompt=prompt, return_codes=True, **cls)
            cached = model.generate(12, **kw)
            np.testing.assert_array_equal(cached, model.generate(12, use_cache=False, **kw))
            np.testing.assert_array_equal(cached, model.generate(12, **kw))  # the same call repeats exactly


def test_bad_generation_inputs():
    model = _tiny_wavenet(num_classes=3)
    with pytest.raises(ValueError, match=r"class_id must be an integer in \[0, 3\)"):
        model.generate(10)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        model.generate(10, class_id=0, temperature=-1.0)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        model.generate(0, class_id=0)


def test_exported_generate_signature(tmp_path):
    from kerasvk.export import export_model

    model = _tiny_wavenet(max_dilation=4, num_stacks=1)
    expected = model.generate(30, num_samples=2, seed=5, return_codes=True)
    path = export_model(model, base=tmp_path, name="wavenet_tiny")
    gen = tf.saved_model.load(str(path)).signatures["generate"]
    out = gen(num_samples=tf.constant(2), num_steps=tf.constant(30), temperature=tf.constant(1.0), seed=tf.constant(5))
    np.testing.assert_array_equal(out["codes"].numpy(), expected)
    for _ in range(3):  # the exported signature repeats exactly, and matches in-process generation
        again = gen(num_samples=tf.constant(2), num_steps=tf.constant(30), temperature=tf.constant(1.0), seed=tf.constant(5))
        np.testing.assert_array_equal(again["codes"].numpy(), expected)
        np.testing.assert_array_equal(model.generate(30, num_samples=2, seed=5, return_codes=True), expected)
    np.testing.assert_allclose(out["audio"].numpy(), audio.mu_law_decode(expected, 16), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be > 0"):
        gen(num_samples=tf.constant(1), num_steps=tf.constant(3), temperature=tf.constant(0.0), seed=tf.constant(0))


def test_synthetic_audio_mu_law_and_wav_round_trip(tmp_path):
    a, kinds = audio.synthetic_audio(count=6, duration=0.25, sample_rate=16000, seed=3)
    b, _ = audio.synthetic_audio(count=6, duration=0.25, sample_rate=16000, seed=3)
    assert a.shape == (6, 4000) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() <= 1.0 and np.abs(a).max(axis=1).min() > 0.2
    assert set(kinds) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match=r"sample_rate must be one of \(8000, 16000\)"):
        audio.synthetic_audio(sample_rate=44100)
    codes = audio.mu_law_encode(a)
    assert codes.min() >= 0 and codes.max() <= 255
    assert np.abs(audio.mu_law_decode(codes) - a).max() < 0.02  # μ-law step is at most ~0.016 near ±1
    np.testing.assert_array_equal(audio.tf_mu_law_encode(a).numpy(), codes)
    path = audio.write_wav(tmp_path / "x.wav", a[0], 16000)
    wave, rate = audio.read_wav(path)
    assert rate == 16000 and np.abs(wave - a[0]).max() < 1e-4
    wave8, rate8 = audio.read_wav(path, sample_rate=8000)
    assert rate8 == 8000 and len(wave8) == 2000
    x, y = audio.audio_windows(a, 32, per_wave=2)
    assert x.shape == (12, 32)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_mu_law_lives_in_preprocessing_and_data_audio_re_exports_it():
    import kerasvk.models.generative.wavenet as wavenet_module
    from kerasvk import preprocessing

    for name in ("mu_law_encode", "mu_law_decode", "tf_mu_law_encode", "tf_mu_law_decode"):
        assert getattr(audio, name) is getattr(preprocessing, name)
    tree = ast.parse(open(wavenet_module.__file__).read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("kerasvk.data") for m in imported), imported
