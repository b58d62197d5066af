"""The one trainer: every task trains, reports, exports and predicts through the same run folder.

Offline by construction: ``weights="imagenet"`` appears only in cases rejected before anything is built,
and conftest's autouse fixture makes keras' ``get_file`` raise, so an accidental download fails the test.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from kerasvk.cli import main

RUN_FILES = ("run.json", "history.json", "metrics.json", "model.keras", "training_log.csv", "plots/history.png")


def _check_run_folder(run, task):
    for f in RUN_FILES:
        assert (run / f).is_file(), f
    config = json.loads((run / "run.json").read_text())
    assert config["task"] == task
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss" if "loss" in history else "d_loss"]) == 1
    assert not list(run.glob(".tmp-*")) and not (run / "backup").exists()
    return config, json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize(
    "model,data,extra,signatures,metric",
    [
        ("dcgan", "digits", ["--set", "g_filters=[8,4]", "--set", "d_filters=[4,8]", "--set", "latent_dim=4"],
         {"generate", "sample"}, "test_d_loss"),
        ("vae", "digits", ["--image-size", "16", "--set", "filters=[4,8]", "--set", "dense_units=16",
                           "--set", "latent_dim=2"], {"encode", "decode", "sample", "anomaly_score"},
         "test_negative_elbo_nats"),
        ("gpt", "TEXT", ["--seq-len", "16", "--set", "num_layers=1", "--set", "dim=16", "--set", "num_heads=2"],
         {"generate"}, "test_bits_per_char"),
    ],
)
def test_cli_trains_and_exports_every_task(model, data, extra, signatures, metric, tmp_path, capsys):
    run = tmp_path / model
    if data == "TEXT":  # a small slice of the embedded pydoc text keeps the held-out evaluation quick
        from kerasvk.data.text import pydoc_corpus

        (tmp_path / "doc.txt").write_text(pydoc_corpus()[:20000])
        data = f"file:{tmp_path / 'doc.txt'}"
    argv = ["train", model, "--data", data, "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16"]
    assert main([*argv, *extra, "--out", str(run), "--quiet"]) == 0
    assert metric in capsys.readouterr().out
    config, metrics = _check_run_folder(run, "generative" if model != "gpt" else "autoregressive")
    assert np.isfinite(metrics[metric])
    samples = run / ("samples.txt" if model == "gpt" else "plots/samples.png")
    assert samples.is_file() and samples.stat().st_size > 100
    assert main(["export", str(run), "--base", str(tmp_path / "sm")]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path.endswith(f"{model}/1")
    loaded = tf.saved_model.load(path)
    assert signatures <= set(loaded.signatures)
    assert main(["evaluate", str(run)]) == 0
    assert metric in capsys.readouterr().out


def _photos(folder):
    """scikit-learn's two sample photos written to disk as JPEG and PNG (real images, no download)."""
    from sklearn.datasets import load_sample_images

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(load_sample_images().images):
        for fmt in ("jpeg", "png"):
            p = folder / f"photo{i}.{fmt}"
            p.write_bytes(tf.io.encode_jpeg(img).numpy() if fmt == "jpeg" else tf.io.encode_png(img).numpy())
            paths.append(p)
    return paths


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    from kerasvk.training import train

    out = tmp_path_factory.mktemp("runs") / "sc"
    train("simple_cnn", "patterns:classes=5,count=100", epochs=1, batch_size=16, out=out, verbose=0,
          model_kwargs={"dense_units": 16})
    return out


