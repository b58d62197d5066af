"""The train → evaluate → export path end to end, at a tiny size."""

import json

import numpy as np
import pytest

from kerasvk.export import check_export, export_model, next_version
from kerasvk.training import evaluate_run, export_run, train

DATA = "patterns:classes=5,count=100"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r1"
    train("simple_cnn", DATA, epochs=2, batch_size=16, out=out, verbose=0, model_kwargs={"dense_units": 16})
    return out


def test_run_folder_contents(run_dir):
    for f in ("run.json", "history.json", "metrics.json", "model.keras", "training_log.csv"):
        assert (run_dir / f).is_file(), f
    for p in ("history.png", "confusion_matrix.png", "predictions.png"):
        assert (run_dir / "plots" / p).stat().st_size > 1000
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["loss"]) == 2 and "val_accuracy" in history
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 20
    assert np.array(metrics["confusion_matrix"]).sum() == 20
    assert not list(run_dir.glob(".tmp-*")) and not (run_dir / "backup").exists()


def test_same_seed_same_metrics(run_dir, tmp_path):
    out = tmp_path / "again"
    report = train("simple_cnn", DATA, epochs=2, batch_size=16, out=out, verbose=0, model_kwargs={"dense_units": 16})
    first = json.loads((run_dir / "metrics.json").read_text())
    assert report["confusion_matrix"] == first["confusion_matrix"]
    h1 = json.loads((run_dir / "history.json").read_text())
    h2 = json.loads((out / "history.json").read_text())
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-6)


def test_evaluate_reproduces_metrics(run_dir):
    report = evaluate_run(run_dir, write=False)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(saved["accuracy"])
    assert report["confusion_matrix"] == saved["confusion_matrix"]


def test_export_versions_and_equal_probabilities(run_dir, tmp_path):
    import keras
    import tensorflow as tf

    from kerasvk import data as kdata

    base = tmp_path / "sm"
    p1 = export_run(run_dir, base=base)
    p2 = export_run(run_dir, base=base)
    assert (p1.name, p2.name) == ("1", "2") and next_version(base, "simple_cnn") == 3
    assert not [p for p in (base / "simple_cnn").iterdir() if not p.name.isdigit()]
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    x = next(iter(kdata.load(DATA, batch_size=8).test))[0].numpy()
    served = tf.saved_model.load(str(p1)).signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"].numpy(), model(x).numpy(), atol=1e-6)
    np.testing.assert_array_equal(served["class_id"].numpy(), model(x).numpy().argmax(-1))
    names = [b.decode() for b in served["class_name"].numpy()]
    assert names == [kdata.PATTERN_CLASSES_5[i] for i in served["class_id"].numpy()]
    assert check_export(p1, model=model, inputs=x)["max_abs_diff"] < 1e-6


def test_export_never_overwrites(run_dir, tmp_path):
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    export_model(model, base=tmp_path, name="m", version=3)
    with pytest.raises(ValueError, match="never overwritten"):
        export_model(model, base=tmp_path, name="m", version=3)
    with pytest.raises(ValueError, match="letters, digits"):
        export_model(model, base=tmp_path, name="bad name")


def test_bad_run_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="Run folder not found"):
        evaluate_run(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "run.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.keras is missing"):
        evaluate_run(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match="No SavedModel"):
        check_export(tmp_path)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        train("lenet5", DATA, epochs=1, optimizer="adagrad-x", out=tmp_path / "o", verbose=0)
    with pytest.raises(ValueError, match="vae .generative. does not take augment"):
        train("vae", DATA, epochs=1, augment="standard", out=tmp_path / "o", verbose=0)
    with pytest.raises(ValueError, match="an existing file"):
        (tmp_path / "file").write_text("x")
        train("lenet5", DATA, epochs=1, out=tmp_path / "file", verbose=0)
    with pytest.raises(ValueError, match="warmup must be an integer >= 0"):
        train("lenet5", DATA, epochs=1, warmup=-1, out=tmp_path / "o", verbose=0)
    assert not (tmp_path / "o").exists()  # a rejected run creates nothing


def test_train_options_resolve_explicit_then_model_recipe_then_global():
    from kerasvk.training.trainer import TRAIN_DEFAULTS, resolve_train_options

    lenet = resolve_train_options("lenet5")
    assert lenet["epochs"] == 40 and lenet["label_smoothing"] == 0.1 and "fill=constant" in lenet["augment"]
    assert resolve_train_options("lenet5", epochs=3, label_smoothing=0.0)["epochs"] == 3
    assert resolve_train_options("lenet5", label_smoothing=0.0)["label_smoothing"] == 0.0
    assert resolve_train_options("simple_cnn") == {**TRAIN_DEFAULTS, "optimizer": "adam", "lr": 1e-3, "augment_on": "host"}
    assert resolve_train_options("dcgan")["optimizer"] is None  # a GAN compiles its own two optimizers
    assert resolve_train_options("gpt")["optimizer"] == "adamw" and "seq_len" in resolve_train_options("gpt")
    with pytest.raises(ValueError, match="Unknown training option"):
        resolve_train_options("lenet5", epoch=3)
