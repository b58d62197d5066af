"""Train a character-level GPT on Python's own documentation text and sample from it.

Corpus: ``pydoc_data.topics`` (≈465k characters, ships with CPython) plus any ``--text`` files; the
last 10 % is held out. Trains for ``--minutes`` of wall time (a few minutes on 2 CPU cores), then
prints the held-out **perplexity** (per character) and writes to the run folder:

    samples.txt     continuations of a few prompts (KV-cache sampling, temperature / top-p)
    metrics.json    held-out loss (nats/char), bits/char, perplexity, steps, seconds
    history.json    per-epoch training loss
    gpt.keras       the model, tokenizer included (loads with safe_mode=True)

Run: ``python recipes/train_gpt.py [--minutes 4] [--text my.txt] [--run-dir runs/gpt]``
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
from kerasvk.data import text  # noqa: E402

PROMPTS = ["The ", "def ", "A list is", "\n"]


def write_atomic(path, data: str):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)


class TimeBudget(keras.callbacks.Callback):
    """Stop training after ``seconds`` of wall time (checked after every batch)."""

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
    ap = argparse.ArgumentParser(description="Train a character-level GPT on pydoc text (+ your files).")
    ap.add_argument("--text", nargs="*", default=[], help="extra UTF-8 text files added to the corpus")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", default="runs/gpt")
    args = ap.parse_args(argv)
    os.makedirs(args.run_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    corpus = text.load_corpus("pydoc", files=args.text)
    tokenizer = text.CharTokenizer.from_text(corpus)
    train_ids, val_ids = text.split_ids(tokenizer.encode(corpus), 0.1)
    print(f"corpus: {len(corpus):,} characters, vocabulary {tokenizer.vocab_size}, held out {len(val_ids):,}")
    train = text.text_dataset(train_ids, args.seq_len, args.batch_size, seed=args.seed, stride=args.seq_len // 2)
    val = text.text_dataset(val_ids, args.seq_len, 64, shuffle=False)

    model = kerasvk.build(
        "gpt", vocab=tokenizer.vocab, context_length=2 * args.seq_len, num_layers=args.layers,
        num_heads=args.heads, dim=args.dim, dropout=0.0,
    )
    steps_per_epoch = 100
    schedule = keras.optimizers.schedules.CosineDecay(
        1e-4, decay_steps=10_000, warmup_target=args.lr, warmup_steps=100, alpha=0.1
    )
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01, clipnorm=1.0))
    budget = TimeBudget(60 * args.minutes)
    t0 = time.perf_counter()
    hist = model.fit(train.repeat(), epochs=10_000, steps_per_epoch=steps_per_epoch, callbacks=[budget], verbose=2)
    seconds = time.perf_counter() - t0

    val_loss = float(model.evaluate(val, verbose=0))
    ppl = math.exp(val_loss)
    print(f"held-out: {val_loss:.4f} nats/char = {val_loss / math.log(2):.3f} bits/char, perplexity {ppl:.2f} "
          f"(uniform over the vocabulary would be {tokenizer.vocab_size}) after {budget.steps} steps in {seconds:.0f} s")

    lines = []
    for i, prompt in enumerate(PROMPTS):
        new_tokens = min(200, model.context_length - len(prompt))  # no sliding window
        out = model.generate(prompt, new_tokens, temperature=0.8, top_p=0.95, seed=args.seed + i)[0]
        lines.append(f"=== prompt {prompt!r} (temperature 0.8, top_p 0.95, seed {args.seed + i}) ===\n{out}\n")
    write_atomic(os.path.join(args.run_dir, "samples.txt"), "\n".join(lines))
    print(lines[0])

    metrics = {"val_loss_nats_per_char": val_loss, "val_bits_per_char": val_loss / math.log(2), "val_perplexity": ppl,
               "steps": budget.steps, "seconds": seconds, "vocab_size": tokenizer.vocab_size,
               "parameters": int(model.count_params())}
    write_atomic(os.path.join(args.run_dir, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    write_atomic(os.path.join(args.run_dir, "history.json"), json.dumps(hist.history, indent=2) + "\n")
    tmp = os.path.join(args.run_dir, ".tmp-gpt.keras")
    model.save(tmp)
    os.replace(tmp, os.path.join(args.run_dir, "gpt.keras"))
    print(f"wrote {args.run_dir}/samples.txt, metrics.json, history.json, gpt.keras")


if __name__ == "__main__":
    main()