def test_predict_prints_the_keras_models_top_k(classifier_run, tmp_path, capsys):
    import keras

    import kerasvk
    from kerasvk.training.tasks import top_k_table

    paths = _photos(tmp_path / "photos" / "x")
    assert main(["predict", str(classifier_run), *map(str, paths), "--top-k", "3"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    # reference: the model on the photos as folder:PATH training data would see them
    ds = keras.utils.image_dataset_from_directory(tmp_path / "photos", image_size=(32, 32), shuffle=False,
                                                  batch_size=8, labels=None)
    images = np.concatenate([np.clip(np.round(b.numpy()), 0, 255) for b in ds]) / 255.0
    files = sorted(paths, key=lambda p: p.name)  # image_dataset_from_directory's alphanumeric order
    model = kerasvk.load_model(classifier_run / "model.keras")
    config = json.loads((classifier_run / "run.json").read_text())
    table = top_k_table(model.predict(images, verbose=0), config["class_names"], 3)
    expected = {str(f): [name for name, _ in row] for f, row in zip(files, table)}
    assert len(printed) == len(paths)
    for line in printed:
        f, _, rest = line.partition(": ")
        assert [item.rsplit(" ", 1)[0] for item in rest.split(", ")] == expected[f]
    # the exported SavedModel answers the same (only the export is used)
    assert main(["export", str(classifier_run), "--base", str(tmp_path / "sm")]) == 0
    export = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["predict", export, *map(str, paths)]) == 0
    from_export = capsys.readouterr().out.strip().splitlines()
    for line in from_export:  # image bytes decoded and resized inside the exported graph
        f, _, rest = line.partition(": ")
        assert [item.rsplit(" ", 1)[0] for item in rest.split(", ")] == expected[f]


def test_predict_bad_inputs(classifier_run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    for argv, match in [
        (["predict", str(classifier_run), str(bad)], "Cannot decode"),
        (["predict", str(classifier_run), str(tmp_path / "missing.png")], "Image file not found"),
        (["predict", str(classifier_run)], "needs image files"),
        (["predict", str(tmp_path / "norun"), str(bad)], "Run folder not found"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and "\n" not in err


def test_fine_tune_frozen_trains_only_the_head(classifier_run, tmp_path):
    import kerasvk
    from kerasvk.training import train

    out = tmp_path / "frozen"
    train("simple_cnn", "patterns:classes=5,count=100", epochs=1, batch_size=16, out=out, verbose=0,
          weights=str(classifier_run), fine_tune="frozen", lr=0.05)
    base = kerasvk.load_model(classifier_run / "model.keras")
    tuned = kerasvk.load_model(out / "model.keras")
    encoder = tuned.get_layer("encoder")
    trained = {w.path for w in tuned.trainable_weights}
    assert trained == {w.path for w in tuned.get_layer("predictions").weights}
    for layer in encoder.layers:  # every encoder weight is the pretrained one, unchanged
        for w, ref in zip(layer.get_weights(), base.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(w, ref)
    config = json.loads((out / "run.json").read_text())
    assert config["fine_tune"] == "frozen" and config["weights"] == str(classifier_run)
    # top-N with L2-SP unfreezes encoder blocks
    out2 = tmp_path / "top1"
    train("simple_cnn", "patterns:classes=5,count=100", epochs=1, batch_size=16, out=out2, verbose=0,
          weights=str(classifier_run), fine_tune="top-1", l2sp=1e-3)
    assert len(kerasvk.load_model(out2 / "model.keras").trainable_weights) > 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(fine_tune="frozen"), "--fine-tune needs --weights"),
        (dict(weights="/nonexistent.weights.h5"), "No weights at"),
        (dict(weights="imagenet", fine_tune="half"), "Unknown fine-tune mode 'half'. Allowed: frozen, top-N"),
        (dict(weights="imagenet", l2sp=0.1), "use it with --fine-tune top-N or full"),
        (dict(precision="float8"), "Unknown precision"),
        (dict(epochs=0), "epochs must be an integer >= 1"),
        (dict(val_split=0.5, test_split=0.5), "val_split \\+ test_split must be < 1"),
    ],
)
def test_trainer_rejects_bad_options_before_creating_anything(kwargs, match, tmp_path):
    from kerasvk.training import train

    with pytest.raises((ValueError, FileNotFoundError), match=match):
        train("simple_cnn", "patterns:classes=5,count=100", out=tmp_path / "run", verbose=0, **kwargs)
    assert not (tmp_path / "run").exists()


def test_task_specific_errors(tmp_path):
    from kerasvk.training import train

    with pytest.raises(ValueError, match="Unknown text source 'digits' for gpt. Allowed: pydoc"):
        train("gpt", "digits", out=tmp_path / "g")
    with pytest.raises(ValueError, match="dcgan trains two optimizers"):
        train("dcgan", "digits", schedule="cosine", out=tmp_path / "g")
    with pytest.raises(ValueError, match="are for classifiers; vae is a generative model"):
        train("vae", "digits", weights="imagenet", out=tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_divergence_is_never_reported_as_success(tmp_path, capsys):
    run = tmp_path / "div"
    argv = ["train", "simple_cnn", "--data", "patterns:classes=5,count=60", "--lr", "1e30", "--optimizer", "sgd",
            "--epochs", "2", "--batch-size", "16", "--set", "dense_units=8", "--out", str(run), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("kerasvk: error: Training diverged") and "\n" not in err
    assert not (run / "model.keras").exists()
    assert json.loads((run / "metrics.json").read_text())["diverged"] is True


def test_data_help_lists_every_embedded_source():
    from kerasvk.cli import DATA_HELP
    from kerasvk.data.sources import EMBEDDED

    for name in (*EMBEDDED, "folder:PATH", "tfds:NAME", "pydoc", "file:PATH", "audio"):
        assert name in DATA_HELP, name


class _Crash(Exception):
    pass


def test_rerun_of_a_killed_run_continues_its_whole_record(tmp_path):
    """A run that dies after epoch 2 of 4, rerun with the same out, ends with the record of all 4 epochs."""
    import keras

    from kerasvk.training import train

    class CrashAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise _Crash()

    kw = dict(epochs=4, batch_size=16, verbose=0, model_kwargs={"dense_units": 8})
    run = tmp_path / "run"
    with pytest.raises(_Crash):
        train("simple_cnn", "patterns:classes=5,count=60", out=run, callbacks=[CrashAfter()], **kw)
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 2  # kept epoch by epoch
    report = train("simple_cnn", "patterns:classes=5,count=60", out=run, **kw)
    attempts = json.loads((run / "attempts.json").read_text())["attempts"]
    assert report["epochs_run"] == 4 and [a["resumed_after_epoch"] for a in attempts] == [0, 2]
    assert report["train_seconds"] == pytest.approx(sum(a["train_seconds"] for a in attempts), abs=0.011)
    history = json.loads((run / "history.json").read_text())
    assert all(len(v) == 4 for v in history.values())
    rows = (run / "training_log.csv").read_text().strip().splitlines()
    assert rows[0].split(",")[0] == "epoch" and [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 4
    assert not (run / "backup").exists()
