"""Cached vs naive autoregressive generation speed: GPT (KV cache) and WaveNet (per-layer queues).

For each model, in one run:

- **tokens/s** of ``model.generate`` with ``use_cache=True`` and ``use_cache=False`` (one warm-up call
  each first, so tracing/compiling is not timed; the samples of both are checked equal):
  - GPT cached: the whole sampling loop is one XLA computation (static ``context_length`` caches updated in
    place, the per-step Gumbel noise precomputed by the plain TF ops, so the draws are the naive loop's);
    "cached, TF graph" is the same cached loop as plain TF graph ops (the exported ``generate`` signature).
  - WaveNet cached: one ``tf.function`` graph, per-layer queues.
  - naive: each step re-runs the model's forward pass over the whole prefix (GPT, dynamic length: plain TF
    graph) or the full receptive field (WaveNet) inside one ``tf.while_loop``.
- **per-step time**: cached = generation time / tokens (its step cost does not depend on the position);
  naive = ``tf.timestamp()`` stamped inside the graph loop at every step (median of the first and of the
  last ``--window`` steps): it grows with the prefix for GPT.
- ``--busy N`` starts N busy neighbour processes (``while True: pass``) for the whole measurement, the
  "one other busy process" condition on a 2-core machine.

Weights are random (speed does not depend on training). Usage::

    python bench/generation_speed.py                      # GPT 512 tokens, WaveNet 2000 samples
    python bench/generation_speed.py --busy 1 --only gpt  # beside one busy process
    python bench/generation_speed.py --out bench/generation_speed.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasvk  # noqa: E402
from kerasvk.io import write_text  # noqa: E402
from kerasvk.models.generative import _sampling  # noqa: E402


def timed(fn, repeats=1):
    best = float("inf")
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def in_graph_step_times(make_step, prompt_ids, new_tokens, seed, window):
    """Median seconds per step of the first and last ``window`` steps, stamped inside the graph loop.

    ``make_step(tokens, prompt_len) -> (step_fn, initial_state)`` builds what ``generate`` builds;
    the step is wrapped so that every iteration records ``tf.timestamp()`` once the previous token
    is written. Returns ``(start, end, tokens)``.
    """

    def stamped(step_fn):
        def step(t, tokens, state):
            inner, stamps = state
            with tf.control_dependencies([tokens]):
                now = tf.timestamp()
            logits, inner = step_fn(t, tokens, inner)
            return logits, (inner, stamps.write(t, now))

        return step

    @tf.function
    def run(prompt_ids):
        p = tf.shape(prompt_ids)[0]
        total = p + new_tokens
        tokens = tf.pad(prompt_ids, [[0, new_tokens]])[None, :]
        step_fn, state = make_step(tokens, p)
        stamps = tf.TensorArray(tf.float64, size=total)
        tokens, (_, stamps) = _sampling.sequence_loop(
            stamped(step_fn), (state, stamps), tokens, p, p - 1, 1.0, 0, 1.0, seed, return_state=True
        )
        with tf.control_dependencies([tokens]):
            end = tf.timestamp()
        return tokens, tf.concat([stamps.stack()[p - 1 :], end[None]], 0)

    tokens, stamps = run(tf.constant(prompt_ids, tf.int32))
    dt = np.diff(stamps.numpy())
    return float(np.median(dt[:window])), float(np.median(dt[-window:])), tokens.numpy()


def bench_gpt(steps, window):
    model = kerasvk.build("gpt", context_length=steps + 4, num_layers=4, num_heads=4, dim=128)
    prompt = "def "
    kw = dict(num_samples=1, seed=0, return_ids=True)
    model.generate(prompt, 4, **kw)  # trace (and compile) both loops
    model.generate(prompt, 4, use_cache=False, **kw)
    ids = model.tokenizer.encode(prompt)
    graph = tf.function(lambda: model.generate_ids(tf.constant(ids), 1, steps, 1.0, 0, 1.0, 0, xla=False))
    graph()
    t_cached, a = timed(lambda: model.generate(prompt, steps, **kw), repeats=3)
    t_graph, g = timed(lambda: graph().numpy(), repeats=3)
    t_naive, b = timed(lambda: model.generate(prompt, steps, use_cache=False, **kw))
    assert np.array_equal(a, b), "cached and naive GPT samples differ"
    assert np.array_equal(g, b), "cached (TF graph) and naive GPT samples differ"

    def naive(tokens, p):
        return model._naive_step, tf.zeros((), tf.int32)

    ns, ne, tb = in_graph_step_times(naive, ids, steps, 0, window)
    assert np.array_equal(tb, a), "the stamped loop must draw what generate draws"
    return {
        "model": f"GPT 4×128, ctx {len(prompt) + steps}, {model.count_params() / 1e6:.2f}M params",
        "steps": steps,
        "cached_tps": steps / t_cached,
        "graph_tps": steps / t_graph,
        "naive_tps": steps / t_naive,
        "cached_step_ms": t_cached / steps * 1e3,
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

    codes = mu_law_encode(prompt)

    def cached(tokens, p):
        return model._cached_step(None), model.prefill(tokens[:, : p - 1])

    def naive(tokens, p):
        return model._naive_step(None), tf.zeros((), tf.int32)

    cs, ce, ta = in_graph_step_times(cached, codes, steps, 0, window)
    assert np.array_equal(ta, a), "the stamped loop must draw what generate draws"
    # Naive WaveNet always reads a full receptive field (prompt = rf samples), so its step cost is
    # constant by construction; time its first min(steps, 4·window) generated steps.
    m = min(steps, 4 * window)
    ns, ne, tb = in_graph_step_times(naive, codes, m, 0, window)
    assert np.array_equal(tb, a[:, : rf + m]), "the stamped loop must draw what generate draws"
    return {
        "model": f"WaveNet 2×(1..512), receptive field {rf}, {model.count_params() / 1e6:.2f}M params",
        "steps": steps,
        "cached_tps": steps / t_cached,
        "graph_tps": None,
        "naive_tps": steps / t_naive,
        "cached_step_ms": t_cached / steps * 1e3,
        "naive_step_ms": (ns * 1e3, ne * 1e3),
    }


def table(rows, device, note=""):
    lines = [
        f"Device: {device}; TensorFlow {tf.__version__}.{note}",
        "",
        "| model | new tokens | cached tok/s | cached, TF graph tok/s | naive tok/s | **speedup** | cached ms/step | "
        "naive ms/step start → end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        graph = f"{r['graph_tps']:.1f}" if r.get("graph_tps") else "–"
        lines.append(
            f"| {r['model']} | {r['steps']} | {r['cached_tps']:.1f} | {graph} | {r['naive_tps']:.1f} | "
            f"**{r['cached_tps'] / r['naive_tps']:.1f}×** | {r['cached_step_ms']:.3f} | "
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
    ap.add_argument("--busy", type=int, default=0, help="busy neighbour processes to run during the measurement")
    args = ap.parse_args(argv)
    import subprocess
    import sys

    neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        return _run(args)
    finally:
        for proc in neighbours:
            proc.kill()
            proc.wait()


def _run(args):
    gpus = tf.config.list_physical_devices("GPU")
    device = (f"GPU {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}" if gpus
              else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    before = os.getloadavg()
    rows = []
    if args.only in (None, "gpt"):
        rows.append(bench_gpt(args.gpt_steps, args.window))
        print(table(rows, device), flush=True)
    if args.only in (None, "wavenet"):
        rows.append(bench_wavenet(args.wavenet_steps, args.window))
    note = (f" Busy neighbour processes: {args.busy}. Load average (1 min) before {before[0]:.2f}, "
            f"after {os.getloadavg()[0]:.2f}.")
    text = table(rows, device, note)
    print("\n" + text)
    if args.out:
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
