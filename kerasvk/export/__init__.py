"""SavedModel export in the layout TF Serving reads: ``BASE/NAME/VERSION/``."""

from kerasvk.export.saved_model import (
    add_serving_endpoints,
    check_export,
    export_model,
    load_exported,
    next_version,
)

__all__ = ["export_model", "next_version", "load_exported", "check_export", "add_serving_endpoints"]
