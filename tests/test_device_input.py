"""The uint8 input path: uint8 batches out of tf.data, scaled to [0, 1] in the model's train step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasvk
from kerasvk.data import Augmenter, make_pipeline
from kerasvk.training.device_input import input_dtype, scale_uint8, scale_uint8_inputs

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (48, 8, 8, 3), dtype=np.uint8)
Y = RNG.integers(0, 3, 48).astype("int32")


def test_array_pipeline_gives_the_per_example_pipelines_batches():
    per_example = make_pipeline(tf.data.Dataset.from_tensor_slices((X, Y)), batch_size=16, training=True, seed=3)
    arrays = make_pipeline((X, Y), batch_size=16, training=True, seed=3)
    for _ in range(2):  # two epochs: the reshuffle follows the same seeded order too
        for (a, b), (c, d) in zip(per_example, arrays, strict=True):
            np.testing.assert_array_equal(a.numpy(), c.numpy())
            np.testing.assert_array_equal(b.numpy(), d.numpy())
    u8 = make_pipeline((X, Y), batch_size=16, training=True, seed=3, image_dtype="uint8")
    assert input_dtype(u8.element_spec) == "uint8" and input_dtype(arrays.element_spec) == "float32"
    for (a, _), (c, _) in zip(make_pipeline((X, Y), batch_size=16, training=True, seed=3), u8, strict=True):
        assert c.dtype == tf.uint8
        np.testing.assert_array_equal(scale_uint8(c).numpy(), a.numpy())  # the same cast · 1/255, bit for bit
    with pytest.raises(ValueError, match="image_dtype must be one of float32, uint8"):
        make_pipeline((X, Y), image_dtype="float16")


def test_uint8_augmentation_is_the_float_one_rounded():
    def batches(image_dtype):
        ds = make_pipeline((X, Y), batch_size=16, training=True, seed=0, augment=Augmenter("standard", seed=1),
                           image_dtype=image_dtype)
        return [x.numpy() for x, _ in ds]

    unit, u8 = batches("float32"), batches("uint8")  # (the compiled steps the training test below reuses)
    assert unit[0].dtype == np.float32 and u8[0].dtype == np.uint8
    for f, u in zip(unit, u8, strict=True):  # the same draws, rounded to whole pixel values
        assert np.abs(u.astype("float32") - f * 255.0).max() <= 0.5 + 1e-3
    plain = [x.numpy() for x, _ in make_pipeline((X, Y), batch_size=16, training=True, seed=0, image_dtype="uint8")]
    assert all(np.abs(p.astype("float32") - u).mean() > 1.0 for p, u in zip(plain, u8))  # it did augment
    images, labels = X[:16], np.eye(3, dtype="float32")[Y[:16]]
    mixed, _ = Augmenter("mixup=0.2", seed=4).apply(images, labels, dtype="uint8")  # mixing: rounded at the end
    assert mixed.dtype == tf.uint8


def _model(initial=None, smooth=False):
    if smooth:  # no ReLU/max-pool kinks: a rounding-sized input change gives a rounding-sized weight change
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    else:
        model = kerasvk.build("simple_cnn", input_shape=(8, 8, 3), num_classes=3, filters=(4,), dense_units=8, dropout=0.0)
    if initial is not None:
        model.set_weights(initial)
    return model


def _weights_after_steps(initial, image_dtype, augment=None, steps=3):
    model = _model(initial, smooth=augment is not None)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    aug = None if augment is None else Augmenter(augment, seed=1)
    ds = make_pipeline((X, Y), batch_size=16, training=True, seed=0, augment=aug, image_dtype=image_dtype)
    assert scale_uint8_inputs(model, ds.element_spec) == (image_dtype == "uint8")
    model.fit(ds.repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("augment,atol", [(None, 1e-7), ("standard", 1e-3)])
def test_scaling_in_the_train_step_trains_like_the_host_pipeline(augment, atol):
    """Same weights after a few SGD steps (lr 0.1): exactly, for simple_cnn, without augmentation (the same
    ops, moved into the step); with augmentation within 1e-3 for a softmax regression (the uint8 batches are
    the float ones rounded to 1/255 steps; the weights move by ~0.1). In a CNN a rounded pixel can flip a
    max-pool or ReLU, so there the runs drift apart like any two runs with slightly different data."""
    initial = _model(smooth=augment is not None).get_weights()
    host = _weights_after_steps(initial, "float32", augment)
    device = _weights_after_steps(initial, "uint8", augment)
    assert max(np.abs(h - w0).max() for h, w0 in zip(host, initial)) > 1e-2  # the steps did change the weights
    for h, d in zip(host, device):
        np.testing.assert_allclose(d, h, atol=atol, rtol=0)


@pytest.mark.parametrize("name,kwargs", [
    ("vae", {"latent_dim": 2, "filters": (4,), "dense_units": 8, "seed": 1}),
    ("cvae", {"latent_dim": 2, "filters": (4,), "dense_units": 8, "num_classes": 3, "seed": 1}),
    ("dcgan", {"latent_dim": 4, "g_filters": (8,), "d_filters": (4,), "seed": 1}),
])
def test_generative_models_train_alike_on_uint8_batches(name, kwargs):
    """``kerasvk train`` hands VAEs and GANs uint8 batches too (their own train steps and ``compute_loss``
    see the scaled images): the weights after three steps equal the float32 pipeline's, bit for bit."""
    from kerasvk.training.trainer import build_before_fit, set_seed

    gray = X[..., :1]
    conditional = "num_classes" in kwargs

    def weights(image_dtype):
        set_seed(0)
        model = kerasvk.build(name, input_shape=(8, 8, 1), **kwargs)
        if name == "dcgan":
            model.compile()  # its own two Adam optimizers
        else:
            model.compile(optimizer=keras.optimizers.Adam(1e-2))
        ds = make_pipeline((gray, Y), batch_size=16, training=True, seed=0, image_dtype=image_dtype)
        ds = ds.map(lambda x, y: ((x, y),) if conditional else (x,))
        assert scale_uint8_inputs(model, ds.element_spec) == (image_dtype == "uint8")
        build_before_fit(model, ds.element_spec)
        model.fit(ds.repeat(), steps_per_epoch=3, epochs=1, verbose=0)
        return [w.numpy() for w in model.weights]

    host, device = weights("float32"), weights("uint8")
    for h, d in zip(host, device, strict=True):
        np.testing.assert_array_equal(d, h)


