"""Preprocessing a model may carry inside itself: tokenizers and μ-law coding.

Models import from here, never from ``kerasvk.data`` (the data pipeline: corpora, WAV files,
windows, tf.data). This package imports nothing from kerasvk and no TensorFlow at import time.
"""

from kerasvk.preprocessing.audio import mu_law_decode, mu_law_encode, tf_mu_law_decode, tf_mu_law_encode
from kerasvk.preprocessing.text import CharTokenizer, pydoc_vocab

__all__ = [
    "CharTokenizer",
    "pydoc_vocab",
    "mu_law_encode",
    "mu_law_decode",
    "tf_mu_law_encode",
    "tf_mu_law_decode",
]
