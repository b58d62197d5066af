"""ImageNet weights for the zoo models, through their keras.applications twins.

Every zoo model that keras.applications also has is built layer for layer like its twin (tested: the
twin's ``get_weights()`` load with ``set_weights`` and both compute the same function). A family
declares the twin when it registers, ``variant(..., weights_loader=KerasTwin("ResNet50"))``, and
``kerasvk.build(name, weights="imagenet")`` then builds the twin with ``weights="imagenet"`` (keras
downloads the file on first use and caches it under ``~/.keras/models``; online users only) and copies
its weights over. (``weights=PATH`` to a ``.weights.h5`` file is handled by the registry for every model.)

Input conventions follow the weights: EfficientNet and MobileNetV3 rescale inside the model
(``input_max=1.0`` for [0, 1] images, 255 for raw pixels; either way the same weights), the others
expect what keras' ``preprocess_input`` of their family gives.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KerasTwin:
    """``weights_loader`` of a zoo model built layer for layer like ``keras.applications.<keras_name>``."""

    keras_name: str

    def constructor(self):
        """The keras.applications constructor (looked up on each call, so tests can stub it)."""
        import keras

        return getattr(keras.applications, self.keras_name)

    def __call__(self, name, weights, build_kwargs):
        """Validate before anything is built or fetched; return ``fn(model) -> model`` copying the weights.

        ``build_kwargs`` are the builder's defaults merged with the caller's arguments.
        """
        if weights != "imagenet":
            raise ValueError(
                "weights must be None, 'imagenet' or a path to a .weights.h5 file. "
                f"Received: weights={weights!r}"
            )
        include_top = build_kwargs.get("include_top", True)
        if include_top and build_kwargs.get("num_classes") != 1000:
            raise ValueError(
                f"{name}: imagenet weights with include_top=True need num_classes=1000. "
                f"Received: num_classes={build_kwargs.get('num_classes')}. "
                "Use include_top=False (and kerasvk.training.transfer for a new head)."
            )
        shape = build_kwargs.get("input_shape")
        if shape is not None and shape[-1] != 3:
            raise ValueError(
                f"{name}: imagenet weights need 3 input channels. Received: input_shape={tuple(shape)}"
            )

        def copy_from_twin(model):
            reference = self.constructor()(
                weights="imagenet",
                input_shape=tuple(model.inputs[0].shape[1:]),
                include_top=include_top,
                pooling=build_kwargs.get("pooling"),
            )
            model.set_weights(reference.get_weights())
            return model

        return copy_from_twin
