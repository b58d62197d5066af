"""The dtype policy of a generative model in its config, so a ``.keras`` file reloads under the policy it was
built with.

VAE, GAN, PixelCNN, WaveNet and GPT are subclassed models: ``from_config`` rebuilds their layers from the
builder arguments, and a rebuilt layer takes the *global* dtype policy. A model trained with ``--precision
mixed_bfloat16`` so came back computing in float32 (its weights intact). ``get_config`` now records the
policy (``dtype_policy``, only when it is not float32, so older files and float32 models are unchanged) and
``from_config`` rebuilds under it, restoring the global policy afterwards.
"""

from __future__ import annotations

from kerasvk.layers.precision import dtype_policy_scope


def with_policy(model, config: dict) -> dict:
    """``config`` plus ``dtype_policy`` when ``model`` computes under a mixed policy."""
    name = model.dtype_policy.name
    return {**config, "dtype_policy": name} if name != "float32" else config


def built_under(config: dict):
    """Pop ``dtype_policy`` from ``config``; the block (``from_config`` building the model) runs under it."""
    return dtype_policy_scope(config.pop("dtype_policy", None))
