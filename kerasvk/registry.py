"""Model registry: every architecture is found by its name here.

A builder registers itself with a decorator::

    @register("resnet50", task="classification", family="resnet")
    def resnet50(input_shape=(224, 224, 3), num_classes=1000, **kw): ...

and users call ``kerasvk.build("resnet50", num_classes=10)``. Model modules under
``kerasvk.models`` are imported on first use, so ``import kerasvk`` stays cheap and adding a
model means writing one file (or one function): nothing else needs to list it.

Each registration also says how to test the model at a tiny size (``test_kwargs``) and, for models
whose inputs are not images, how to make an example batch (``example_inputs``). The shared test
helpers in ``tests/helpers.py`` run over every registered name using only this information.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

TASKS = ("classification", "detection", "generative", "autoregressive")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one named model."""

    name: str
    builder: Callable[..., Any]
    task: str
    family: str
    description: str = ""
    # Keyword arguments that build a tiny, fast version (used by the shared tests).
    test_kwargs: dict = field(default_factory=dict)
    # Optional ``fn(model, batch_size, seed) -> (x, y)`` for models whose inputs are not float images;
    # ``y`` may be None for self-supervised models that take no targets in ``fit``.
    example_inputs: Callable | None = None
    # Optional ``fn(**kwargs) -> dict`` of extra facts for ``model_info`` (e.g. scaling coefficients).
    info: Callable | None = None
    # The training recipe ``kerasvk train`` uses for this model unless told otherwise (epochs, batch_size,
    # lr, optimizer, augment, schedule, warmup, label_smoothing, l2); see ``kerasvk.training.TRAIN_DEFAULTS``.
    train_defaults: dict = field(default_factory=dict)

    @property
    def defaults(self) -> dict:
        """The builder's keyword defaults (input shape, classes, ...)."""
        sig = inspect.signature(self.builder)
        return {
            k: p.default
            for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
        }

    @property
    def default_input_shape(self):
        shape = self.defaults.get("input_shape")
        return tuple(shape) if shape is not None else None


_REGISTRY: dict[str, ModelSpec] = {}
_LOADED = False
_PARAM_CACHE: dict[str, int] = {}


def register(
    name: str,
    *,
    task: str,
    family: str,
    description: str = "",
    test_kwargs: dict | None = None,
    example_inputs: Callable | None = None,
    info: Callable | None = None,
    train_defaults: dict | None = None,
):
    """Decorator registering ``fn`` as the builder of model ``name``."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r} for model {name!r}. Allowed tasks: {', '.join(TASKS)}.")

    def decorator(fn):
        if name in _REGISTRY and _REGISTRY[name].builder is not fn:
            raise ValueError(f"Model name {name!r} is registered twice ({_REGISTRY[name].builder} and {fn}).")
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=fn,
            task=task,
            family=family,
            description=doc,
            test_kwargs=dict(test_kwargs or {}),
            example_inputs=example_inputs,
            info=info,
            train_defaults=dict(train_defaults or {}),
        )
        return fn

    return decorator


def variant(
    family_fn,
    name,
    *,
    task="classification",
    family,
    fixed,
    defaults=None,
    description="",
    test_kwargs=None,
    example_inputs=None,
    info=None,
    train_defaults=None,
):
    """Register a thin variant of a family builder (DESIGN convention 1), for any task.

    ``variant(resnet, "resnet50", family="resnet", fixed={"depth": 50})`` registers a builder whose
    signature is the family's minus the ``fixed`` arguments, with ``name`` defaulting to the variant
    name (other defaults overridden through ``defaults``). The signature is real (``inspect.signature``
    sees it), so the registry lists the right defaults and rejects unknown keywords. A generative model
    class registers the same way: ``variant(VAE, "vae", task="generative", family="vae", fixed={})``.
    """
    sig = inspect.signature(family_fn)
    defaults = {"name": name, **(defaults or {})}
    params = [
        p.replace(default=defaults.get(p.name, p.default))
        for p in sig.parameters.values()
        if p.name not in fixed and p.kind is not p.VAR_KEYWORD and p.kind is not p.VAR_POSITIONAL
    ]
    new_sig = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)

    def builder(*args, **kwargs):
        bound = new_sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return family_fn(**fixed, **bound.arguments)

    builder.__signature__ = new_sig
    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = family_fn.__module__
    builder.__doc__ = description or (
        f"{name}: {family_fn.__name__}({', '.join(f'{k}={v!r}' for k, v in fixed.items())})."
        if fixed
        else (inspect.getdoc(family_fn) or name).split("\n")[0]
    )
    return register(
        name,
        task=task,
        family=family,
        description=description,
        test_kwargs=test_kwargs,
        example_inputs=example_inputs,
        info=info,
        train_defaults=train_defaults,
    )(builder)


def _load_all() -> None:
    """Import every module under ``kerasvk.models`` so their ``@register`` calls run."""
    global _LOADED
    if _LOADED:
        return
    import kerasvk.models as models_pkg

    for mod in pkgutil.walk_packages(models_pkg.__path__, prefix="kerasvk.models."):
        if mod.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        importlib.import_module(mod.name)
    _LOADED = True


def get_spec(name: str) -> ModelSpec:
    """The ``ModelSpec`` of ``name``; unknown names raise ``ValueError`` with close matches."""
    _load_all()
    if not isinstance(name, str) or name not in _REGISTRY:
        known = sorted(_REGISTRY)
        close = difflib.get_close_matches(str(name), known, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model name {name!r}.{hint} Available models: {', '.join(known)}. "
            "See `kerasvk list`."
        )
    return _REGISTRY[name]


def list_models(task: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally only those of one ``task``."""
    _load_all()
    if task is not None and task not in TASKS:
        raise ValueError(f"Unknown task {task!r}. Allowed tasks: {', '.join(TASKS)}.")
    return sorted(n for n, s in _REGISTRY.items() if task is None or s.task == task)


