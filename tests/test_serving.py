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
