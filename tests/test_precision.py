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


def test_mixed_float16_distiller_and_dann_scale_the_loss():
    """The recipes' own-step models built under the policy (keras' Distiller, DANN) get keras' loss scaling
    from compile too (their compute_loss runs inside keras' train_step, which applies it)."""
    from kerasvk.training.distillation import compile_distiller, make_distiller
    from kerasvk.training.domain_adaptation import build_dann

    with precision_policy("mixed_float16"):
        teacher = kerasvk.build("lenet5", input_shape=(32, 32, 1), num_classes=3)
        student = kerasvk.build("lenet5", input_shape=(32, 32, 1), num_classes=3)
        distiller = compile_distiller(make_distiller(teacher, student), jit_compile=False)
        dann = build_dann("lenet5", 3, input_shape=(32, 32, 1), domain_units=8)
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    dann.compile(optimizer="sgd")  # as fit_dann does
    assert isinstance(dann.optimizer, keras.optimizers.LossScaleOptimizer)


def test_recipe_helpers_keep_outputs_float32_under_mixed_policies():
    """What the recipes build around the registry's models keeps float32 outputs under mixed_bfloat16 (a
    transfer classifier, DANN's two heads, an ensemble, the logits twin of a classifier ending in a float32
    Activation, for distillation); the VAE's scores and GPT's cached generation (their layers' methods, not
    called through keras) run."""
    from kerasvk.training.distillation import to_logits
    from kerasvk.training.domain_adaptation import build_dann
    from kerasvk.training.ensemble import ensemble
    from kerasvk.training.transfer import transfer_classifier

    x = np.zeros((2, 32, 32, 1), "float32")
    with precision_policy("mixed_bfloat16"):
        a = kerasvk.build("lenet5", input_shape=(32, 32, 1), num_classes=3)
        b = kerasvk.build("lenet5", input_shape=(32, 32, 1), num_classes=3)
        conv_head = keras.Sequential([  # as the zoo's 1x1-conv head ends: Activation("softmax", float32)
            keras.Input((32, 32, 1)), keras.layers.Conv2D(3, 1), keras.layers.GlobalAveragePooling2D(),
            keras.layers.Activation("softmax", name="predictions", dtype="float32")])
        models = {
            "transfer": transfer_classifier(a, 4, cut_at="c5_conv", pooling="flatten"),
            "ensemble": ensemble([a, b], "average"),
            "logits": to_logits(conv_head),
        }
        dann = build_dann("lenet5", 3, input_shape=(32, 32, 1), domain_units=8)
        vae = kerasvk.build("vae", **get_spec("vae").test_kwargs)
        gpt = kerasvk.build("gpt", **get_spec("gpt").test_kwargs)
    for name, model in models.items():
        assert keras.backend.standardize_dtype(model(x).dtype) == "float32", name
    for name, value in dann((x, x)).items():
        assert keras.backend.standardize_dtype(value.dtype) == "float32", name
    images = np.full((2, *vae.image_shape), 0.5, "float32")
    assert np.all(np.isfinite(vae.negative_elbo(images, num_samples=2)))
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(vae.anomaly_score(images))))
    assert gpt.get_layer("block1").compute_dtype == "bfloat16"
    assert isinstance(gpt.generate(gpt.default_prompt(), 4, seed=1, xla=False)[0], str)


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


def test_generative_models_reload_under_the_policy_they_were_built_with(tmp_path):
    """VAE/GAN/PixelCNN/WaveNet/GPT rebuild their layers in ``from_config``: a ``.keras`` file of a model built
    under mixed_bfloat16 reloads computing in bfloat16 (it came back float32), with the same outputs, and the
    global policy is left as it was; a float32 model's config does not change."""
    import keras
    import numpy as np

    import kerasvk
    from kerasvk.registry import get_spec
    from tests.helpers import example_batch, outputs_of

    for name in ("vae", "dcgan", "gpt", "pixelcnn", "wavenet"):
        spec = get_spec(name)
        assert "dtype_policy" not in kerasvk.build(name, **spec.test_kwargs).get_config(), name
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            model = kerasvk.build(name, **spec.test_kwargs)
        finally:
            keras.config.set_dtype_policy("float32")
        model.save(tmp_path / f"{name}.keras")
        again = keras.saving.load_model(tmp_path / f"{name}.keras")
        assert keras.config.dtype_policy().name == "float32", name
        assert again.dtype_policy.name == "mixed_bfloat16", name
        assert any(layer.compute_dtype == "bfloat16" for layer in again._flatten_layers(include_self=False)), name
        x, _ = example_batch(spec, model, batch_size=2)
        for a, b in zip(outputs_of(model, x), outputs_of(again, x)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
