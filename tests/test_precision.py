"""Mixed precision and XLA in the trainer: float32 outputs under mixed policies, keras' loss scaling,
mixed_float16 refused where no GPU computes float16, and tiny runs with mixed_bfloat16 + --jit-compile."""

import json

import keras
import numpy as np
import pytest

import kerasvk
from kerasvk.registry import get_spec
from kerasvk.training.trainer import float16_device, precision_policy
from tests.helpers import example_batch

POLICIES = ("mixed_float16", "mixed_bfloat16")


def _outputs(model, x):
    out = model(x, training=False)
    return dict(out) if isinstance(out, dict) else dict(enumerate(keras.tree.flatten(out)))


# a classifier (dense head), a classifier with the 1×1-conv head, a detector, two generative models
@pytest.mark.parametrize("name", ["lenet5", "mobilenet_v3_small", "yolo", "vae", "gpt"])
@pytest.mark.parametrize("policy", POLICIES)
def test_outputs_stay_float32_under_mixed_policies(name, policy):
    spec = get_spec(name)
    kw = dict(spec.test_kwargs)
    if spec.task == "classification":
        kw.setdefault("num_classes", 3)
    with precision_policy(policy):
        model = kerasvk.build(name, **kw)
    assert keras.config.dtype_policy().name == "float32"  # restored after the build
    compute = {layer.compute_dtype for layer in model._flatten_layers(include_self=False)}
    assert policy.split("_")[1] in compute  # the body really computes in half precision
    assert all(w.dtype == "float32" for w in model.weights)  # variables stay float32
    x, _ = example_batch(spec, model)
    for key, value in _outputs(model, x).items():
        assert keras.backend.standardize_dtype(value.dtype) == "float32", (name, key)
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value)))


def test_mixed_float16_compile_scales_the_loss():
    """keras 3 wraps the optimizer of a mixed_float16 model in a LossScaleOptimizer itself; the GAN,
    which steps two optimizers in its own train_step, wraps both."""
    with precision_policy("mixed_float16"):
        clf = kerasvk.build("lenet5", input_shape=(32, 32, 1), num_classes=3)
        gan = kerasvk.build("dcgan", **get_spec("dcgan").test_kwargs)
    clf.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert isinstance(clf.optimizer, keras.optimizers.LossScaleOptimizer)
    gan.compile()
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    plain = kerasvk.build("lenet5", input_shape=(32, 32, 1), num_classes=3)
    plain.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert not isinstance(plain.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.skipif(float16_device(), reason="this machine has a GPU that computes float16")
def test_mixed_float16_without_a_float16_gpu_is_a_clear_error(tmp_path, capsys):
    from kerasvk.cli import main
    from kerasvk.training import train

    with pytest.raises(ValueError, match="mixed_float16 needs a GPU.*Use mixed_bfloat16"):
        train("lenet5", "digits", precision="mixed_float16", out=tmp_path / "run", epochs=1)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    code = main(["train", "lenet5", "--data", "digits", "--precision", "mixed_float16", "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "mixed_bfloat16" in err and "Traceback" not in err
    assert not (tmp_path / "cli").exists()


@pytest.fixture
def _keep_op_determinism():
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    yield
    if before:
        tf_config.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


def test_bfloat16_run_with_jit_compile_trains(tmp_path, capsys, _keep_op_determinism):
    from kerasvk.cli import main

    run = tmp_path / "run"
    # XLA compiles the train and test steps (LLVM: seconds even for a tiny model): the smallest network and SGD
    argv = ["train", "simple_cnn", "--data", "digits", "--image-size", "8", "--set", "filters=[4]", "--set",
            "dense_units=8", "--optimizer", "sgd", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8",
            "--precision", "mixed_bfloat16", "--jit-compile", "--quiet", "--out", str(run)]
    assert main(argv) == 0
    config = json.loads((run / "run.json").read_text())
    assert config["precision"] == "mixed_bfloat16" and config["jit_compile"] is True
    history = json.loads((run / "history.json").read_text())
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["val_loss"][0])
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert keras.backend.standardize_dtype(model(np.zeros((1, 8, 8, 1), "float32")).dtype) == "float32"


def test_jit_compile_of_a_model_without_xla_kernels_is_refused(tmp_path, _keep_op_determinism):
    """Faster R-CNN's proposal NMS has no XLA kernel: --jit-compile is refused before the run folder exists."""
    from kerasvk.training import train

    tiny = {k: v for k, v in get_spec("faster_rcnn").test_kwargs.items() if k not in ("input_shape", "num_classes")}
    with pytest.raises(ValueError, match="faster_rcnn cannot be XLA-compiled.*rpn_proposals.*without --jit-compile"):
        train("faster_rcnn", "shapes:count=8,size=32", jit_compile=True, model_kwargs=tiny, epochs=1, warmup=0, batch_size=4,
              out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
