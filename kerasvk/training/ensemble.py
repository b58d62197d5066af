"""Ensembles: several trained classifiers → one functional model (one ``.keras`` file, one SavedModel).

``ensemble([m1, m2, m3], method="average")`` feeds one input to every member (in inference mode)
and combines their class probabilities with :class:`kerasvk.layers.ensemble.CombinePredictions`
(average, weighted average, or majority vote as vote fractions). The result is a plain classifier:
``kerasvk.export.export_model`` writes it as one SavedModel with the usual ``probabilities / class_id /
score`` signature.
"""

from __future__ import annotations

from kerasvk.layers.ensemble import COMBINE_METHODS


def _describe(models):
    return ", ".join(f"{m.name}: input {tuple(m.inputs[0].shape[1:])} → {m.outputs[0].shape[-1]} classes" for m in models)


def ensemble(models, method="average", weights=None, *, from_logits=False, name="ensemble"):
    """One functional model whose output combines the members' class probabilities.

    Args:
        models: two or more single-input classifiers with the same input shape and class count,
            each returning ``(batch, classes)`` probabilities (or logits with ``from_logits=True``).
        method: ``"average"``, ``"vote"`` or ``"weighted"``.
        weights: one non-negative weight per member (``method="weighted"`` only).
        from_logits: apply a softmax to each member's output before combining.
        name: the ensemble model's name.

    Members are wrapped as ``member_0``, ``member_1``, ... (sharing the members' layers and weights), so
    members with the same name can be combined.
    """
    import keras

    from kerasvk.layers.ensemble import CombinePredictions

    if method not in COMBINE_METHODS:
        raise ValueError(
            f"ensemble: method must be one of {', '.join(map(repr, COMBINE_METHODS))}. Received: method={method!r}"
        )
    models = list(models) if isinstance(models, (list, tuple)) else None
    if not models or len(models) < 2:
        raise ValueError("ensemble: models must be a list of at least two keras classifiers.")
    for i, m in enumerate(models):
        if not isinstance(m, keras.Model) or not getattr(m, "inputs", None) or not getattr(m, "outputs", None):
            raise ValueError(
                f"ensemble: member {i} must be a built functional/sequential keras.Model. Received: {type(m).__name__}"
            )
        if len(m.inputs) != 1 or len(m.outputs) != 1 or len(m.outputs[0].shape) != 2:
            raise ValueError(
                f"ensemble: member {i} ({m.name}) must have one image input and one (batch, classes) output. "
                f"Received outputs: {[tuple(o.shape) for o in m.outputs]}"
            )
    classes = {m.outputs[0].shape[-1] for m in models}
    if len(classes) != 1:
        raise ValueError(
            f"ensemble: all members must predict the same number of classes. Received: {_describe(models)}"
        )
    shapes = {tuple(m.inputs[0].shape[1:]) for m in models}
    if len(shapes) != 1:
        raise ValueError(f"ensemble: all members must take the same input shape. Received: {_describe(models)}")
    if method == "weighted":
        if weights is None or len(weights) != len(models):
            raise ValueError(
                f"ensemble: method='weighted' needs one weight per member ({len(models)}). Received: weights={weights!r}"
            )
    elif weights is not None:
        raise ValueError(f"ensemble: weights are only used with method='weighted'. Received: method={method!r}")

    inputs = keras.Input(shape=models[0].inputs[0].shape[1:], dtype=models[0].inputs[0].dtype, name="images")
    outs = []
    for i, m in enumerate(models):
        member = keras.Model(m.inputs[0], m.outputs[0], name=f"member_{i}")
        y = member(inputs, training=False)
        if from_logits:
            y = keras.layers.Softmax(name=f"member_{i}_softmax", dtype="float32")(y)
        outs.append(y)
    # float32 under a mixed precision policy, like every kerasvk classifier's probabilities
    combined = CombinePredictions(method, weights, name="predictions", dtype="float32")(outs)
    return keras.Model(inputs, combined, name=name)
