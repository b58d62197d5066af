"""The model side of the uint8 input path: image batches are scaled to float32 [0, 1] in the train step.

``kerasvk train`` uses it for classifiers, VAEs and GANs (their custom train steps and ``compute_loss`` get
the scaled batch). With ``kerasvk.data.load(..., train_dtype="uint8")`` training batches leave ``tf.data``
as uint8 (a quarter of the bytes of float32 to produce, hand over and copy to the accelerator); the model's
compiled train/test/predict steps then scale them with the same ``cast · 1/255`` the host pipeline's
``to_float`` applies, on the device, so the numbers are those of the float32 path (tests check the weights
after a few steps). Batches that are already float pass through unchanged (validation/test splits stay
float32).

Done in the step rather than with a layer at the model input so the saved model is unchanged: it takes
float32 images in [0, 1], and its export keeps ``serving_default`` (float32) and ``serving_uint8``
(uint8, the same ``/ 255`` in the serving graph).
"""

from __future__ import annotations

STEPS = ("train_step", "test_step", "predict_step")


def scale_uint8(x):
    """uint8 tensors (any nesting) → float32 ``x · (1/255)``; everything else unchanged."""
    import keras
    from keras import ops

    def one(t):
        if t is not None and keras.backend.standardize_dtype(getattr(t, "dtype", "float32")) == "uint8":
            return ops.cast(t, "float32") * (1.0 / 255.0)
        return t

    return keras.tree.map_structure(one, x)


def _first_spec(element_spec):
    import keras

    first = element_spec[0] if isinstance(element_spec, (tuple, list)) else element_spec
    return keras.tree.flatten(first)


def input_dtype(element_spec) -> str:
    """``"uint8"`` when a dataset's inputs (its first element part) are uint8 images, else ``"float32"``."""
    specs = _first_spec(element_spec)
    return "uint8" if any(getattr(s, "dtype", None) is not None and s.dtype.name == "uint8" for s in specs) else "float32"


def scale_uint8_inputs(model, element_spec=None) -> bool:
    """Make ``model``'s train/test/predict steps scale uint8 inputs on the device; returns whether it did.

    With ``element_spec`` (the training dataset's), only when its inputs are uint8. The steps are wrapped
    on this model object (before ``fit`` makes its train function); nothing is saved with the model.
    """
    if element_spec is not None and input_dtype(element_spec) != "uint8":
        return False
    if getattr(model, "_kerasvk_scales_uint8", False):
        return True
    for name in STEPS:
        step = getattr(model, name)

        def scaled(*args, step=step):  # (data) on TensorFlow/torch, (state, data) on JAX: data comes last
            *head, data = args
            if isinstance(data, tuple) and data:
                return step(*head, (scale_uint8(data[0]), *data[1:]))
            return step(*head, scale_uint8(data))

        setattr(model, name, scaled)
    model._kerasvk_scales_uint8 = True
    return True


def augment_in_step(model, layers) -> None:
    """Apply augmentation ``layers`` (``Augmenter.layers(value_range=(0, 1))``) to the images of every
    *train* step, inside the compiled step, on the device (``kerasvk train --augment-on device``).

    Wrapped on this model object like :func:`scale_uint8_inputs`, and called *before* it, so the batch is
    scaled to [0, 1] first and then augmented; evaluation and prediction are untouched and nothing is saved
    with the model. The layers' ``SeedGenerator`` states are part of the run (``RunBackup`` backs them up:
    see ``step_layers``). TensorFlow backend only: a JAX train step is a pure function of its state, which
    these layers' random state is not part of.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"--augment-on device needs the TensorFlow backend (this is "
                         f"{keras.backend.backend()}); use --augment-on host.")
    layers = tuple(layers)
    if not layers:
        return
    step = model.train_step

    def augmented(data, step=step):
        x, rest = (data[0], data[1:]) if isinstance(data, tuple) and data else (data, None)
        for layer in layers:
            x = layer(x, training=True)
        return step((x, *rest) if rest is not None else x)

    model.train_step = augmented
    # in __dict__, not an attribute keras tracks: the layers are not part of the saved model
    model.__dict__["_kerasvk_step_layers"] = step_layers(model) + layers


def step_layers(model) -> tuple:
    """The layers :func:`augment_in_step` runs in ``model``'s train step (their random state is the run's)."""
    return tuple(model.__dict__.get("_kerasvk_step_layers", ()))
