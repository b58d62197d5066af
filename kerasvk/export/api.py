"""``kerasvk.export(model_or_run, ...)``: one entry point for a Keras model or a run folder.

A module of its own (not the package ``__init__``): it loads runs through ``kerasvk.training``, which
itself imports ``kerasvk.export``; the package imports this submodule, so the import graph has no cycle.
"""

from __future__ import annotations

from kerasvk.export.saved_model import export_model


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
