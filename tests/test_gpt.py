"""GPT: KV-cache generation equals naive recomputation, sampling filters, bad inputs, in-graph generate export."""

import ast

import numpy as np
import pytest
import tensorflow as tf

import kerasvk
from kerasvk.data import text
from kerasvk.models.generative import _sampling

VOCAB = "abcdefgh \n"


def _tiny_gpt(**kw):
    model = kerasvk.build("gpt", **{**dict(vocab=VOCAB, context_length=32, num_layers=2, num_heads=2, dim=16), **kw})
    # Larger token embeddings make the logits peaked, so the samples depend on the model, not only on the noise.
    emb = model.embedding.token_embeddings
    emb.assign(emb * 8.0)
    return model


def test_cached_step_logits_equal_full_forward():
    model = _tiny_gpt()
    ids = np.random.default_rng(0).integers(0, len(VOCAB), size=(2, 12)).astype("int32")
    full = model(ids).numpy()
    caches = tuple(b.attn.initial_cache(2, 12) for b in model.blocks)
    tokens = tf.constant(ids)
    steps = []
    for t in range(12):
        logits, caches = model._cached_step(t, tokens, caches)
        steps.append(logits.numpy())
    np.testing.assert_allclose(np.stack(steps, axis=1), full, atol=1e-4, rtol=1e-4)


def test_cached_and_naive_generation_give_identical_tokens():
    model = _tiny_gpt(num_layers=1)
    kw = dict(num_samples=3, seed=7, temperature=0.8, top_k=5, top_p=0.9, return_ids=True)
    cached = model.generate("abc", 24, **kw)
    naive = model.generate("abc", 24, use_cache=False, **kw)
    assert cached.shape == (3, 27)
    np.testing.assert_array_equal(cached, naive)
    assert (cached[:, :3] == text.CharTokenizer(VOCAB).encode("abc")).all()
    # the draws depend on the seed and differ between samples of one batch
    other = model.generate("abc", 24, **{**kw, "seed": 8})
    assert not np.array_equal(cached, other)
    assert len({tuple(r) for r in cached}) > 1
    # a one-character prompt (empty prefill) too
    np.testing.assert_array_equal(model.generate("h", 8, **kw), model.generate("h", 8, use_cache=False, **kw))


def test_xla_generation_loop_draws_the_naive_tokens():
    """generate(xla=True) (one XLA computation, static context_length caches; the default from XLA_MIN_TOKENS
    new tokens on) draws exactly the naive loop's tokens, with and without top-k/top-p; compiled once."""
    model = _tiny_gpt(num_layers=1)
    for kw in (dict(num_samples=2, seed=3), dict(num_samples=2, seed=5, temperature=0.8, top_k=4, top_p=0.9)):
        xla = model.generate("ab", 20, xla=True, return_ids=True, **kw)
        np.testing.assert_array_equal(xla, model.generate("ab", 20, use_cache=False, return_ids=True, **kw))
    assert model._compiled_loop().experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="xla must be None"):
        model.generate("ab", 2, xla="yes")


def test_filter_logits_top_k_and_top_p():
    logits = tf.constant([[0.0, 3.0, 1.0, 2.0]])
    out = _sampling.filter_logits(logits, 1.0, 2, 1.0).numpy()[0]
    assert np.isneginf(out[[0, 2]]).all() and np.isfinite(out[[1, 3]]).all()
    # probs ≈ [0.03, 0.64, 0.09, 0.24]: top_p=0.7 keeps the two largest (0.64 < 0.7, then 0.88)
    out = _sampling.filter_logits(logits, 1.0, 0, 0.7).numpy()[0]
    assert np.isfinite(out[[1, 3]]).all() and np.isneginf(out[[0, 2]]).all()
    out = _sampling.filter_logits(logits, 1.0, 0, 0.5).numpy()[0]  # the top token alone has 0.64 ≥ 0.5
    assert np.isfinite(out[1]) and np.isneginf(out[[0, 2, 3]]).all()
    # top_k=1 is greedy whatever the noise
    draws = {int(_sampling.sample_logits(logits, s, 0, 1.0, 1, 1.0)[0]) for s in range(20)}
    assert draws == {1}


def test_bad_inputs_raise_clear_errors():
    model = _tiny_gpt()
    with pytest.raises(ValueError, match="outside the vocabulary.*'Z'.*Allowed characters"):
        model.generate("abZ", 4)
    with pytest.raises(ValueError, match="max_new_tokens must be <= 29.*no sliding window"):
        model.generate("abc", 30)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        model.generate("abc", 4, temperature=0)
    for p in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
            model.generate("abc", 4, top_p=p)
    with pytest.raises(ValueError, match="top_k must be an integer >= 0"):
        model.generate("abc", 4, top_k=-1)


def test_exported_generate_signature_runs_loop_in_graph(tmp_path):
    from kerasvk.export import export_model

    model = _tiny_gpt(num_layers=1)
    expected = model.generate("ab", 10, num_samples=2, seed=3, top_k=4)
    path = export_model(model, base=tmp_path, name="gpt_tiny")
    loaded = tf.saved_model.load(str(path))
    gen = loaded.signatures["generate"]
    args = dict(max_new_tokens=tf.constant(10), num_samples=tf.constant(2), temperature=tf.constant(1.0),
                top_k=tf.constant(4), top_p=tf.constant(1.0), seed=tf.constant(3))
    out = gen(prompt=tf.constant("ab"), **args)
    assert [s.decode() for s in out["text"].numpy()] == expected
    assert [s.decode() for s in out["completion"].numpy()] == [e[2:] for e in expected]
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the vocabulary"):
        gen(prompt=tf.constant("aZ"), **args)
    with pytest.raises(tf.errors.InvalidArgumentError, match="context_length=32"):
        gen(prompt=tf.constant("ab"), **{**args, "max_new_tokens": tf.constant(40)})


def test_pydoc_corpus_tokenizer_and_windows():
    corpus = text.load_corpus("pydoc")
    assert len(corpus) > 300_000 and "def " in corpus
    tok = text.CharTokenizer.from_text(corpus)
    ids = tok.encode(corpus[:500])
    assert tok.decode(ids) == corpus[:500]
    train, val = text.split_ids(tok.encode(corpus), 0.1)
    assert len(val) == pytest.approx(0.1 * len(corpus), abs=2)
    x, y = text.window_arrays(train[:1000], 64)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError, match="Unknown text source"):
        text.load_corpus("wikipedia")
    with pytest.raises(FileNotFoundError):
        text.load_corpus(None, files=["/nonexistent/file.txt"])


def test_generation_graph_is_traced_once_per_model_and_mode():
    model = kerasvk.build("gpt", vocab="ab", context_length=4, num_layers=1, num_heads=1, dim=4)
    calls = []
    make = lambda: calls.append(1) or object()  # noqa: E731
    first = _sampling.cached_graph_fn(model, "k", make)
    assert _sampling.cached_graph_fn(model, "k", make) is first and len(calls) == 1
    assert model._graph_fn(True) is model._graph_fn(True) and model._graph_fn(True) is not model._graph_fn(False)


def test_gpt_default_vocab_is_the_pydoc_corpus_and_the_model_imports_no_data_pipeline():
    import kerasvk.models.generative.gpt as gpt_module
    from kerasvk.preprocessing.text import CharTokenizer, pydoc_vocab

    assert text.CharTokenizer.from_text(text.load_corpus("pydoc")).vocab == pydoc_vocab()
    assert text.CharTokenizer is CharTokenizer  # the old import path re-exports the moved class
    tree = ast.parse(open(gpt_module.__file__).read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("kerasvk.data") for m in imported), imported
