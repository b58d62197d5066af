"""Argument checks shared by the model builders (validate first, then build: DESIGN convention 4).

Each check raises ``ValueError`` naming the argument, what is allowed and what was received (keras style:
``"... Received: dense_units=0"``), so a bad value never reaches keras or TensorFlow, where it would fail
naming keras' own argument (``units``, ``rate``) or as a ``TypeError``/``OverflowError``. Each returns the
value as the plain Python type the builder uses. ``model`` prefixes the message (``"simple_cnn: ..."``).

    filters = check_int_sequence("filters", filters, model="simple_cnn")
    dropout = check_number("dropout", dropout, low=0.0, high=1.0, high_open=True, model="simple_cnn")
"""

from __future__ import annotations

import math
import numbers


def _prefix(model):
    return f"{model}: " if model else ""


def is_int(value) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(name, value, minimum=1, maximum=None, *, model=None, why="") -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; ``why`` is appended to the message."""
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{_prefix(model)}{name} must be an integer {bound}{why}. Received: {name}={value!r}")
    return int(value)


def check_number(name, value, low=None, high=None, *, low_open=False, high_open=False, model=None, why="") -> float:
    """``value`` as a finite ``float`` between ``low`` and ``high`` (each inclusive unless ``*_open``)."""
    ok = is_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is not None:
            bound = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            bound = f"{'>' if low_open else '>='} {low}"
        elif high is not None:
            bound = f"{'<' if high_open else '<='} {high}"
        else:
            bound = "finite"
        raise ValueError(f"{_prefix(model)}{name} must be a number {bound}{why}. Received: {name}={value!r}")
    return float(value)


def check_int_sequence(name, value, minimum=1, *, min_len=1, model=None, why="") -> tuple:
    """``value`` (a list/tuple of at least ``min_len`` integers >= ``minimum``) as a tuple of ints."""
    items = tuple(value) if isinstance(value, (list, tuple)) else None
    if items is None or len(items) < min_len or not all(is_int(v) and v >= minimum for v in items):
        count = "a non-empty" if min_len == 1 else f"at least {min_len}"
        raise ValueError(
            f"{_prefix(model)}{name} must be {count} list/tuple of integers >= {minimum}{why}. Received: {name}={value!r}"
        )
    return tuple(int(v) for v in items)


def check_bool(name, value, *, model=None) -> bool:
    if not isinstance(value, (bool,)) and not (is_int(value) and value in (0, 1)):
        raise ValueError(f"{_prefix(model)}{name} must be True or False. Received: {name}={value!r}")
    return bool(value)


def check_choice(name, value, allowed, *, model=None):
    if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{_prefix(model)}{name} must be one of {shown}. Received: {name}={value!r}")
    return value


def check_image_shape(input_shape, *, model=None, channels=None, allow_none=False) -> tuple:
    """``input_shape`` as ``(height, width, channels)`` ints >= 1 (``allow_none``: height/width may be None).

    ``channels``: the channel counts allowed (e.g. ``(3,)``), None for any.
    """
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
    dims_ok = shape is not None and len(shape) == 3 and all(
        (d is None and allow_none and i < 2) or (is_int(d) and d >= 1) for i, d in enumerate(shape))
    if not dims_ok or (channels is not None and shape[2] not in channels):
        c = "channels" if channels is None else " or ".join(map(str, channels))
        raise ValueError(f"{_prefix(model)}input_shape must be (height, width, {c}): three integers >= 1"
                         f"{' (height/width may be None)' if allow_none else ''}. Received: input_shape={input_shape!r}")
    return tuple(None if d is None else int(d) for d in shape)
