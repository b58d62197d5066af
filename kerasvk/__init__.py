"""kerasvk: classic and modern deep-learning architectures for images and sequences, on Keras 3.

The top level stays light: ``import kerasvk`` does not import TensorFlow. Submodules
(``kerasvk.data``, ``kerasvk.training``, ``kerasvk.evaluation``, ``kerasvk.export``, ``kerasvk.plots``,
``kerasvk.layers``) load on first attribute access.

``kerasvk.build(name, **kw)`` builds any registered model; ``kerasvk.backbone(name, levels=("P3", "P4",
"P5"))`` the feature extractor of a zoo CNN with its pyramid feature maps (strides 8, 16, 32) as a dict.
"""

from __future__ import annotations

import importlib

from kerasvk.registry import backbone, build, list_models, load_model, model_info, register

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("data", "layers", "models", "training", "evaluation", "export", "plots", "cli")

__all__ = ["backbone", "build", "list_models", "load_model", "model_info", "register", "__version__", *_LAZY_SUBMODULES]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"kerasvk.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kerasvk' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
