"""Thin registered variants over a family builder (DESIGN convention 1).

``variant(resnet, "resnet50", fixed={"depth": 50})`` returns and registers a builder whose signature
is the family's minus the fixed arguments, with ``name`` defaulting to the variant name (and any
other default overridden through ``defaults``). The signature is real (``inspect.signature`` sees it),
so the registry lists the right defaults and rejects unknown keywords.
"""

from __future__ import annotations

import inspect

from kerasvk.registry import register


def variant(
    family_fn, name, *, family, fixed, defaults=None, description="", test_kwargs=None, info=None, train_defaults=None
):
    sig = inspect.signature(family_fn)
    defaults = {"name": name, **(defaults or {})}
    params = [
        p.replace(default=defaults.get(p.name, p.default))
        for p in sig.parameters.values()
        if p.name not in fixed
    ]
    new_sig = sig.replace(parameters=params)

    def builder(*args, **kwargs):
        bound = new_sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return family_fn(**fixed, **bound.arguments)

    builder.__signature__ = new_sig
    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = family_fn.__module__
    builder.__doc__ = (
        description or f"{name}: {family_fn.__name__}({', '.join(f'{k}={v!r}' for k, v in fixed.items())})."
    )
    return register(
        name,
        task="classification",
        family=family,
        description=description,
        test_kwargs=test_kwargs,
        info=info,
        train_defaults=train_defaults,
    )(builder)
