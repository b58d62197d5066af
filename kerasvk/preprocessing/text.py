"""Character tokenization for character-level language models (GPT).

``CharTokenizer`` is a character vocabulary stored as one string, so a model that keeps that
string in its config (GPT does) is self-contained: the ``.keras`` file and the SavedModel both
carry their tokenizer. ``pydoc_vocab()`` is the default vocabulary: the characters of Python's
``pydoc_data.topics`` (the corpus ``kerasvk.data.text.pydoc_corpus`` serves).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CharTokenizer", "pydoc_vocab"]


class CharTokenizer:
    """Characters ↔ integer ids over a fixed vocabulary string (id = index in ``vocab``)."""

    def __init__(self, vocab: str):
        if not isinstance(vocab, str) or not vocab:
            raise ValueError(f"vocab must be a non-empty string of distinct characters. Received: {vocab!r}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab must not repeat characters.")
        self.vocab = vocab
        self.index = {c: i for i, c in enumerate(vocab)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """The sorted set of characters of ``text``."""
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise ValueError(f"Text must be a str. Received: {type(text).__name__}")
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(
                f"Text has {len(unknown)} character(s) outside the vocabulary: {''.join(unknown)!r}. "
                f"Allowed characters ({self.vocab_size}): {self.vocab!r}"
            )
        return np.fromiter((self.index[c] for c in text), dtype="int32", count=len(text))

    def decode(self, ids) -> str:
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"Token ids must be in [0, {self.vocab_size}). Received range [{ids.min()}, {ids.max()}]")
        return "".join(self.vocab[i] for i in ids)


def pydoc_vocab() -> str:
    """The sorted characters of ``pydoc_data.topics`` (plus newline): GPT's default vocabulary.

    The same string as ``CharTokenizer.from_text(kerasvk.data.text.pydoc_corpus()).vocab``, computed
    without the data package (the corpus only adds newlines between topics).
    """
    from pydoc_data.topics import topics

    chars = set("\n")
    for v in topics.values():
        chars.update(v)
    return "".join(sorted(chars))
