"""Pretrained weights for the zoo models, through their keras.applications twins.

Every zoo model that keras.applications also has is built layer for layer like its twin (tested: the
twin's ``get_weights()`` load with ``set_weights`` and both compute the same function). So
``kerasvk.build(name, weights="imagenet")`` builds the twin with ``weights="imagenet"`` (keras downloads
the file on first use and caches it under ``~/.keras/models``; online users only) and copies its weights
over. ``weights=PATH`` loads a ``.weights.h5`` file saved from a kerasvk model of the same shape.

Input conventions follow the weights: EfficientNet and MobileNetV3 rescale inside the model
(``input_max=1.0`` for [0, 1] images, 255 for raw pixels; either way the same weights), the others
expect what keras' ``preprocess_input`` of their family gives (:data:`PREPROCESSING`).
"""

from __future__ import annotations

import os

# kerasvk name → keras.applications constructor name
KERAS_TWINS = {
    "resnet50": "ResNet50",
    "resnet101": "ResNet101",
    "resnet152": "ResNet152",
    "densenet121": "DenseNet121",
    "densenet169": "DenseNet169",
    "densenet201": "DenseNet201",
    "mobilenet_v1": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_small": "MobileNetV3Small",
    "mobilenet_v3_large": "MobileNetV3Large",
    "vgg16": "VGG16",
    "vgg19": "VGG19",
    **{f"efficientnet_b{i}": f"EfficientNetB{i}" for i in range(8)},
}

# what the imagenet weights of each family expect as input (keras.applications.<module>.preprocess_input)
PREPROCESSING = {
    "resnet": "keras.applications.resnet.preprocess_input (caffe: BGR, ImageNet mean subtracted, 0-255)",
    "densenet": "keras.applications.densenet.preprocess_input (torch: [0, 1] then ImageNet mean/std)",
    "mobilenet_v1": "keras.applications.mobilenet.preprocess_input ([-1, 1])",
    "mobilenet_v2": "keras.applications.mobilenet_v2.preprocess_input ([-1, 1])",
    "vgg": "keras.applications.vgg16.preprocess_input (caffe: BGR, ImageNet mean subtracted, 0-255)",
    "efficientnet": "none: the model rescales inside (input_max=1.0 for [0, 1], 255 for raw pixels)",
    "mobilenet_v3": "none: the model rescales inside (input_max=1.0 for [0, 1], 255 for raw pixels)",
}


def keras_twin(name):
    """The keras.applications constructor of zoo model ``name``; ``ValueError`` if it has none."""
    import keras

    if name not in KERAS_TWINS:
        raise ValueError(
            f"weights='imagenet' needs a keras.applications twin; {name!r} has none. "
            f"Models with imagenet weights: {', '.join(sorted(KERAS_TWINS))}."
        )
    return getattr(keras.applications, KERAS_TWINS[name])


def check_weights(name, weights, build_kwargs):
    """Validate ``weights`` for ``kerasvk.build(name, **build_kwargs)`` before anything is built or fetched.

    Returns ``"imagenet"`` or the weights file path.
    """
    if isinstance(weights, (str, os.PathLike)) and str(weights) != "imagenet":
        path = os.fspath(weights)
        if not path.endswith(".weights.h5"):
            raise ValueError(
                f"weights must be None, 'imagenet' or a path to a .weights.h5 file. Received: weights={weights!r}"
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No weights file at {path}.")
        return path
    if weights != "imagenet":
        raise ValueError(
            f"weights must be None, 'imagenet' or a path to a .weights.h5 file. Received: weights={weights!r}"
        )
    keras_twin(name)
    from kerasvk.registry import get_spec

    kw = {**get_spec(name).defaults, **build_kwargs}
    if kw.get("include_top", True) and kw.get("num_classes") != 1000:
        raise ValueError(
            f"{name}: imagenet weights with include_top=True need num_classes=1000. "
            f"Received: num_classes={kw.get('num_classes')}. "
            "Use include_top=False (and kerasvk.training.transfer for a new head)."
        )
    shape = kw.get("input_shape")
    if shape is not None and shape[-1] != 3:
        raise ValueError(f"{name}: imagenet weights need 3 input channels. Received: input_shape={tuple(shape)}")
    return "imagenet"


def load_weights(model, name, weights, *, build_kwargs):
    """Fill ``model`` (just built by ``kerasvk.build(name, **build_kwargs)``) from ``weights``, which
    :func:`check_weights` has accepted. Returns ``model``."""
    if weights != "imagenet":
        try:
            model.load_weights(weights)
        except Exception as e:
            raise ValueError(
                f"Cannot load {weights} into {name}: {type(e).__name__}: {str(e).splitlines()[0]}"
            ) from None
        return model
    reference = keras_twin(name)(
        weights="imagenet",
        input_shape=tuple(model.inputs[0].shape[1:]),
        include_top=build_kwargs.get("include_top", True),
        pooling=build_kwargs.get("pooling"),
    )
    model.set_weights(reference.get_weights())
    return model
