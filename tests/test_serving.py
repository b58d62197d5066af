"""TF Serving files of an export: warm-up PredictionLogs for every signature, models.config, check-export."""

import numpy as np
import pytest
import tensorflow as tf

import kerasvk
from kerasvk.export import check_export, export_model
from kerasvk.export.serving import WARMUP_FILE, read_warmup


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("lenet5", {}),
        ("vae", dict(input_shape=(16, 16, 1), latent_dim=2, filters=(4, 8), dense_units=16)),
        ("gpt", dict(vocab="abcdefgh \n", context_length=16, num_layers=1, num_heads=2, dim=16)),
    ],
)
def test_every_signature_warms_up_and_checks(name, kwargs, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    model = kerasvk.build(name, **kwargs)
    path = export_model(model, base=tmp_path, name=name)
    loaded = tf.saved_model.load(str(path))
    requests = read_warmup(path)
    assert set(requests) == set(loaded.signatures)  # one warm-up request per signature
    record = next(iter(tf.data.TFRecordDataset(str(path / WARMUP_FILE))))
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    assert log.predict_log.request.model_spec.name == name
    report = check_export(path)
    assert set(report["warmup"]) == set(loaded.signatures)
    if name == "lenet5":
        assert {"serving_default", "serving_uint8", "serving_bytes"} <= set(report["warmup"])
        assert report["warmup"]["serving_default"]["top_k_scores"] == (1, 5)
        x = np.random.default_rng(0).random((3, 32, 32, 1)).astype("float32")
        assert check_export(path, model=model, inputs=x)["max_abs_diff"] < 1e-5


def test_models_config_lists_every_model_under_the_base(tmp_path):
    model = kerasvk.build("simple_cnn", input_shape=(16, 16, 1), num_classes=3, dense_units=8)
    export_model(model, base=tmp_path, name="a")
    export_model(model, base=tmp_path, name="b")
    export_model(model, base=tmp_path, name="a")  # a second version: still one entry
    text = (tmp_path / "models.config").read_text()
    assert text.startswith("model_config_list {") and text.count("config {") == 2
    for n in ("a", "b"):
        assert f'name: "{n}"' in text and f'base_path: "{(tmp_path / n).resolve()}"' in text
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["1", "2"]


def test_check_export_names_a_broken_signature(tmp_path):
    from kerasvk.export.serving import write_warmup

    model = kerasvk.build("simple_cnn", input_shape=(16, 16, 1), num_classes=3, dense_units=8)
    path = export_model(model, base=tmp_path, name="m")
    write_warmup(path, "m", {"serving_default": {"images": np.zeros((1, 8, 8, 1), "float32")}})  # wrong size
    with pytest.raises(ValueError, match="signature 'serving_default' fails on its warm-up request"):
        check_export(path)


def test_classifier_uint8_signature_equals_float(tmp_path):
    model = kerasvk.build("simple_cnn", input_shape=(16, 16, 3), num_classes=3, dense_units=8)
    loaded = tf.saved_model.load(str(export_model(model, base=tmp_path, name="m")))
    pixels = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    spec = loaded.signatures["serving_uint8"].structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and tuple(spec.shape) == (None, 16, 16, 3)
    as_uint8 = loaded.signatures["serving_uint8"](images=tf.constant(pixels))
    as_float = loaded.signatures["serving_default"](images=tf.constant(pixels.astype("float32") / 255.0))
    np.testing.assert_allclose(as_uint8["probabilities"].numpy(), as_float["probabilities"].numpy(), atol=1e-6)
    np.testing.assert_allclose(as_float["probabilities"].numpy(), np.asarray(model(pixels / 255.0)), atol=1e-5)
    np.testing.assert_array_equal(as_uint8["class_id"].numpy(), as_float["class_id"].numpy())


def test_classifier_outputs_are_stable_without_class_names_and_checked_with_them(tmp_path):
    import json

    model = kerasvk.build("simple_cnn", input_shape=(8, 8, 1), num_classes=3, dense_units=4)
    path = export_model(model, base=tmp_path, name="m")
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serving_uint8"](images=tf.zeros((2, 8, 8, 1), tf.uint8))
    assert set(out) == {"probabilities", "class_id", "score", "class_name", "top_k_scores", "top_k_ids", "top_k_classes"}
    ids = out["class_id"].numpy()
    assert [c.decode() for c in out["class_name"].numpy()] == [str(i) for i in ids]  # the ids as names
    assert out["top_k_classes"].shape == (2, 3)
    assert json.loads((path / "assets.extra" / "class_names.json").read_text()) == ["0", "1", "2"]
    named = export_model(model, base=tmp_path, name="m", class_names=["cat", "dog", "owl"])
    assert json.loads((named / "assets.extra" / "class_names.json").read_text()) == ["cat", "dog", "owl"]
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    assert not check_export(named, model=model, inputs=x)["errors"]  # the names come from the export
    with pytest.raises(ValueError, match="class_name: 2 of 2 values differ"):
        check_export(named, model=model, inputs=x, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"one name per class: the model has 3 classes. Received: 2 names"):
        export_model(model, base=tmp_path, name="n", class_names=["a", "b"])
    assert not (tmp_path / "n").exists()


def test_unsupported_models_are_refused_before_anything_is_written(tmp_path):
    import keras

    class Unbuilt(keras.Model):  # subclassed, called once: no model.inputs to make a signature from
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Unbuilt()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="has no known inputs. Export a functional model"):
        export_model(sub, base=tmp_path, name="sub")
    inputs = keras.Input((8, 8, None))  # a dynamic channel count: nothing to decode an image to
    dyn = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match=r"channel \(last\) dimension is known"):
        export_model(dyn, base=tmp_path, name="dyn")
    with pytest.raises(ValueError, match="takes a Keras model or a run folder"):
        kerasvk.export(42, base=tmp_path)
    assert not any(tmp_path.iterdir())  # no model folder, no models.config