def test_augmentation_inside_the_train_step(tmp_path):
    """``--augment-on device``: tf.data hands out the plain uint8 batches and the train step augments them
    (scaled first) with the config's layers: the run repeats itself, differs from an unaugmented one, records
    ``augment_on``, and the layers' random state is the run's (backed up with it); evaluation is untouched."""
    import json

    from kerasvk.training import load_run_model, train
    from kerasvk.training.callbacks import seed_generator_states
    from kerasvk.training.device_input import augment_in_step, step_layers

    kw = dict(epochs=1, batch_size=16, verbose=0, model_kwargs={"dense_units": 4})
    data = "patterns:classes=5,count=40"

    def weights(out, **options):
        train("simple_cnn", data, out=tmp_path / out, **kw, **options)
        return [w.numpy() for w in load_run_model(tmp_path / out)[0].weights]

    first = weights("a", augment="standard", augment_on="device")
    again = weights("b", augment="standard", augment_on="device")
    plain = weights("c")
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)
    assert max(float(np.abs(x - y).max()) for x, y in zip(first, plain)) > 1e-4  # it did augment
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["augment_on"] == "device" and run["augment"] == "rotation=15,zoom=0.2,brightness=0.2,contrast=0.2"
    assert json.loads((tmp_path / "c" / "run.json").read_text())["augment_on"] == "host"

    model = _model()
    before = len(seed_generator_states(model))
    layers = Augmenter("standard", seed=1).layers(value_range=(0, 1))
    augment_in_step(model, layers)
    assert step_layers(model) == tuple(layers) and len(seed_generator_states(model)) == before + 2
    assert not any(w.path.startswith("augment_") for w in model.weights)  # not part of the saved model


def test_augment_on_device_refusals():
    from kerasvk.training import train

    data = "patterns:classes=5,count=40"
    with pytest.raises(ValueError, match="augment_on must be one of host, device"):
        train("simple_cnn", data, augment_on="gpu")
    with pytest.raises(ValueError, match="cutmix/mixup mix labels too, so they run on the host"):
        train("simple_cnn", data, augment="standard,mixup=0.2", augment_on="device")
    with pytest.raises(ValueError, match=r"Unknown training option\(s\) \['augment_on'\]"):
        train("vae", "digits", augment_on="device")
