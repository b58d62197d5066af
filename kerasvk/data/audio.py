"""Audio for WaveNet: a seeded generator of real-looking signals, WAV reading/writing, μ-law coding.

``synthetic_audio`` makes mixtures of sines, linear chirps and harmonic tones (a fundamental with
decaying overtones), each under an attack/decay envelope, plus a little noise, at 8 or 16 kHz;
the same seed gives the same waveforms. ``read_wav`` reads a user's PCM WAV file with
``tf.audio.decode_wav`` (mono-mixed, optionally resampled); ``write_wav`` writes atomically.

μ-law coding lives in ``kerasvk.preprocessing.audio`` (WaveNet imports it from there); the names are
re-exported here so ``kerasvk.data.audio.mu_law_encode`` and friends keep working.
"""

from __future__ import annotations

import os

import numpy as np

from kerasvk.io import write_bytes
from kerasvk.preprocessing.audio import (  # noqa: F401  (re-exported)
    mu_law_decode,
    mu_law_encode,
    tf_mu_law_decode,
    tf_mu_law_encode,
)

SAMPLE_RATES = (8000, 16000)


def _check_rate(sample_rate):
    if sample_rate not in SAMPLE_RATES:
        raise ValueError(f"sample_rate must be one of {SAMPLE_RATES}. Received: sample_rate={sample_rate!r}")


def synthetic_audio(count=64, duration=0.5, sample_rate=8000, seed=0):
    """``count`` seeded waveforms ``(count, duration·rate)`` float32 in [-1, 1] and their kind ids.

    Kinds: 0 sine, 1 chirp, 2 harmonic tone, 3 two-note mixture. Each gets a random attack/decay
    envelope, amplitude 0.3–0.9 and Gaussian noise at 30–45 dB below the signal.
    """
    _check_rate(sample_rate)
    if count < 1 or duration <= 0:
        raise ValueError(f"count must be >= 1 and duration > 0. Received: count={count}, duration={duration}")
    rng = np.random.default_rng(seed)
    n = int(round(duration * sample_rate))
    t = np.arange(n, dtype="float64") / sample_rate
    nyquist = sample_rate / 2
    out = np.zeros((count, n), dtype="float32")
    kinds = rng.integers(0, 4, size=count).astype("int32")
    for i, kind in enumerate(kinds):
        f0 = rng.uniform(110.0, 880.0)
        phase = rng.uniform(0, 2 * np.pi)
        if kind == 0:
            s = np.sin(2 * np.pi * f0 * t + phase)
        elif kind == 1:
            f1 = rng.uniform(110.0, min(2000.0, 0.45 * nyquist))
            s = np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / duration * t**2) + phase)
        elif kind == 2:
            s = np.zeros_like(t)
            for h in range(1, 7):
                if h * f0 < 0.9 * nyquist:
                    s += (0.6**h) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
        else:
            f2 = f0 * rng.choice([1.25, 1.5, 2.0])
            s = np.sin(2 * np.pi * f0 * t + phase) + 0.7 * np.sin(2 * np.pi * f2 * t)
        attack = rng.uniform(0.005, 0.1)
        decay = rng.uniform(0.5, 4.0)
        env = np.minimum(t / attack, 1.0) * np.exp(-decay * np.maximum(t - attack, 0.0))
        s = s * env
        s = s / (np.max(np.abs(s)) + 1e-9) * rng.uniform(0.3, 0.9)
        snr_db = rng.uniform(30, 45)
        s = s + rng.normal(0, np.sqrt(np.mean(s**2)) * 10 ** (-snr_db / 20), size=n)
        out[i] = np.clip(s, -1.0, 1.0)
    return out, kinds


def read_wav(path, sample_rate=None):
    """A PCM WAV file → ``(mono float32 waveform in [-1, 1], sample_rate)``; resampled if asked."""
    import tensorflow as tf

    if not os.path.isfile(path):
        raise FileNotFoundError(f"WAV file not found: {path}")
    try:
        audio, rate = tf.audio.decode_wav(tf.io.read_file(str(path)))
    except Exception as e:
        raise ValueError(f"Cannot decode {path} as a PCM WAV file: {str(e).splitlines()[0]}") from None
    wave = tf.reduce_mean(audio, axis=-1).numpy().astype("float32")
    rate = int(rate.numpy())
    if sample_rate is not None and sample_rate != rate:
        _check_rate(sample_rate)
        n = int(round(len(wave) * sample_rate / rate))
        wave = np.interp(np.arange(n) * (rate / sample_rate), np.arange(len(wave)), wave).astype("float32")
        rate = sample_rate
    return wave, rate


def write_wav(path, wave, sample_rate):
    """Write a mono waveform in [-1, 1] as 16-bit PCM WAV, atomically (temp file, then rename)."""
    import tensorflow as tf

    wave = np.clip(np.asarray(wave, dtype="float32").reshape(-1, 1), -1.0, 1.0)
    data = tf.audio.encode_wav(wave, int(sample_rate)).numpy()
    write_bytes(path, data)
    return os.fspath(path)


def audio_windows(waves, seq_len, *, per_wave=8, seed=0, channels=256):
    """Random crops of μ-law codes: ``x = codes[s : s+seq_len]``, ``y = codes[s+1 : s+seq_len+1]``."""
    waves = [np.asarray(w, dtype="float32") for w in waves]
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for w in waves:
        if len(w) < seq_len + 1:
            raise ValueError(f"Waveforms must be longer than seq_len + 1 = {seq_len + 1}. Received length {len(w)}")
        codes = mu_law_encode(w, channels)
        for s in rng.integers(0, len(w) - seq_len, size=per_wave):
            xs.append(codes[s : s + seq_len])
            ys.append(codes[s + 1 : s + seq_len + 1])
    return np.stack(xs), np.stack(ys)


def audio_dataset(waves, seq_len, batch_size=16, *, per_wave=8, seed=0, shuffle=True, channels=256):
    """Batched, shuffled, prefetched ``tf.data`` of μ-law next-sample windows of ``waves``."""
    import tensorflow as tf

    x, y = audio_windows(waves, seq_len, per_wave=per_wave, seed=seed, channels=channels)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
