"""Shared test helpers (keras-hub ``test_case.py`` style) used over every registered model.

``check_model(name, tmp_path)`` builds the model at its registered tiny size and runs:
forward pass → finite outputs → one training step → ``.keras`` save/load (``safe_mode=True``)
with equal outputs → SavedModel export and ``tf.saved_model.load`` with equal outputs.
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


def check_model(name, tmp_path, *, export=True, train=True, **overrides):
    """Run the standard checks on registered model ``name``; return the built model."""
    import keras

    spec = get_spec(name)
    kwargs = {**spec.test_kwargs, **overrides}
    if spec.task == "classification":
        kwargs.setdefault("num_classes", 10)
    model = kerasvk.build(name, **kwargs)
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

    if export:
        import tensorflow as tf

        from kerasvk.export import export_model

        out_dir = export_model(model, base=tmp_path / "saved_models", name=name)
        from kerasvk.export.serving import read_warmup

        loaded = tf.saved_model.load(str(out_dir))
        # every signature runs on its warm-up request (what check_export does, on the export loaded once:
        # a second load of a large graph costs seconds)
        warmups = read_warmup(out_dir)
        assert set(warmups) == set(loaded.signatures), f"{name}: warm-up requests {sorted(warmups)}"
        for signature, request in warmups.items():
            loaded.signatures[signature](**{k: tf.constant(v) for k, v in request.items()})
        fn = loaded.signatures["serving_default"]
        if spec.task == "detection":  # uint8 images in, the TF Object Detection API outputs out
            check_detection_export(model, fn, x)
            return model
        sig_names = list(fn.structured_input_signature[1])
        # a one-input signature names its input itself (classifiers: "images"); several keep the model's
        arg_names = sig_names if len(sig_names) == 1 else [t.name.split(":")[0] for t in model.inputs]
        xs = x if isinstance(x, (list, tuple)) else [x]
        served = fn(**{n: tf.constant(v) for n, v in zip(arg_names, xs)})
        key = "probabilities" if "probabilities" in served else sorted(served)[0]
        np.testing.assert_allclose(served[key].numpy(), ref[0], atol=1e-5, rtol=1e-5)
    return model


def check_detection_export(model, fn, images, atol=1e-4):
    """The exported ``serving_default`` (uint8 images) gives ``model.detect``'s detections on the same pixels."""
    import tensorflow as tf

    pixels = np.round(np.asarray(images) * 255.0).astype("uint8")
    served = {k: v.numpy() for k, v in fn(images=tf.constant(pixels)).items()}
    ref = model.detect(pixels.astype("float32") / 255.0)
    h, w = model.image_shape[:2]
    np.testing.assert_array_equal(served["num_detections"], ref["num_detections"])
    for i, n in enumerate(ref["num_detections"]):
        yx = served["detection_boxes"][i, :n]
        as_xyxy = np.stack([yx[:, 1] * w, yx[:, 0] * h, yx[:, 3] * w, yx[:, 2] * h], axis=-1)
        np.testing.assert_allclose(as_xyxy, ref["boxes"][i, :n], atol=atol * max(h, w))
        np.testing.assert_allclose(served["detection_scores"][i, :n], ref["scores"][i, :n], atol=atol)
        np.testing.assert_array_equal(served["detection_classes"][i, :n], ref["classes"][i, :n])
    return served
