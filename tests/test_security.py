"""Security: no code in model files, no writes outside the run/export folder, no writes through symlinks.

- ``.keras`` files load with ``safe_mode=True``: no kerasvk source uses a ``Lambda`` layer (scanned here;
  ``tests/test_models_common.py`` saves every registered model and loads it back with ``safe_mode=True``),
  and ``kerasvk.load_model`` refuses a file with a Lambda anywhere in it, explaining ``safe_mode``.
- Names that become folders never escape their base: export names (``io.safe_name``, also in
  ``test_bad_inputs.py``) and the default run folder ``runs/MODEL-DATA`` for any data source string.
- Inside a run folder nothing is written through a symlink: a symlinked file is replaced by the new file
  (``os.replace`` on the link), the file it pointed to is left as it was; a symlinked folder (where a write
  *into* it would land elsewhere) is refused before anything is written, with one line on the CLI.
"""

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest

import kerasvk
from kerasvk import io
from kerasvk.cli import main

PACKAGE = Path(kerasvk.__file__).parent
DATA = "patterns:classes=5,count=40"
TINY = {"dense_units": 4}


def test_no_lambda_layer_anywhere_in_kerasvk():
    """Every custom op is a named Layer subclass (DESIGN.md convention 6): no ``Lambda`` in the package."""
    uses = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name == "Lambda":
                uses.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not uses, uses


def test_a_lambda_nested_in_a_submodel_is_refused_naming_safe_mode(tmp_path):
    import keras

    inner = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)], name="inner")
    outer = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3), inner])
    outer.save(tmp_path / "nested.keras")
    with pytest.raises(ValueError) as e:
        kerasvk.load_model(tmp_path / "nested.keras")
    msg = str(e.value)
    assert "contains a Lambda layer" in msg and "safe_mode=True" in msg and "safe_mode=False" in msg
    assert main(["evaluate", str(tmp_path)]) == 2  # not a run folder: refused before anything is loaded


@pytest.mark.parametrize("source", ["../../etc", "/abs/path", "folder:../../x", "tfds:..", "file:/etc/passwd",
                                    "a/../../b", "..", "folder:/", "x\\..\\y"])
def test_default_run_folder_is_one_name_under_runs(source):
    from kerasvk.training.trainer import default_run_dir

    path = default_run_dir("lenet5", source)
    assert path.parent == Path("runs") and path.name.startswith("lenet5-")
    assert io.safe_name(path.name, "run name") == path.name


def _outside(tmp_path):
    """Files and a folder outside the run folder, and what they hold."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    for name in ("history.json", "training_log.csv", "metrics.json", "model.keras", "run.json"):
        (outside / name).write_text(f"not yours: {name}")
    return outside, {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}


def test_symlinked_files_in_a_run_folder_are_replaced_not_followed(tmp_path):
    from kerasvk.training import train

    outside, before = _outside(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    for name in ("history.json", "training_log.csv", "metrics.json", "model.keras", "run.json"):
        (run / name).symlink_to(outside / name)
    train("simple_cnn", DATA, epochs=1, batch_size=16, out=run, verbose=0, model_kwargs=TINY)
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before  # nothing outside changed
    for name in ("history.json", "training_log.csv", "metrics.json", "model.keras", "run.json"):
        assert (run / name).is_file() and not (run / name).is_symlink(), name
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 1


@pytest.mark.parametrize("folder", ["plots", "checkpoints", "logs", "backup"])
def test_a_symlinked_folder_in_a_run_folder_is_refused_before_any_write(folder, tmp_path, capsys):
    outside, before = _outside(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / folder).symlink_to(outside / "dir", target_is_directory=True)
    argv = ["train", "simple_cnn", "--data", DATA, "--epochs", "1", "--set", "dense_units=4", "--out", str(run), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kerasvk: error: --out") and f"{run / folder} -> {outside / 'dir'}" in err and "\n" not in err
    assert sorted(p.name for p in run.iterdir()) == [folder]  # nothing written
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before
    assert not any((outside / "dir").iterdir())


@pytest.fixture
def run_folder(tmp_path):
    """A run folder (an untrained simple_cnn and its run.json): enough for evaluate/export to start."""
    run = tmp_path / "sc"
    model = kerasvk.build("simple_cnn", input_shape=(16, 16, 1), num_classes=5, dense_units=4)
    io.save_model(model, run / "model.keras")
    io.write_json({"model": "simple_cnn", "task": "classification", "data": DATA, "image_size": [16, 16],
                   "channels": 1, "class_names": [str(i) for i in range(5)], "seed": 0, "batch_size": 8,
                   "val_split": 0.1, "test_split": 0.2, "model_kwargs": {"dense_units": 4}}, run / "run.json")
    return run


def test_evaluate_predict_and_litert_refuse_a_symlinked_folder_in_the_run(run_folder, tmp_path):
    from kerasvk.training import evaluate_run, predict_run

    outside, before = _outside(tmp_path)
    (run_folder / "plots").symlink_to(outside / "dir", target_is_directory=True)
    with pytest.raises(ValueError, match="symlinked folder"):
        evaluate_run(run_folder)
    png = tmp_path / "a.png"
    import tensorflow as tf

    png.write_bytes(tf.io.encode_png(np.zeros((16, 16, 1), "uint8")).numpy())
    with pytest.raises(ValueError, match="symlinked folder"):
        predict_run(run_folder, [png])
    (run_folder / "plots").unlink()
    (run_folder / "litert").symlink_to(outside / "dir", target_is_directory=True)
    assert main(["export", str(run_folder), "--format", "litert"]) == 2
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in run_folder.iterdir()) == ["litert", "model.keras", "run.json"]


def test_export_never_writes_through_a_symlink_or_outside_its_base(run_folder, tmp_path, capsys):
    from kerasvk.training import export_run

    outside, _ = _outside(tmp_path)
    base = tmp_path / "saved_models"
    base.mkdir()
    (base / "simple_cnn").symlink_to(outside / "dir", target_is_directory=True)
    with pytest.raises(ValueError, match="is a symlink"):
        export_run(run_folder, base=base)
    for name in ("../escape", "..", str(tmp_path / "abs"), "a/b"):
        assert main(["export", str(run_folder), "--base", str(base), "--name", name]) == 2
        assert "plain name" in capsys.readouterr().err
    assert not any((outside / "dir").iterdir()) and sorted(os.listdir(base)) == ["simple_cnn"]
    assert not (tmp_path / "escape").exists() and not (tmp_path / "abs").exists()
