"""The GAN and VAE recipes run end to end through the one trainer at a tiny size (their run folders have
the trainer's layout plus the recipe's own files)."""

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
