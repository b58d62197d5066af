"""SavedModel export in the layout TF Serving reads: ``BASE/NAME/VERSION/``.

``kerasvk.export(model_or_run, base="saved_models", name=None, version=None)`` exports a Keras model or a
run folder made by ``kerasvk train`` (the package itself is callable; ``kerasvk.export.export`` is the same
function). ``check_export`` verifies an export; ``kerasvk.export.litert`` writes LiteRT files for devices.
"""

import sys
import types

from kerasvk.export.saved_model import (
    add_serving_endpoints,
    check_export,
    describe_signatures,
    export_model,
    load_exported,
    next_version,
    resolve_version,
    serving_functions,
)


def export(model_or_run, base="saved_models", name=None, version=None, **kwargs):
    """Export a Keras model, or the model of a run folder (a path), to ``base/name/version``; return that path.

    A run's export gets what its task knows (a classifier's class names); ``name`` defaults to the run's
    model name (a model's own ``name``), ``version`` to the next free integer. ``kwargs`` go to
    ``export_model`` (``class_names``, ``from_logits``) for a model.
    """
    import os

    if isinstance(model_or_run, (str, os.PathLike)):
        if kwargs:
            raise ValueError(f"A run folder is exported with what its run.json says; options {sorted(kwargs)} are for "
                             "a Keras model. Received: a run folder.")
        from kerasvk.training.trainer import export_run

        return export_run(model_or_run, base=base, name=name, version=version)
    import keras

    if not isinstance(model_or_run, keras.Model):
        raise ValueError("kerasvk.export takes a Keras model or a run folder (a path). "
                         f"Received: {type(model_or_run).__name__}")
    return export_model(model_or_run, base=base, name=name, version=version, **kwargs)


class _CallableModule(types.ModuleType):
    """``kerasvk.export(...)`` calls ``export``: the package and its main function share one name."""

    def __call__(self, model_or_run, base="saved_models", name=None, version=None, **kwargs):
        return export(model_or_run, base=base, name=name, version=version, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["export", "export_model", "next_version", "load_exported", "check_export", "add_serving_endpoints",
           "serving_functions", "describe_signatures", "resolve_version"]
