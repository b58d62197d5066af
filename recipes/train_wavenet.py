"""Train a WaveNet on seeded synthetic audio (or your WAV files) and generate audio with the fast cache.

Data: ``--count`` seeded signals (sines, chirps, harmonic tones, two-note mixtures under envelopes,
plus noise) at 8 kHz, and any ``--wav`` files (read with ``tf.audio.decode_wav``, mixed to mono,
resampled to 8 kHz); the last 10 % of the waveforms are held out. μ-law 256 classes. Trains for
``--minutes`` of wall time (a few minutes on 2 CPU cores), prints the held-out NLL (bits per
sample) and **perplexity**, and writes to the run folder:

    sample_K.wav    generated audio (Fast-WaveNet queues), each continuing a held-out prompt
    prompt_K.wav    that prompt
    metrics.json    held-out nats/bits per sample, perplexity, steps, seconds, generation speed
    history.json    per-epoch loss
    wavenet.keras   the model (loads with safe_mode=True)

Run: ``python recipes/train_wavenet.py [--minutes 4] [--wav a.wav b.wav] [--run-dir runs/wavenet]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasvk  # noqa: E402
from kerasvk.data import audio  # noqa: E402

RATE = 8000


def write_atomic(path, data: str):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


class TimeBudget(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.start, self.steps = seconds, None, 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train a WaveNet on synthetic audio (+ your WAV files).")
    ap.add_argument("--wav", nargs="*", default=[], help="extra PCM WAV files")
    ap.add_argument("--count", type=int, default=200, help="synthetic waveforms (0.5 s each)")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--max-dilation", type=int, default=64)
    ap.add_argument("--stacks", type=int, default=2)
    ap.add_argument("--channels", type=int, default=32, help="residual channels (skip = 2×)")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=0.5, help="length of each generated sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", default="runs/wavenet")
    args = ap.parse_args(argv)
    os.makedirs(args.run_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    waves, _ = audio.synthetic_audio(count=args.count, duration=0.5, sample_rate=RATE, seed=args.seed)
    waves = list(waves) + [audio.read_wav(p, sample_rate=RATE)[0] for p in args.wav]
    cut = int(0.9 * len(waves))
    train_w, val_w = waves[:cut], waves[cut:]
    train = audio.audio_dataset(train_w, args.seq_len, args.batch_size, per_wave=16, seed=args.seed)
    val_x, val_y = audio.audio_windows(val_w, args.seq_len, per_wave=4, seed=args.seed + 1)
    print(f"audio: {len(train_w)} train / {len(val_w)} held-out waveforms at {RATE} Hz")

    model = kerasvk.build(
        "wavenet", residual_channels=args.channels, skip_channels=2 * args.channels,
        max_dilation=args.max_dilation, num_stacks=args.stacks, sample_rate=RATE,
    )
    print(f"receptive field {model.receptive_field} samples ({1000 * model.receptive_field / RATE:.0f} ms)")
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0))
    budget = TimeBudget(60 * args.minutes)
    t0 = time.perf_counter()
    hist = model.fit(train.repeat(), epochs=10_000, steps_per_epoch=50, callbacks=[budget], verbose=2)
    seconds = time.perf_counter() - t0

    val_loss = float(model.evaluate(val_x, val_y, batch_size=16, verbose=0))
    ppl = math.exp(val_loss)
    print(f"held-out: {val_loss:.4f} nats/sample = {val_loss / math.log(2):.3f} bits/sample, perplexity {ppl:.2f} "
          f"(uniform over 256 μ-law classes: 256) after {budget.steps} steps in {seconds:.0f} s")

    n = int(args.seconds * RATE)
    model.generate(2, prompt=val_w[0][: model.receptive_field])  # trace the generation loop once
    gen_times = []
    for k in range(2):
        prompt = val_w[k][: model.receptive_field]
        t1 = time.perf_counter()
        wave = model.generate(n, prompt=prompt, temperature=1.0, seed=args.seed + k)[0]
        gen_times.append(time.perf_counter() - t1)
        audio.write_wav(os.path.join(args.run_dir, f"sample_{k}.wav"), wave, RATE)
        audio.write_wav(os.path.join(args.run_dir, f"prompt_{k}.wav"), prompt, RATE)
    print(f"generated 2 × {n} samples with the cache: {n / np.mean(gen_times):.0f} samples/s")

    metrics = {"val_nats_per_sample": val_loss, "val_bits_per_sample": val_loss / math.log(2), "val_perplexity": ppl,
               "steps": budget.steps, "seconds": seconds, "receptive_field": model.receptive_field,
               "generation_samples_per_second": n / float(np.mean(gen_times)), "parameters": int(model.count_params())}
    write_atomic(os.path.join(args.run_dir, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    write_atomic(os.path.join(args.run_dir, "history.json"), json.dumps(history, indent=2) + "\n")
    tmp = os.path.join(args.run_dir, ".tmp-wavenet.keras")
    model.save(tmp)
    os.replace(tmp, os.path.join(args.run_dir, "wavenet.keras"))
    print(f"wrote {args.run_dir}/sample_*.wav, prompt_*.wav, metrics.json, history.json, wavenet.keras")


if __name__ == "__main__":
    main()