def test_generic_models_get_their_own_names_not_made_up_ones(tmp_path):
    import keras

    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    both = keras.Model({"a": a, "b": b}, [keras.layers.Dense(2, name="mean")(joined), keras.layers.Dense(1, name="spread")(joined)])
    loaded = tf.saved_model.load(str(kerasvk.export(both, base=tmp_path, name="both")))
    fn = loaded.signatures["serving_default"]
    assert set(fn.structured_input_signature[1]) == {"a", "b"} and set(fn.structured_outputs) == {"mean", "spread"}
    x = {"a": np.ones((2, 4), "float32"), "b": np.zeros((2, 3), "float32")}
    ref = both(x)
    np.testing.assert_allclose(fn(**x)["mean"].numpy(), np.asarray(ref[0]), atol=1e-6)
    unnamed = keras.Input((None, None, 3))  # Keras calls it keras_tensor_N / input_layer_N
    conv = keras.Model(unnamed, keras.layers.Conv2D(2, 3, name="features")(unnamed))
    fn = tf.saved_model.load(str(export_model(conv, base=tmp_path, name="conv"))).signatures["serving_default"]
    assert list(fn.structured_input_signature[1]) == ["inputs"] and list(fn.structured_outputs) == ["output"]


def test_an_auto_version_taken_meanwhile_goes_to_the_next_number(tmp_path, monkeypatch):
    from kerasvk.export import serving

    model = kerasvk.build("simple_cnn", input_shape=(8, 8, 1), num_classes=2, dense_units=4)
    real, calls = serving.write_warmup, []

    def racing(folder, *args):  # another exporter renames its version 1 into place while this one writes
        if not calls:
            (tmp_path / "m" / "1").mkdir()
            (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"theirs")
        calls.append(folder)
        return real(folder, *args)

    monkeypatch.setattr(serving, "write_warmup", racing)
    path = export_model(model, base=tmp_path, name="m")
    assert path.name == "2" and len(calls) == 2
    assert (tmp_path / "m" / "1" / "saved_model.pb").read_bytes() == b"theirs"  # never overwritten
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]  # no temporary left behind


def test_check_export_resolves_a_model_folder_and_lists_signatures(tmp_path):
    from kerasvk.export import resolve_version

    model = kerasvk.build("simple_cnn", input_shape=(8, 8, 1), num_classes=2, dense_units=4)
    export_model(model, base=tmp_path, name="m")
    export_model(model, base=tmp_path, name="m")
    assert resolve_version(tmp_path / "m") == tmp_path / "m" / "2"  # the highest, as TF Serving serves
    assert resolve_version(tmp_path / "m", 1) == tmp_path / "m" / "1"
    with pytest.raises(FileNotFoundError, match="No SavedModel version 5 under .*Available versions: 1, 2"):
        resolve_version(tmp_path / "m", 5)
    with pytest.raises(ValueError, match="is a version folder"):
        resolve_version(tmp_path / "m" / "1", 2)
    report = check_export(tmp_path / "m", model=model, inputs=np.zeros((2, 8, 8, 1), "float32"))
    assert report["path"] == str(tmp_path / "m" / "2")
    assert report["signatures"]["serving_uint8"]["inputs"] == {"images": {"dtype": "uint8", "shape": [-1, 8, 8, 1]}}
    assert report["signatures"]["serving_default"]["outputs"]["top_k_classes"] == {"dtype": "string", "shape": [-1, 2]}
    assert set(report["keras"]) == {"serving_default", "serving_uint8", "serving_bytes"} and not report["errors"]
    other = kerasvk.build("simple_cnn", input_shape=(8, 8, 1), num_classes=2, dense_units=4)  # other weights
    report = check_export(tmp_path / "m", model=other, inputs=np.full((2, 8, 8, 1), 0.5, "float32"),
                          raise_on_mismatch=False)
    assert any("disagrees with the Keras model in 'serving_bytes': probabilities" in e for e in report["errors"])
    with pytest.raises(ValueError, match="disagrees with the Keras model"):
        check_export(tmp_path / "m", model=other, inputs=np.full((2, 8, 8, 1), 0.5, "float32"))


def test_export_format_tflite_is_litert(monkeypatch, capsys):
    from kerasvk import cli
    from kerasvk.export import litert

    seen = []

    def fake(run, out=None):
        seen.append((run, out))
        return {"keras_accuracy": 1.0, "files": {}}

    monkeypatch.setattr(litert, "export_run_litert", fake)
    assert cli.main(["export", "some_run", "--format", "tflite"]) == 0
    assert cli.main(["export", "some_run", "--format", "litert", "--out", "o"]) == 0
    assert seen == [("some_run", None), ("some_run", "o")]
    assert cli.main(["export", "some_run", "--format", "onnx"]) == 2
    assert "invalid choice: 'onnx'" in capsys.readouterr().err
