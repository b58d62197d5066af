"""Text for character-level language models: an embedded English corpus, a tokenizer, windows.

The embedded corpus is Python's own ``pydoc_data.topics`` (the help texts of the language reference;
about 465k characters of real English prose and code, shipped with every CPython), so nothing is
downloaded. Users add their own text files with ``load_corpus(files=[...])`` or
``load_corpus("file:PATH")``.

The tokenizer lives in ``kerasvk.preprocessing.text`` (models import it from there, not from the data
pipeline); ``CharTokenizer`` is re-exported here so ``kerasvk.data.text.CharTokenizer`` keeps working.
"""

from __future__ import annotations

import os

import numpy as np

from kerasvk.preprocessing.text import CharTokenizer, pydoc_vocab  # noqa: F401  (re-exported)

CORPUS_FORMS = "pydoc (Python's pydoc_data.topics), file:PATH, or a list of text file paths"


def pydoc_corpus() -> str:
    """The help topics of ``pydoc_data.topics``, sorted by topic name and joined by blank lines."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip("\n") for k in sorted(topics)) + "\n"


def read_text_file(path) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Text file not found: {path}")
    with open(path, encoding="utf-8", errors="strict") as f:
        return f.read()


def load_corpus(source="pydoc", files=None) -> str:
    """Corpus text of ``source`` (``"pydoc"`` or ``"file:PATH"``) followed by any ``files``."""
    parts = []
    if source:
        if source == "pydoc":
            parts.append(pydoc_corpus())
        elif isinstance(source, str) and source.startswith("file:") and len(source) > 5:
            parts.append(read_text_file(source[5:]))
        else:
            raise ValueError(f"Unknown text source {source!r}. Allowed: {CORPUS_FORMS}.")
    for path in files or ():
        parts.append(read_text_file(path))
    if not parts or not any(parts):
        raise ValueError(f"No text: give a source or files. Allowed sources: {CORPUS_FORMS}.")
    return "\n\n".join(parts)


def split_ids(ids, val_fraction=0.1):
    """Contiguous split: the last ``val_fraction`` of the text is held out (no window straddles it)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1). Received: val_fraction={val_fraction!r}")
    ids = np.asarray(ids)
    cut = int(len(ids) * (1.0 - val_fraction))
    return ids[:cut], ids[cut:]


def window_arrays(ids, seq_len, stride=None):
    """``(x, y)`` arrays of windows: ``x = ids[s : s+seq_len]``, ``y = ids[s+1 : s+seq_len+1]``."""
    ids = np.asarray(ids, dtype="int32")
    stride = stride or seq_len
    if len(ids) < seq_len + 1:
        raise ValueError(f"Text of {len(ids)} tokens is shorter than seq_len + 1 = {seq_len + 1}.")
    starts = np.arange(0, len(ids) - seq_len, stride)
    win = ids[starts[:, None] + np.arange(seq_len + 1)[None, :]]
    return win[:, :-1], win[:, 1:]


def text_dataset(ids, seq_len, batch_size=32, *, shuffle=True, seed=0, stride=None, drop_remainder=False):
    """Batched, (optionally) shuffled, prefetched ``tf.data`` of ``(x, y)`` next-token windows."""
    import tensorflow as tf

    x, y = window_arrays(ids, seq_len, stride)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
