"""SavedModel export in the layout TF Serving reads: ``BASE/NAME/VERSION/``.

``kerasvk.export(model_or_run, base="saved_models", name=None, version=None)`` exports a Keras model or a
run folder made by ``kerasvk train`` (the package itself is callable; ``kerasvk.export.export`` is the same
function). ``check_export`` verifies an export; ``kerasvk.export.litert`` writes LiteRT files for devices.
"""

import sys
import types

from kerasvk.export.api import export
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


class _CallableModule(types.ModuleType):
    """``kerasvk.export(...)`` calls ``export``: the package and its main function share one name."""

    def __call__(self, model_or_run, base="saved_models", name=None, version=None, **kwargs):
        return export(model_or_run, base=base, name=name, version=version, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["export", "export_model", "next_version", "load_exported", "check_export", "add_serving_endpoints",
           "serving_functions", "describe_signatures", "resolve_version"]
