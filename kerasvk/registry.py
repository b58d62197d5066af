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

This module sits at the bottom of the import graph: it imports no model module. Models are found by
package name through ``importlib`` (``MODEL_PACKAGES``), pretrained weights through each spec's
``weights_loader`` hook, and backbones through each spec's ``pyramid_levels``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

TASKS = ("classification", "detection", "generative", "autoregressive")
# packages whose modules register models; imported by name on first use (plugin style)
MODEL_PACKAGES = ("kerasvk.models",)
# named feature-map levels of a backbone and their stride relative to the input (keras-hub convention)
PYRAMID_LEVELS = {"P2": 4, "P3": 8, "P4": 16, "P5": 32}


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
    # Optional ``fn(name, weights, build_kwargs) -> apply(model) -> model`` for named pretrained weights
    # (``weights="imagenet"``): it validates ``weights`` and the build arguments (the builder's defaults
    # merged with the caller's) before anything is built, and returns what fills the built model.
    weights_loader: Callable | None = None
    # Pyramid levels (keys of ``PYRAMID_LEVELS``) the model exposes as ``model.pyramid_outputs`` with
    # ``include_top=False``; non-empty means ``backbone(name)`` works.
    pyramid_levels: tuple = ()

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
    weights_loader: Callable | None = None,
    pyramid_levels: tuple = (),
):
    """Decorator registering ``fn`` as the builder of model ``name`` (fields: see ``ModelSpec``)."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r} for model {name!r}. Allowed tasks: {', '.join(TASKS)}.")
    bad = [lvl for lvl in pyramid_levels if lvl not in PYRAMID_LEVELS]
    if bad:
        raise ValueError(
            f"Model {name!r}: unknown pyramid level(s) {bad}. Allowed: {', '.join(PYRAMID_LEVELS)}."
        )

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
            weights_loader=weights_loader,
            pyramid_levels=tuple(pyramid_levels),
        )
        return fn

    return decorator


def full_signature(fn) -> inspect.Signature:
    """``fn``'s signature; for a kerasvk class whose ``__init__`` passes ``**kwargs`` on to a kerasvk base
    class, the base's parameters are merged in (the subclass's own defaults win, its new parameters go
    before ``name``), so a subclass model (``MaskRCNN(FasterRCNN)``) registers without repeating its base's
    argument list. Bases outside kerasvk (``keras.Model``) are not merged."""
    sig = inspect.signature(fn)
    if not inspect.isclass(fn):
        return sig
    own = [p for p in sig.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    var_kw = [p for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD]
    base = next((b for b in fn.__mro__[1:] if "__init__" in vars(b)), None)
    if not var_kw or base is None or not base.__module__.startswith("kerasvk."):
        return sig
    inherited = list(full_signature(base).parameters.values())
    mine = {p.name: p for p in own}
    merged = [mine.pop(p.name, p) for p in inherited if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    at = next((i for i, p in enumerate(merged) if p.name == "name"), len(merged))
    merged[at:at] = list(mine.values())
    tail = [p for p in inherited if p.kind is p.VAR_KEYWORD]
    kinds = {p.kind for p in merged}
    merged = [p.replace(kind=p.POSITIONAL_OR_KEYWORD) if kinds != {p.KEYWORD_ONLY} else p for p in merged]
    return sig.replace(parameters=merged + tail)


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
    weights_loader=None,
    pyramid_levels=(),
):
    """Register a thin variant of a family builder (DESIGN convention 1), for any task.

    ``variant(resnet, "resnet50", family="resnet", fixed={"depth": 50})`` registers a builder whose
    signature is the family's minus the ``fixed`` arguments, with ``name`` defaulting to the variant
    name (other defaults overridden through ``defaults``). The signature is real (``inspect.signature``
    sees it), so the registry lists the right defaults and rejects unknown keywords. A generative model
    class registers the same way: ``variant(VAE, "vae", task="generative", family="vae", fixed={})``.
    """
    sig = full_signature(family_fn)
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
        weights_loader=weights_loader,
        pyramid_levels=pyramid_levels,
    )(builder)


def _load_all() -> None:
    """Import every public module of the ``MODEL_PACKAGES`` (by name) so their ``@register`` calls run."""
    global _LOADED
    if _LOADED:
        return
    for package_name in MODEL_PACKAGES:
        package = importlib.import_module(package_name)
        for mod in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
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
        fill = _weights_step(spec, weights, kwargs)  # every check runs before building or downloading
        return fill(build(name, **kwargs))
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


_HEAD_ARGUMENTS = ("include_top", "pooling", "num_classes", "classifier_activation")


def backbone(name: str, /, input_shape=None, levels=("P3", "P4", "P5"), weights=None, **kwargs):
    """The feature extractor of model ``name`` with its pyramid feature maps as named outputs.

    Returns a functional ``keras.Model`` whose outputs are a dict ``{"P3": ..., "P4": ..., "P5": ...}``
    (``levels``; P2..P5 are strides 4, 8, 16, 32 relative to the input) that a detector neck (FPN/PAN)
    takes without knowing layer names; ``model.pyramid_outputs`` maps each level to its layer name, as
    keras-hub's ``Backbone.pyramid_outputs``. The layers are those of ``build(name, include_top=False)``
    under the same names, so ``weights`` ("imagenet" or a ``.weights.h5`` path) load as in ``build``::

        features = kerasvk.backbone("resnet50", input_shape=(256, 256, 3), weights="imagenet")
        features(images)["P4"]  # (batch, 16, 16, 1024)

    Other keyword arguments go to the builder (family options such as ``alpha`` or ``width_multiplier``).
    """
    spec = get_spec(name)
    if not spec.pyramid_levels:
        with_backbone = sorted(n for n, s in _REGISTRY.items() if s.pyramid_levels)
        raise ValueError(
            f"Model {name!r} has no backbone (no pyramid outputs). "
            f"Models with a backbone: {', '.join(with_backbone)}."
        )
    requested = (levels,) if isinstance(levels, str) else tuple(levels)
    distinct = len(set(requested)) == len(requested)
    if not requested or not distinct or not set(requested) <= set(spec.pyramid_levels):
        strides = ", ".join(f"{k} stride {v}" for k, v in PYRAMID_LEVELS.items())
        raise ValueError(
            f"{name}: levels must be distinct pyramid levels of this model: {', '.join(spec.pyramid_levels)} "
            f"(of {strides}). Received: levels={levels!r}"
        )
    head_args = sorted(set(kwargs) & set(_HEAD_ARGUMENTS))
    if head_args:
        raise ValueError(
            f"backbone({name!r}) builds the feature extractor (include_top=False, pooling=None) and does not "
            f"take {', '.join(head_args)}; use kerasvk.build({name!r}, ...) for a classifier."
        )
    if input_shape is not None:
        kwargs["input_shape"] = input_shape
    features = build(name, weights=weights, include_top=False, pooling=None, **kwargs)
    layers = {level: getattr(features, "pyramid_outputs", {}).get(level) for level in requested}
    missing = [level for level, layer in layers.items() if layer is None]
    if missing:  # a registration bug: the spec promises levels the builder did not record
        raise RuntimeError(f"{name}: the built model records no layer for pyramid level(s) {missing}.")
    import keras

    outputs = {level: features.get_layer(layer).output for level, layer in layers.items()}
    inputs = features.inputs[0] if len(features.inputs) == 1 else features.inputs
    model = keras.Model(inputs, outputs, name=f"{features.name}_backbone")
    model.pyramid_outputs = layers
    return model


def _weights_step(spec: ModelSpec, weights, kwargs: dict) -> Callable:
    """Validate ``weights`` for ``build(spec.name, **kwargs)``; return ``fn(model) -> model`` that loads them.

    A ``.weights.h5`` path works for every model; a name (``"imagenet"``) goes to the spec's
    ``weights_loader``.
    """
    path = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else None
    if path is not None and path.endswith(".weights.h5"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No weights file at {path}.")

        def load_file(model):
            try:
                model.load_weights(path)
            except Exception as e:
                raise ValueError(
                    f"Cannot load {path} into {spec.name}: {type(e).__name__}: {str(e).splitlines()[0]}"
                ) from None
            return model

        return load_file
    if isinstance(weights, str) and spec.weights_loader is not None:
        return spec.weights_loader(spec.name, weights, {**spec.defaults, **kwargs})
    named = sorted(n for n, s in _REGISTRY.items() if s.weights_loader is not None)
    raise ValueError(
        "weights must be None, 'imagenet' or a path to a .weights.h5 file. "
        f"Received: weights={weights!r}. Named weights need a pretrained twin and {spec.name!r} has none. "
        f"Models with imagenet weights: {', '.join(named)}."
    )


def _archive_layers(path) -> set:
    """Class names of every layer in a ``.keras`` archive's config.json (ValueError if it is no archive)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"Cannot load {path}: not a valid .keras file (truncated or corrupt: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "Re-save the model, or use the run's checkpoints/ copy."
        ) from None
    names = set()

    def walk(obj):
        if isinstance(obj, dict):
            if isinstance(obj.get("class_name"), str):
                names.add(obj["class_name"])
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(config)
    return names