def build(name: str, /, weights=None, **kwargs):
    """Build model ``name``; keyword arguments go to its builder (input_shape, num_classes, ...).

    ``weights``: None (random initialisation), ``"imagenet"`` (zoo models with a keras.applications twin;
    downloaded by keras on first use, online only) or a path to a ``.weights.h5`` file.
    """
    spec = get_spec(name)
    if weights is not None:
        from kerasvk.models.classification._weights import check_weights, load_weights

        weights = check_weights(name, weights, kwargs)  # before building or downloading anything
        return load_weights(build(name, **kwargs), name, weights, build_kwargs=kwargs)
    sig = inspect.signature(spec.builder)
    accepts_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_var_kw:
        unknown = sorted(set(kwargs) - set(sig.parameters))
        if unknown:
            raise ValueError(
                f"Model {name!r} does not take argument(s) {', '.join(unknown)}. "
                f"Allowed: {', '.join(sig.parameters)}."
            )
    return spec.builder(**kwargs)


def load_model(path, *, safe_mode=True, compile=True):
    """Load a ``.keras`` file of any kerasvk model in a fresh process.

    Custom classes (VAE, GAN, GPT, ...) and layers register with Keras when their modules import;
    this imports them all first, so ``keras.saving.load_model`` finds every class with ``safe_mode``.
    """
    import os

    import keras

    _load_all()
    import kerasvk.layers  # noqa: F401  (registers the shared layers)

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path} (expected a .keras file).")
    try:
        return keras.saving.load_model(path, safe_mode=safe_mode, compile=compile)
    except Exception as e:
        raise ValueError(f"Cannot load {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def model_info(name: str, /, **kwargs) -> dict:
    """Task, family, default input shape and parameter count (at the defaults, or at ``kwargs``)."""
    spec = get_spec(name)
    key = f"{name}:{sorted(kwargs.items())!r}"
    if key not in _PARAM_CACHE:
        model = build(name, **kwargs)
        _PARAM_CACHE[key] = int(model.count_params())
        del model
    info = {
        "name": spec.name,
        "task": spec.task,
        "family": spec.family,
        "description": spec.description,
        "default_input_shape": spec.default_input_shape,
        "defaults": {k: v for k, v in spec.defaults.items() if k != "name"},
        "parameters": _PARAM_CACHE[key],
    }
    if spec.train_defaults:
        info["train_defaults"] = dict(spec.train_defaults)
    if spec.info is not None:
        info.update(spec.info(**kwargs))
    return info
