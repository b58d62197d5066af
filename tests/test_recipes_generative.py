"""The GAN and VAE recipes run end to end through the one trainer at a tiny size (their run folders have
the trainer's layout plus the recipe's own files); every recipe takes --strategy, --precision and
--jit-compile."""

import importlib.util
import json
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _recipe(name):
    spec = importlib.util.spec_from_file_location(name, RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAINER_FILES = (
    "run.json", "history.json", "metrics.json", "model.keras", "training_log.csv", "plots/history.png",
)


@pytest.mark.slow
def test_train_gan_recipe(tmp_path):
    out = tmp_path / "gan"
    m = _recipe("train_gan").main(
        ["--out", str(out), "--epochs", "1", "--classifier-epochs", "1", "--num-samples", "100"]
    )
    for f in (*TRAINER_FILES, "quality.json", "plots/samples_start.png", "plots/samples_end.png"):
        assert (out / f).is_file(), f
    assert m["epochs"] == 1 and m["test"]["epochs_run"] == 1
    for key in ("start", "end"):
        assert m[key]["fid"] >= 0 and 1.0 <= m[key]["is"] <= 10.0
    assert json.loads((out / "run.json").read_text())["model_kwargs"]["latent_dim"] == 32


@pytest.mark.slow
def test_train_vae_recipe(tmp_path):
    out = tmp_path / "vae"
    m = _recipe("train_vae").main(["--out", str(out), "--epochs", "1"])
    for f in (*TRAINER_FILES, "recipe_metrics.json", "plots/interpolation.png", "plots/latent_scatter.png",
              "plots/anomaly_scores.png"):
        assert (out / f).is_file(), f
    for f in TRAINER_FILES:
        assert (out / "digits0-8" / f).is_file(), f
    assert m["test_negative_elbo_nats"] > 0
    assert 0.0 <= m["anomaly"]["roc_auc_9_vs_0_8"] <= 1.0
    run = json.loads((out / "run.json").read_text())
    assert run["optimizer"] == "adam" and run["lr"] == 2e-3


def test_every_recipe_takes_strategy(capsys, monkeypatch):
    """Every recipe has ``--strategy`` (issue 15): a name not among the four is argparse's error, on one line
    (``RecipeParser``); one the recipe cannot run (or ``multiworker`` without ``TF_CONFIG``) is one line, exit 2, before any work."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    recipes = sorted(RECIPES.glob("*.py"))
    assert len(recipes) >= 11
    for path in recipes:
        main = _recipe(path.stem).main
        with pytest.raises(SystemExit) as e:
            main(["--strategy", "nosuch"])
        assert e.value.code == 2, path.stem
        err = capsys.readouterr().err
        assert "invalid choice: 'nosuch'" in err and err.count("\n") == 1, (path.stem, err)  # no usage block
        with pytest.raises(SystemExit) as e:
            main(["--strategy", "multiworker"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, (path.stem, err)
        assert "TF_CONFIG" in err or "Allowed: default, mirrored" in err, (path.stem, err)


def test_augmentation_comparison_refuses_what_it_cannot_run(capsys):
    """Too few epochs for its warm-up (a traceback from the schedule before) and a model that is not a
    classifier: one line, exit 2, before any work."""
    main = _recipe("augmentation_comparison").main
    for argv, says in ((["--epochs", "2"], "--epochs must be at least 3"), (["--model", "vae"], "must be a classifier"),
                       (["--model", "nosuch"], "Unknown model name 'nosuch'")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and says in err, (argv, err)


def test_recipe_with_its_own_fit_runs_mirrored(tmp_path, capsys):
    """A recipe that runs its own ``fit`` builds, compiles and trains under ``--strategy mirrored`` (one CPU
    replica here) and writes its files."""
    out = tmp_path / "pixelcnn"
    _recipe("train_pixelcnn").main(["--size", "8", "--filters", "8", "--blocks", "1", "--max-epochs", "1",
                                    "--samples", "2", "--run-dir", str(out), "--strategy", "mirrored"])
    for f in ("samples.png", "metrics.json", "history.json", "pixelcnn.keras"):
        assert (out / f).is_file(), f
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1


def test_every_recipe_takes_precision_and_jit_compile(capsys):
    """Every recipe has ``--precision`` and ``--jit-compile`` (issue 15): a policy not among the three is
    argparse's usage error; mixed_float16 without a float16 GPU is one line, exit 2, before any work."""
    from kerasvk.training.trainer import float16_device

    no_float16 = not float16_device()
    recipes = sorted(RECIPES.glob("*.py"))
    assert len(recipes) >= 11
    for path in recipes:
        main = _recipe(path.stem).main
        with pytest.raises(SystemExit) as e:
            main(["--precision", "float8", "--jit-compile"])
        assert e.value.code == 2, path.stem
        err = capsys.readouterr().err
        assert "invalid choice: 'float8'" in err and err.count("\n") == 1, (path.stem, err)
        if no_float16:
            with pytest.raises(SystemExit) as e:
                main(["--precision", "mixed_float16", "--jit-compile"])
            err = capsys.readouterr().err
            assert e.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, (path.stem, err)
            assert "error: precision mixed_float16 needs a GPU" in err, (path.stem, err)
            assert "mixed_bfloat16" in err, (path.stem, err)


def test_recipe_trains_in_mixed_bfloat16_with_xla(tmp_path, capsys, monkeypatch, _keep_op_determinism):
    """A recipe with its own ``fit`` builds under the mixed_bfloat16 policy, XLA-compiles its steps and
    records both in its metrics.json; its model computes in bfloat16 and outputs float32 (XLA: seconds)."""
    import keras
    import numpy as np

    import kerasvk

    built, build = [], kerasvk.build
    monkeypatch.setattr(kerasvk, "build", lambda *a, **kw: built.append(build(*a, **kw)) or built[-1])
    out = tmp_path / "pixelcnn"
    _recipe("train_pixelcnn").main(["--size", "8", "--filters", "8", "--blocks", "1", "--max-epochs", "1",
                                    "--samples", "2", "--run-dir", str(out), "--precision", "mixed_bfloat16",
                                    "--jit-compile"])
    assert "precision mixed_bfloat16, jit_compile True" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["precision"] == "mixed_bfloat16" and metrics["jit_compile"] is True
    assert np.isfinite(metrics["test_bits_per_dim"]) and keras.config.dtype_policy().name == "float32"
    (model,) = built
    assert model.jit_compile is True and isinstance(model.optimizer, keras.optimizers.Adam)
    assert "bfloat16" in {layer.compute_dtype for layer in model._flatten_layers(include_self=False)}
    assert keras.backend.standardize_dtype(model(np.zeros((1, 8, 8, 1), "float32")).dtype) == "float32"
    assert (out / "pixelcnn.keras").is_file()
