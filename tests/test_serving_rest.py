"""What a TF Serving client sees: REST bodies with base64 images, saved_model_cli, killed exports, bad input."""

import base64
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import kerasvk
from kerasvk.export import export_model
from kerasvk.export.serving import rest_inputs


@pytest.fixture(scope="module")
def classifier_export(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = kerasvk.build("simple_cnn", input_shape=(16, 16, 3), num_classes=3, dense_units=8)
    base = tmp_path_factory.mktemp("serving")
    return model, export_model(model, base=base, name="shapes_cls", class_names=["a", "b", "c"])


def _png(pixels):
    return tf.io.encode_png(tf.constant(pixels)).numpy()


def test_rest_b64_body_through_serving_bytes_equals_keras(classifier_export):
    model, path = classifier_export
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 16, 16, 3)).astype("uint8")
    body = json.dumps({
        "signature_name": "serving_bytes",
        "instances": [{"image_bytes": {"b64": base64.b64encode(_png(p)).decode()}} for p in pixels],
    })
    signature, inputs = rest_inputs(body)
    assert signature == "serving_bytes" and inputs["image_bytes"].dtype == object
    served = tf.saved_model.load(str(path)).signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    ref = np.asarray(model(pixels.astype("float32") / 255.0, training=False))
    np.testing.assert_allclose(served["probabilities"].numpy(), ref, atol=1e-5)
    assert [c.decode() for c in served["class_name"].numpy()] == [["a", "b", "c"][i] for i in ref.argmax(-1)]


def test_rest_row_and_column_formats_agree(classifier_export):
    _, path = classifier_export
    images = np.random.default_rng(1).random((2, 16, 16, 3)).astype("float32")
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    _, rows = rest_inputs({"instances": images.tolist()}, ["images"])
    _, cols = rest_inputs({"inputs": {"images": images.tolist()}})
    a = fn(images=tf.constant(rows["images"], tf.float32))["probabilities"].numpy()
    b = fn(images=tf.constant(cols["images"], tf.float32))["probabilities"].numpy()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match='exactly one of "instances"'):
        rest_inputs({"instances": [], "inputs": []})


def test_saved_model_cli_shows_every_signature(classifier_export):
    _, path = classifier_export
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "show", "--dir", str(path), "--all"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("serving_default", "serving_uint8", "serving_bytes", "probabilities", "class_name", "image_bytes"):
        assert name in out.stdout


def test_modes_are_readable_by_others(classifier_export):
    _, path = classifier_export
    for root, dirs, files in os.walk(path):
        assert os.stat(root).st_mode & 0o005 == 0o005, root
        for f in files:
            assert os.stat(os.path.join(root, f)).st_mode & 0o004, f


def test_corrupt_image_bytes_are_a_clear_invalid_argument(classifier_export):
    _, path = classifier_export
    fn = tf.saved_model.load(str(path)).signatures["serving_bytes"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        fn(image_bytes=tf.constant([b"not an image"]))


def test_export_killed_mid_write_leaves_no_version(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        import kerasvk
        from kerasvk.export import saved_model, serving
        model = kerasvk.build("simple_cnn", input_shape=(8, 8, 1), num_classes=2, dense_units=4)
        real = serving.write_warmup
        def write_then_die(folder, *args):
            real(folder, *args)  # the SavedModel and its warm-up file are complete in the temporary folder ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before the rename
        serving.write_warmup = write_then_die
        saved_model.export_model(model, base={str(tmp_path)!r}, name="m")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == -9
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.isdigit()]  # nothing TF Serving would load
    model = kerasvk.build("simple_cnn", input_shape=(8, 8, 1), num_classes=2, dense_units=4)
    assert export_model(model, base=tmp_path, name="m").name == "1"  # the next export is a clean version 1
    assert export_model(model, base=tmp_path, name="m").name == "2"


@pytest.mark.parametrize("name", ["..", "../up", "a/b", "/abs", ".hidden", "a..b", "a b", "~user"])
def test_export_names_that_would_leave_the_base_are_refused(name, tmp_path):
    model = kerasvk.build("simple_cnn", input_shape=(8, 8, 1), num_classes=2, dense_units=4)
    with pytest.raises(ValueError, match="Export name may contain only"):
        export_model(model, base=tmp_path / "base", name=name)
    assert not (tmp_path / "base").exists() or not any((tmp_path / "base").iterdir())


def test_export_base_or_model_path_that_is_a_file(tmp_path):
    model = kerasvk.build("simple_cnn", input_shape=(8, 8, 1), num_classes=2, dense_units=4)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="existing file"):
        export_model(model, base=tmp_path / "file", name="m")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "m").write_text("x")
    with pytest.raises(ValueError, match="existing file"):
        export_model(model, base=tmp_path / "b", name="m")
    export_model(model, base=tmp_path / "ok", name="m", version=3)
    with pytest.raises(ValueError, match="already exists; versions are never overwritten"):
        export_model(model, base=tmp_path / "ok", name="m", version=3)


def test_dynamic_size_classifier_exports_without_bytes_signature(tmp_path):
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    loaded = tf.saved_model.load(str(export_model(model, base=tmp_path, name="dyn")))
    assert set(loaded.signatures) == {"serving_default"}  # bytes/uint8 need a fixed size to resize to
    out = loaded.signatures["serving_default"](images=tf.zeros((1, 12, 20, 3)))
    assert out["probabilities"].shape == (1, 2)
