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


# ------------------------------------------------------------------ the README's requests, answered offline
@pytest.fixture(scope="module")
def generator_and_detector(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    base = tmp_path_factory.mktemp("serving_gen_det")
    gan = kerasvk.build("dcgan", input_shape=(8, 8, 1), latent_dim=4, g_filters=(8, 4), d_filters=(4, 8))
    ssd = kerasvk.build("ssd", input_shape=(64, 64, 3), num_classes=3, class_names=["circle", "square", "cross"],
                        backbone="resnet18", backbone_kwargs={"width_multiplier": 0.125, "blocks_per_stage": (1, 1, 1, 1)})
    return (gan, export_model(gan, base=base, name="dcgan")), (ssd, export_model(ssd, base=base, name="yolo"))


def test_readme_rest_requests_for_a_classifier_a_generator_and_a_detector(classifier_export, generator_and_detector):
    from kerasvk.export.serving import rest_predict

    model, path = classifier_export
    pixels = np.random.default_rng(2).integers(0, 256, (1, 16, 16, 3)).astype("uint8")
    ref = np.asarray(model(pixels / 255.0, training=False))
    loaded = tf.saved_model.load(str(path))
    body = {"signature_name": "serving_bytes", "instances": [{"b64": base64.b64encode(_png(pixels[0])).decode()}]}
    answer = json.loads(json.dumps(rest_predict(loaded, json.dumps(body))))  # what goes over the wire
    row = answer["predictions"][0]
    assert row["class_name"] == "abc"[int(ref.argmax())] and row["class_id"] == int(ref.argmax())
    np.testing.assert_allclose(row["probabilities"], ref[0], atol=1e-5)
    assert len(row["top_k_classes"]) == 3 and row["top_k_classes"][0] == row["class_name"]
    body = {"signature_name": "serving_uint8", "instances": pixels.tolist()}
    np.testing.assert_allclose(rest_predict(loaded, body)["predictions"][0]["probabilities"], ref[0], atol=1e-5)

    (gan, gan_path), (ssd, ssd_path) = generator_and_detector
    loaded = tf.saved_model.load(str(gan_path))
    images = rest_predict(loaded, '{"signature_name": "sample", "inputs": {"n": 4, "seed": 7}}')["outputs"]
    np.testing.assert_allclose(np.array(images), np.asarray(gan.sample(4, seed=7)), atol=1e-5)
    noise = np.random.default_rng(3).standard_normal((2, 4)).astype("float32")
    rows = rest_predict(loaded, {"signature_name": "generate", "instances": noise.tolist()})["predictions"]
    np.testing.assert_allclose(np.array(rows), np.asarray(gan.generate(noise)), atol=1e-5)

    loaded = tf.saved_model.load(str(ssd_path))
    photo = np.random.default_rng(4).integers(0, 256, (1, 48, 80, 3)).astype("uint8")  # any size
    row = rest_predict(loaded, json.dumps({"instances": photo.tolist()}))["predictions"][0]
    ref = ssd.detect(tf.image.resize(tf.constant(photo, tf.float32), (64, 64)).numpy() / 255.0)
    n = int(ref["num_detections"][0])
    assert row["num_detections"] == n and n > 0
    np.testing.assert_allclose(row["detection_scores"][:n], ref["scores"][0, :n], atol=1e-4)
    assert row["detection_classes"][:n] == ref["classes"][0, :n].tolist()
    assert row["detection_class_names"][:n] == [["circle", "square", "cross"][c] for c in ref["classes"][0, :n]]
    x1, y1, x2, y2 = ref["boxes"][0, 0]  # pixels of the 64x64 input → normalised [ymin, xmin, ymax, xmax]
    np.testing.assert_allclose(row["detection_boxes"][0], [y1 / 64, x1 / 64, y2 / 64, x2 / 64], atol=1e-4)


def test_readme_grpc_requests(classifier_export, generator_and_detector):
    from tensorflow_serving.apis import predict_pb2

    from kerasvk.export.serving import grpc_predict

    served = {}

    def predict(model, signature, **inputs):  # the README's client, with grpc_predict as the server
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = grpc_predict(served[model], request)
        assert response.model_spec.signature_name == signature
        return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}

    model, path = classifier_export
    (gan, gan_path), (ssd, ssd_path) = generator_and_detector
    served.update({"mobilenet_v2": tf.saved_model.load(str(path)), "dcgan": tf.saved_model.load(str(gan_path)),
                   "yolo": tf.saved_model.load(str(ssd_path))})
    pixels = np.random.default_rng(5).integers(0, 256, (16, 16, 3)).astype("uint8")
    out = predict("mobilenet_v2", "serving_bytes", image_bytes=[_png(pixels)])
    ref = np.asarray(model(pixels[None] / 255.0, training=False))
    assert out["class_name"][0].decode() == "abc"[int(ref.argmax())]
    np.testing.assert_allclose(out["score"], ref.max(-1), atol=1e-5)
    images = predict("dcgan", "sample", n=tf.constant(4, tf.int32), seed=tf.constant(7, tf.int32))["images"]
    np.testing.assert_allclose(images, np.asarray(gan.sample(4, seed=7)), atol=1e-5)
    photo = np.random.default_rng(6).integers(0, 256, (1, 70, 50, 3)).astype("uint8")
    det = predict("yolo", "serving_default", images=photo)
    ref = ssd.detect(tf.image.resize(tf.constant(photo, tf.float32), (64, 64)).numpy() / 255.0)
    np.testing.assert_array_equal(det["num_detections"], ref["num_detections"])
    with pytest.raises(ValueError, match="Unknown signature 'serving_bytes'. Allowed: generate, sample, serving_default"):
        predict("dcgan", "serving_bytes", image_bytes=[b""])