def load_model(path, *, safe_mode=True, compile=True):
    """Load a ``.keras`` file of any kerasvk model in a fresh process.

    Custom classes (VAE, GAN, GPT, ...) and layers register with Keras when their modules import;
    this imports them all first, so ``keras.saving.load_model`` finds every class with ``safe_mode``.
    With ``safe_mode=True`` (the default) a file containing a ``Lambda`` layer is refused before
    anything is deserialized: a Lambda carries Python code that loading would run. A truncated or
    corrupt file, a folder or a missing path raise ``ValueError``/``FileNotFoundError`` saying so.
    """
    import os

    import keras

    _load_all()
    import kerasvk.layers  # noqa: F401  (registers the shared layers)

    if os.path.isdir(path):
        hint = " It is a SavedModel export: use `kerasvk predict`/`check-export` on it." if os.path.isfile(
            os.path.join(path, "saved_model.pb")) else ""
        raise ValueError(f"{path} is a folder, not a .keras file.{hint}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path} (expected a .keras file).")
    layers = _archive_layers(path)
    if safe_mode and "Lambda" in layers:
        raise ValueError(
            f"Refusing to load {path}: it contains a Lambda layer, i.e. Python code stored in the file. kerasvk "
            "loads .keras files with safe_mode=True, which never runs code from a file (loading it could execute "
            "anything); kerasvk's own models have no Lambda layers. Only if you trust where the file comes from, "
            "load it with kerasvk.load_model(path, safe_mode=False)."
        )
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
    if spec.pyramid_levels:
        info["pyramid_levels"] = list(spec.pyramid_levels)
    if spec.train_defaults:
        info["train_defaults"] = dict(spec.train_defaults)
    if spec.info is not None:
        info.update(spec.info(**kwargs))
    return info
