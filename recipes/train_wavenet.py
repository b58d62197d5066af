"""Train a WaveNet on seeded synthetic audio (or your WAV files) and generate audio with the fast cache.

Data: ``--count`` seeded signals (sines, chirps, harmonic tones, two-note mixtures under envelopes,
plus noise) at 8 kHz, and any ``--wav`` files (read with ``tf.audio.decode_wav``, mixed to mono,
resampled to 8 kHz); the last 10 % of the waveforms are held out. μ-law 256 classes. Trains for
``--minutes`` of wall time (warm-up + cosine learning rate over the time budget), prints the
held-out NLL (nats and bits per sample) and perplexity next to two baselines — uniform over the 256
classes (8 bits) and the μ-law class histogram of the training audio (a model that ignores the
past) — and writes to the run folder:

    sample_K.wav    the held-out prompt followed by generated audio (Fast-WaveNet queues),
                    receptive-field prompt + ``--seconds`` of samples; read back to check its length
    prompt_K.wav    that prompt
    metrics.json    held-out nats/bits per sample, perplexity, baselines, steps, seconds, generation speed
    history.json    loss, learning rate and step count every 50 steps
    wavenet.keras   the model (loads with safe_mode=True)

Measured with ``python recipes/train_wavenet.py --run-dir /tmp/rr/train_wavenet`` (the defaults: 200
waveforms of 0.5 s, 180 train / 20 held out; 2 stacks of dilations 1…64, 32 residual channels, receptive
field 256 samples = 32 ms, 132,608 parameters; batch 8 × 1024; 4-minute budget) on a shared 2-core CPU
(``uptime`` load average 3.3 before the run, 3.1 after): 3941 steps in 240 s (4 min 10 s wall for the
whole script); held-out **3.447 nats = 4.972 bits/sample** (perplexity 31.39) [1471 steps: 2.861 nats =
4.127 bits/sample, perplexity 17.48], against 8.000 bits uniform and 7.470 bits (perplexity 177.28) for
the training μ-law histogram on the held-out targets (its entropy is 7.494 bits; both unchanged). Each
sample_K.wav is 256 + 4000 = 4,256 samples (0.532 s at 8 kHz); the cached generation ran at 4,168
samples/s [1,716]. Re-measured after the initialization fix d87d655: the first model of a process no
longer starts from a shifted RNG stream. The budget is wall time, so the step count (and with it the
held-out numbers) depends on the machine's load. More steps did not help here: this run's 3941 steps
ended 0.85 bits/sample worse than the previous run's 1471, while its training loss kept falling (2.03
nats over the last 50 steps); the code before d87d655, run right after this one (load average 2.9 → 2.5),
did 4959 steps and ended at 3.506 nats = 5.058 bits/sample, so the fix is not the cause: on a lightly
loaded machine the 4-minute budget appears to overfit the 180 training waveforms (not examined further).
Earlier still ("a shared, loaded 2-core CPU"): 613 steps and 3.097 nats = 4.469 bits/sample (perplexity
22.1).

Run: ``python recipes/train_wavenet.py [--minutes 4] [--wav a.wav b.wav] [--run-dir runs/wavenet]``
"""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasvk  # noqa: E402
from kerasvk.data import audio  # noqa: E402
from kerasvk.io import save_model, write_json  # noqa: E402
from kerasvk.training.callbacks import TimeBudget  # noqa: E402
from kerasvk.training.speed import add_speed_arguments, recipe_speed  # noqa: E402
from kerasvk.training.strategy import RecipeParser, add_strategy_arguments, recipe_strategy  # noqa: E402

RATE = 8000


def marginal_baseline(train_waves, val_targets, channels=256):
    """The μ-law class histogram of the training audio: its entropy, and its (add-one smoothed)
    cross-entropy on the held-out targets, in nats per sample (a model that ignores the past)."""
    counts = np.zeros(channels, "float64")
    for w in train_waves:
        counts += np.bincount(audio.mu_law_encode(w, channels), minlength=channels)
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    q = (counts + 1.0) / (counts.sum() + channels)
    return entropy, float(-np.log(q[np.asarray(val_targets).reshape(-1)]).mean())