def test_saved_model_cli_binary_on_a_generator_and_a_detector(generator_and_detector):
    (_, gan_path), (_, ssd_path) = generator_and_detector
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    script = f'for d in "{gan_path}" "{ssd_path}"; do "{cli}" show --dir "$d" --all || exit 1; done'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("'sample'", "'generate'", "['noise']", "['detection_boxes']", "['num_detections']", "DT_UINT8"):
        assert name in out.stdout, name


# ------------------------------------------------------------------------ a run: kerasvk.export, check-export
@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    from kerasvk.training import train

    out = tmp_path_factory.mktemp("serving_run") / "run"
    train("simple_cnn", "patterns:classes=5,count=40", epochs=1, batch_size=16, out=out, verbose=0,
          image_size=(16, 16), model_kwargs={"dense_units": 8})
    return out


def test_kerasvk_export_takes_a_model_or_a_run(run_folder, tmp_path):
    from kerasvk.training import load_run_model

    model, config = load_run_model(run_folder)
    assert kerasvk.export(run_folder, base=tmp_path) == tmp_path / "simple_cnn" / "1"  # kerasvk.export(...) itself
    assert kerasvk.export.export(str(run_folder), base=tmp_path) == tmp_path / "simple_cnn" / "2"
    assert kerasvk.export(model, base=tmp_path, name="plain", version=4) == tmp_path / "plain" / "4"
    names = tf.saved_model.load(str(tmp_path / "simple_cnn" / "1")).signatures["serving_uint8"](
        images=tf.zeros((1, 16, 16, 3), tf.uint8))["top_k_classes"].numpy()[0]
    assert sorted(n.decode() for n in names) == sorted(config["class_names"])  # the run's names
    with pytest.raises(ValueError, match="options \\['class_names'\\] are for a Keras model"):
        kerasvk.export(run_folder, base=tmp_path, class_names=["x"])


def test_check_export_cli_lists_compares_and_fails_on_a_mismatch(run_folder, tmp_path, capsys):
    from kerasvk.cli import main

    base = tmp_path / "sm"
    assert main(["export", str(run_folder), "--base", str(base), "--name", "shapes"]) == 0
    capsys.readouterr()
    assert main(["check-export", str(base / "shapes"), "--run", str(run_folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{base / 'shapes' / '1'}:"
    assert "signature_def['serving_bytes']:" in out and "  inputs['image_bytes']: string (-1)" in out
    assert "  inputs['images']: uint8 (-1, 16, 16, 3)" in out and "  outputs['top_k_classes']: string (-1, 5)" in out
    assert any(line.startswith("serving_bytes: warm-up ok; vs Keras max |diff|") for line in out)
    summary = json.loads(out[-1])
    assert summary["signatures"] == summary["warmup_ok"] == summary["compared_with_keras"] == 3
    assert summary["errors"] == 0 and summary["max_abs_diff"] <= 1e-5

    # another model's weights under the same name (version 2): the highest version no longer matches the run
    other = kerasvk.build("simple_cnn", input_shape=(16, 16, 3), num_classes=5, dense_units=8)
    export_model(other, base=base, name="shapes", class_names=list("abcde"))
    assert main(["check-export", str(base / "shapes"), "--run", str(run_folder)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("kerasvk: check-export failed: Export") and "disagrees with the Keras model" in err
    assert "\n" not in err and json.loads(captured.out.splitlines()[-1])["errors"] > 0
    assert main(["check-export", str(base / "shapes"), "--version", "1", "--run", str(run_folder)]) == 0
    capsys.readouterr()
    assert main(["check-export", str(base / "shapes"), "--version", "3"]) == 2
    assert "Available versions: 1, 2" in capsys.readouterr().err
    assert main(["check-export", str(base / "shapes" / "1"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signatures"]["serving_uint8"]["inputs"]["images"]["dtype"] == "uint8"
