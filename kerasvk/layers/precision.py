"""One place that switches keras' global dtype policy for a block (keras has no scope for it)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def dtype_policy_scope(name):
    """Make ``name`` (e.g. ``"mixed_bfloat16"``) the global dtype policy inside the block, the previous one
    after it; ``None`` or ``"float32"`` leaves the policy as it is. Layers and models created inside take it."""
    if name in (None, "float32"):
        yield
        return
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