def main(argv=None):
    ap = RecipeParser(description="Train a WaveNet on synthetic audio (+ your WAV files).")
    ap.add_argument("--wav", nargs="*", default=[], help="extra PCM WAV files")
    ap.add_argument("--count", type=int, default=200, help="synthetic waveforms (0.5 s each)")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--max-dilation", type=int, default=64)
    ap.add_argument("--stacks", type=int, default=2)
    ap.add_argument("--channels", type=int, default=32, help="residual channels (skip = 2×)")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (warm-up, then cosine)")
    ap.add_argument("--seconds", type=float, default=0.5, help="length of each generated sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", default="runs/wavenet")
    add_strategy_arguments(ap)
    add_speed_arguments(ap)
    args = ap.parse_args(argv)
    sp = recipe_speed(ap, args)
    rs = recipe_strategy(ap, args, allowed=("mirrored", "tpu"), batches=[args.batch_size],
                         why="its wall-time budget would stop each worker at its own step")
    batch, lr = rs.batch(args.batch_size), args.lr * rs.lr_factor
    os.makedirs(args.run_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    waves, _ = audio.synthetic_audio(count=args.count, duration=0.5, sample_rate=RATE, seed=args.seed)
    waves = list(waves) + [audio.read_wav(p, sample_rate=RATE)[0] for p in args.wav]
    cut = int(0.9 * len(waves))
    train_w, val_w = waves[:cut], waves[cut:]
    train = audio.audio_dataset(train_w, args.seq_len, batch, per_wave=16, seed=args.seed)
    val_x, val_y = audio.audio_windows(val_w, args.seq_len, per_wave=4, seed=args.seed + 1)
    print(f"audio: {len(train_w)} train / {len(val_w)} held-out waveforms at {RATE} Hz")

    uni = math.log(256)
    marg_entropy, marg_val = marginal_baseline(train_w, val_y)
    print(f"baselines (held-out windows {val_y.shape}): uniform {uni:.4f} nats = 8.000 bits/sample; "
          f"μ-law histogram of the training audio: entropy {marg_entropy / math.log(2):.3f} bits, "
          f"on the held-out targets {marg_val:.4f} nats = {marg_val / math.log(2):.3f} bits/sample")

    with rs.scope(), sp.policy():  # built and compiled under --strategy and --precision
        model = kerasvk.build(
            "wavenet", residual_channels=args.channels, skip_channels=2 * args.channels,
            max_dilation=args.max_dilation, num_stacks=args.stacks, sample_rate=RATE,
        )
        model.compile(optimizer=keras.optimizers.Adam(lr, clipnorm=1.0), **sp.compile_kwargs)
    rs.prepare(sp.check(model), train)
    print(f"receptive field {model.receptive_field} samples ({1000 * model.receptive_field / RATE:.0f} ms), "
          f"{model.count_params():,} parameters; {sp.describe()}")
    budget = TimeBudget(60 * args.minutes, lr)
    t0 = time.perf_counter()
    hist = model.fit(train.repeat(), epochs=10_000, steps_per_epoch=50, callbacks=[budget], verbose=2)
    seconds = time.perf_counter() - t0

    val_loss = float(model.evaluate(val_x, val_y, batch_size=16, verbose=0))
    ppl = math.exp(val_loss)
    print(f"trained {budget.steps} steps in {seconds:.0f} s = {seconds / 60:.1f} min")
    print(f"held-out: {val_loss:.4f} nats/sample = {val_loss / math.log(2):.3f} bits/sample, perplexity {ppl:.2f} "
          f"(baselines: uniform 8.000 bits, perplexity 256; "
          f"μ-law histogram {marg_val / math.log(2):.3f} bits, "
          f"perplexity {math.exp(marg_val):.2f})")

    n = int(args.seconds * RATE)
    model.generate(2, prompt=val_w[0][: model.receptive_field])  # trace the generation loop once
    gen_times, wav_lengths = [], []
    for k in range(2):
        prompt = val_w[k][: model.receptive_field]
        t1 = time.perf_counter()
        wave = model.generate(n, prompt=prompt, temperature=1.0, seed=args.seed + k)[0]  # prompt + n samples
        gen_times.append(time.perf_counter() - t1)
        path = audio.write_wav(os.path.join(args.run_dir, f"sample_{k}.wav"), wave, RATE)
        audio.write_wav(os.path.join(args.run_dir, f"prompt_{k}.wav"), prompt, RATE)
        decoded, rate = tf.audio.decode_wav(tf.io.read_file(path))  # check the file reads back
        if decoded.shape != (len(prompt) + n, 1) or int(rate) != RATE:
            raise RuntimeError(
                f"{path}: decoded {decoded.shape} at {int(rate)} Hz, expected ({len(prompt) + n}, 1) at {RATE}"
            )
        wav_lengths.append(int(decoded.shape[0]))
    print(f"generated 2 × {n} samples with the cache: {n / np.mean(gen_times):.0f} samples/s; "
          f"sample_K.wav = {len(prompt)}-sample prompt + {n} generated = {wav_lengths[0]} samples "
          f"({wav_lengths[0] / RATE:.3f} s at {RATE} Hz, read back with tf.audio.decode_wav)")

    metrics = {"val_nats_per_sample": val_loss, "val_bits_per_sample": val_loss / math.log(2), "val_perplexity": ppl,
               "uniform_bits_per_sample": 8.0, "marginal_train_entropy_bits": marg_entropy / math.log(2),
               "marginal_val_bits_per_sample": marg_val / math.log(2), "wav_samples": wav_lengths[0],
               "steps": budget.steps, "seconds": seconds, "receptive_field": model.receptive_field,
               "generation_samples_per_second": n / float(np.mean(gen_times)),
               "parameters": int(model.count_params()), **sp.record(model)}
    write_json(metrics, os.path.join(args.run_dir, "metrics.json"))
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    write_json(history, os.path.join(args.run_dir, "history.json"))
    save_model(model, os.path.join(args.run_dir, "wavenet.keras"))
    print(f"wrote {args.run_dir}/sample_*.wav, prompt_*.wav, metrics.json, history.json, wavenet.keras")


if __name__ == "__main__":
    main()
