"""Cached vs naive autoregressive generation speed: GPT (KV cache) and WaveNet (per-layer queues).

For each model, in one run:

- **tokens/s** of the in-graph sampling loop (``model.generate``: one ``tf.while_loop``) with the
  cache and with naive recomputation of the whole prefix (GPT) or receptive field (WaveNet) per
  step, after a warm-up call that traces the graphs; the samples of both paths are checked equal;
- **per-step time at the start vs the end** of the long generation, from a Python loop over the
  compiled single-step function (median of the first and last ``--window`` steps): flat for the
  cached path, growing with the prefix for naive GPT.

Weights are random (speed does not depend on training). Usage::

    python bench/generation_speed.py                      # GPT 512 tokens, WaveNet 2000 samples
    python bench/generation_speed.py --out bench/generation_speed.md
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasvk  # noqa: E402


def timed(fn, repeats=1):
    best = float("inf")
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def per_step_times(step_fn, state, n, window):
    """Median seconds of the first and last ``window`` calls of ``step_fn(t, state) -> state``."""
    times = []
    for t in range(n):
        t0 = time.perf_counter()
        state = step_fn(t, state)
        tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, "numpy") else x, state)  # wait for the result
        times.append(time.perf_counter() - t0)
    return float(np.median(times[:window])), float(np.median(times[-window:]))


def bench_gpt(steps, window):
    model = kerasvk.build("gpt", context_length=steps + 64, num_layers=4, num_heads=4, dim=128)
    prompt = "def "
    kw = dict(num_samples=1, seed=0, return_ids=True)
    model.generate(prompt, 4, **kw)  # trace both loops
    model.generate(prompt, 4, use_cache=False, **kw)
    t_cached, a = timed(lambda: model.generate(prompt, steps, **kw))
    t_naive, b = timed(lambda: model.generate(prompt, steps, use_cache=False, **kw))
    assert np.array_equal(a, b), "cached and naive GPT samples differ"

    total = len(prompt) + steps
    ids = tf.constant(a)

    @tf.function(input_signature=[tf.TensorSpec((), tf.int32), tf.nest.map_structure(
        lambda c: tf.TensorSpec(c.shape, c.dtype), tuple(b_.attn.initial_cache(1, total) for b_ in model.blocks))])
    def cached_step(t, caches):
        _, caches = model._cached_step(t, ids, caches)
        return caches

    @tf.function(input_signature=[tf.TensorSpec((1, None), tf.int32)])
    def naive_forward(prefix):
        return model(prefix, training=False)[:, -1]

    caches = tuple(b_.attn.initial_cache(1, total) for b_ in model.blocks)
    cs, ce = per_step_times(lambda t, s: cached_step(tf.constant(t), s), caches, total - 1, window)
    ns, ne = per_step_times(lambda t, s: (naive_forward(ids[:, : t + 1]), s)[1], 0, total - 1, window)
    return {
        "model": f"GPT 4×128, ctx {total}, {model.count_params() / 1e6:.2f}M params",
        "steps": steps,
        "cached_tps": steps / t_cached,
        "naive_tps": steps / t_naive,
        "cached_step_ms": (cs * 1e3, ce * 1e3),
        "naive_step_ms": (ns * 1e3, ne * 1e3),
    }


def bench_wavenet(steps, window):
    from kerasvk.data.audio import mu_law_encode, synthetic_audio

    model = kerasvk.build("wavenet", residual_channels=32, skip_channels=64, max_dilation=512, num_stacks=2)
    rf = model.receptive_field
    wave, _ = synthetic_audio(count=1, duration=(rf + 16) / 8000, sample_rate=8000, seed=0)
    prompt = wave[0, :rf]  # a full receptive field of real-looking audio: naive windows are full-size from step 1
    kw = dict(num_samples=1, seed=0, prompt=prompt, return_codes=True)
    model.generate(2, **kw)
    model.generate(2, use_cache=False, **kw)
    t_cached, a = timed(lambda: model.generate(steps, **kw))
    t_naive, b = timed(lambda: model.generate(steps, use_cache=False, **kw))
    assert np.array_equal(a, b), "cached and naive WaveNet samples differ"

    codes = tf.constant(np.concatenate([mu_law_encode(prompt), np.asarray(a[0, rf:])])[None])
    state0 = (
        model.causal_conv.initial_state(1, model.residual_channels),
        tuple(b_.initial_state(1) for b_ in model.res_blocks),
    )
    step = model._cached_step(None)

    @tf.function(input_signature=[tf.TensorSpec((), tf.int32), tf.nest.map_structure(lambda s: tf.TensorSpec(s.shape, s.dtype), state0)])
    def cached_step(t, state):
        return step(t, codes, state)[1]

    @tf.function(input_signature=[tf.TensorSpec((1, None), tf.int32)])
    def naive_forward(window_codes):
        return model(window_codes, training=False)[:, -1]

    n = rf + steps - 1
    cs, ce = per_step_times(lambda t, s: cached_step(tf.constant(t), s), state0, n, window)
    # Naive WaveNet always reads a full receptive field (prompt = rf samples), so its step cost is
    # constant by construction; time its first min(steps, 4·window) generated steps.
    m = min(steps, 4 * window)
    ns, ne = per_step_times(lambda t, s: (naive_forward(codes[:, t : t + rf]), s)[1], 0, m, window)
    return {
        "model": f"WaveNet 2×(1..512), receptive field {rf}, {model.count_params() / 1e6:.2f}M params",
        "steps": steps,
        "cached_tps": steps / t_cached,
        "naive_tps": steps / t_naive,
        "cached_step_ms": (cs * 1e3, ce * 1e3),
        "naive_step_ms": (ns * 1e3, ne * 1e3),
    }


def table(rows, device):
    lines = [
        f"Device: {device}; TensorFlow {tf.__version__}.",
        "",
        "| model | new tokens | cached tok/s | naive tok/s | speedup | cached ms/step start → end | naive ms/step start → end |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['steps']} | {r['cached_tps']:.1f} | {r['naive_tps']:.1f} | "
            f"**{r['cached_tps'] / r['naive_tps']:.1f}×** | {r['cached_step_ms'][0]:.2f} → {r['cached_step_ms'][1]:.2f} | "
            f"{r['naive_step_ms'][0]:.2f} → {r['naive_step_ms'][1]:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpt-steps", type=int, default=512)
    ap.add_argument("--wavenet-steps", type=int, default=2000)
    ap.add_argument("--window", type=int, default=32, help="steps averaged at the start and at the end")
    ap.add_argument("--only", choices=["gpt", "wavenet"], default=None)
    ap.add_argument("--out", default=None, help="also write the markdown table here (atomically)")
    args = ap.parse_args(argv)
    gpus = tf.config.list_physical_devices("GPU")
    device = (f"GPU {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}" if gpus
              else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    rows = []
    if args.only in (None, "gpt"):
        rows.append(bench_gpt(args.gpt_steps, args.window))
        print(table(rows, device), flush=True)
    if args.only in (None, "wavenet"):
        rows.append(bench_wavenet(args.wavenet_steps, args.window))
    text = table(rows, device)
    print("\n" + text)
    if args.out:
        folder = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".md")
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
