"""LiteRT export: float32 matches Keras, int8 (full-integer PTQ) stays close and is smaller, bad input is clear."""

import numpy as np
import pytest

import kerasvk
from kerasvk.export import litert


@pytest.fixture(scope="module")
def digits_images():
    from kerasvk.data import digits

    x, y, _ = digits(image_size=(32, 32), channels=1)
    return (x[:96].astype("float32") / 255.0), y[:96]


@pytest.mark.parametrize("name, kwargs", [("lenet5", {}), ("simple_cnn", {"input_shape": (32, 32, 3)})])
def test_float_matches_keras_and_int8_is_smaller(name, kwargs, tmp_path):
    model = kerasvk.build(name, num_classes=4, **kwargs)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, *model.inputs[0].shape[1:])).astype("float32")
    paths = litert.export_litert(model, tmp_path / "lite", representative=x, class_names=list("abcd"))
    assert sorted(paths) == ["float32", "int8"]
    ref = np.asarray(model(x, training=False))
    np.testing.assert_allclose(litert.predict_litert(paths["float32"], x), ref, atol=1e-5)
    q = litert.predict_litert(paths["int8"], x)
    assert q.shape == ref.shape and np.all(np.isfinite(q))
    assert np.max(np.abs(q - ref)) < 0.15  # int8 activations: small, bounded error on calibration-range inputs
    assert paths["int8"].stat().st_size < 0.5 * paths["float32"].stat().st_size
    assert (tmp_path / "lite" / "labels.txt").read_text().split() == list("abcd")


def test_int8_accuracy_on_real_digits(digits_images, tmp_path):
    import keras

    x, y = digits_images
    model = kerasvk.build("lenet5", num_classes=10)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    keras_acc = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    paths = litert.export_litert(model, tmp_path, representative=x[:32])
    f = litert.evaluate_litert(paths["float32"], x, y)
    i = litert.evaluate_litert(paths["int8"], x, y)
    assert keras_acc > 0.9
    assert f["accuracy"] == pytest.approx(keras_acc)
    assert i["accuracy"] >= keras_acc - 0.05


def test_bad_inputs(tmp_path):
    lenet = kerasvk.build("lenet5", num_classes=3)
    with pytest.raises(ValueError, match="Allowed: float32, int8"):
        litert.convert(lenet, "int4")
    with pytest.raises(ValueError, match="representative images"):
        litert.convert(lenet, "int8")
    with pytest.raises(ValueError, match="representative images"):
        litert.convert(lenet, "int8", representative=np.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match="image classifier"):
        litert.convert(kerasvk.build("vae", input_shape=(8, 8, 1), filters=(4,), latent_dim=2, dense_units=8))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="existing file"):
        litert.export_litert(lenet, f, quantizations=("float32",))
    with pytest.raises(FileNotFoundError, match="No LiteRT model"):
        litert.predict_litert(tmp_path / "none.tflite", np.zeros((1, 32, 32, 1)))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(ValueError, match="Cannot load LiteRT model"):
        litert.predict_litert(bad, np.zeros((1, 32, 32, 1)))
    good = litert.export_litert(lenet, tmp_path / "ok", quantizations=("float32",))["float32"]
    with pytest.raises(ValueError, match=r"takes images of shape \(N, 32, 32, 1\)"):
        litert.predict_litert(good, np.zeros((1, 28, 28, 1)))


def test_cli_export_litert(tmp_path, capsys):
    import json

    from kerasvk.cli import main

    run = tmp_path / "run"
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--format", "litert"]) == 0
    printed = capsys.readouterr().out
    assert "model_float32.tflite" in printed and "model_int8.tflite" in printed
    report = json.loads((run / "litert" / "litert.json").read_text())
    assert report["files"]["float32"]["top1_agreement_with_keras"] == 1.0
    assert report["files"]["int8"]["size_bytes"] < report["files"]["float32"]["size_bytes"]
    assert report["test_images"] > 300
