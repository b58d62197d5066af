"""Shared test helpers (keras-hub ``test_case.py`` style) used over every registered model.

``check_model(name, tmp_path)`` builds the model at its registered tiny size and runs:
forward pass → finite outputs → one training step → ``.keras`` save/load (``safe_mode=True``)
with equal outputs; ``tests/test_models_common.py`` then exports the same model and checks every signature.
"""

from __future__ import annotations

import numpy as np

import kerasvk
from kerasvk.registry import get_spec


def example_batch(spec, model, batch_size=2, seed=0):
    """``(x, y)`` for one batch: the spec's own maker, else images in [0, 1] and integer labels."""
    if spec.example_inputs is not None:
        return spec.example_inputs(model, batch_size, seed)
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(0, 1, (batch_size, *t.shape[1:])).astype("float32") for t in model.inputs]
    x = xs[0] if len(xs) == 1 else xs
    y = None
    if spec.task == "classification":
        y = rng.integers(0, model.outputs[0].shape[-1], size=(batch_size,))
    return x, y


def outputs_of(model, x):
    import keras

    out = model(x, training=False)
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(out)]


def assert_outputs_close(a, b, atol=1e-5, rtol=1e-5):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, atol=atol, rtol=rtol)


def compile_for_test(spec, model):
    import keras

    from kerasvk.training.trainer import build_optimizer

    if spec.task == "classification":
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    elif not getattr(model, "compiled", False):
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    build_optimizer(model)  # its variables made here: the train step is traced once, not twice


def assert_independent_initialization(model, prefix=16):
    """No two randomly initialised weights of a fresh ``model`` start with the same ``prefix`` values.

    A keras initializer created once with ``seed=None`` holds a fixed integer seed and returns the same
    draws at every call: shared between layers (a module-level ``kernel_initializer``), every weight of one
    shape starts identical — and a weight of another shape starts with the same leading values — whatever
    ``keras.utils.set_random_seed`` says. Constant weights (biases, BatchNorm statistics) are skipped.
    """
    seen = {}
    for w in model.weights:
        v = np.asarray(w.numpy()).ravel()
        if v.size < prefix or not np.issubdtype(v.dtype, np.floating) or np.ptp(v) == 0:
            continue
        key = v[:prefix].tobytes()
        assert key not in seen, (
            f"{model.name}: weights {seen[key]!r} and {w.path!r} start with the same {prefix} values: "
            "one initializer instance with a fixed seed was shared between them"
        )
        seen[key] = w.path


def check_model(name, tmp_path, *, train=True, **overrides):
    """Run the standard checks on registered model ``name``; return the built model."""
    import keras

    spec = get_spec(name)
    kwargs = {**spec.test_kwargs, **overrides}
    if spec.task == "classification":
        kwargs.setdefault("num_classes", 10)
    model = kerasvk.build(name, **kwargs)
    assert_independent_initialization(model)
    x, y = example_batch(spec, model)

    before = outputs_of(model, x)
    for o in before:
        assert np.all(np.isfinite(o)), f"{name}: non-finite outputs"

    if train:
        compile_for_test(spec, model)
        n = len(x[0] if isinstance(x, (list, tuple)) else x)
        hist = model.fit(x, y, epochs=1, batch_size=n, verbose=0)
        for k, v in hist.history.items():
            assert np.all(np.isfinite(v)), f"{name}: non-finite {k} after one step"

    ref = outputs_of(model, x)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert_outputs_close(ref, outputs_of(restored, x))

    return model
