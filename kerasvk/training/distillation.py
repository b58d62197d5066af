"""Knowledge distillation (Hinton et al., 2015) on top of ``keras.distillation``.

Loss: ``α·CE(y, student) + (1 − α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T))``.

Keras 3.15 ships exactly this: ``keras.distillation.Distiller`` (a Model overriding ``compute_loss``,
teacher frozen and run in inference mode, loss trackers) with ``LogitsDistillation(temperature)``
(KL of the temperature-softened distributions, scaled by T²) and ``student_loss_weight`` = α.
So this module only adds what kerasvk classifiers need around it:

- kerasvk classifiers end in ``Dense(..., activation="softmax", name="predictions")``; distillation
  needs logits, so :func:`to_logits` clones a classifier with a linear ``predictions`` layer (same
  weights) and :func:`to_probabilities` turns the trained logits student back into a plain softmax
  classifier with the builder's layer names — that is the model to save and export;
- validation with clear errors (T ≤ 0, α outside [0, 1], teacher/student class or input mismatch);
- :func:`distill`: compile + fit + return the plain student;
- :func:`distillation_loss`: the same loss as a function (for tests and custom loops).
"""

from __future__ import annotations

import numbers

import keras

ACTIVATION_LAYERS = (keras.layers.Activation, keras.layers.Softmax)


def _check_temperature_alpha(temperature, alpha):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise ValueError(
            f"temperature must be a number > 0 (1 = plain softmax; 2-10 soften the teacher's distribution). "
            f"Received: temperature={temperature!r}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise ValueError(
            f"alpha (the weight of the hard-label cross-entropy) must be a number in [0, 1]. Received: alpha={alpha!r}"
        )


def _output_activation(model):
    """(layer, activation name) of the layer producing ``model``'s output."""
    if not getattr(model, "outputs", None) or len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            f"{getattr(model, 'name', model)!r}: distillation needs a functional classifier with one "
            "(batch, classes) output."
        )
    layer = model.layers[-1]
    if isinstance(layer, keras.layers.Softmax):
        return layer, "softmax"
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None) if act is not None else "linear"
    return layer, name


def _with_output_activation(model, activation):
    out_layer, current = _output_activation(model)
    if current == activation:
        return model
    if current not in ("softmax", "linear"):
        raise ValueError(
            f"{model.name!r}: the output activation must be 'softmax' (probabilities) or linear (logits). "
            f"Received: {current!r} on layer {out_layer.name!r}"
        )

    def clone(layer):
        cfg = layer.get_config()
        if layer is out_layer:
            if isinstance(layer, ACTIVATION_LAYERS):
                return keras.layers.Activation(activation, name=layer.name, dtype=layer.dtype_policy)
            cfg["activation"] = activation
        return layer.__class__.from_config(cfg)

    first = model.layers[0]
    if isinstance(first, keras.layers.InputLayer) and len(model.inputs) == 1:
        t = model.inputs[0]  # keep the input's name, so the serving signature's argument is unchanged
        inputs = keras.Input(batch_shape=t.shape, dtype=t.dtype, name=first.name)
        new = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    else:
        new = keras.models.clone_model(model, clone_function=clone)
    new.set_weights(model.get_weights())
    return new


def to_logits(model):
    """``model`` if its output is already linear, else a clone (same weights) with a linear output."""
    return _with_output_activation(model, "linear")


def to_probabilities(model):
    """``model`` if its output is already a softmax, else a clone (same weights) ending in a softmax."""
    return _with_output_activation(model, "softmax")


def _logits_distillation(temperature):
    """``LogitsDistillation`` with a ``KLDivergence`` *instance*.

    Keras 3.15's default ``loss="kl_divergence"`` resolves to the plain ``kl_divergence`` function, which
    ``LogitsDistillation.compute_loss`` does not recognise as KL (it checks ``isinstance(...,
    KLDivergence)``): it then applies KL to the raw temperature-scaled logits without softmax and without
    the T² factor. Passing the loss object takes the softmax + T² path (checked against NumPy in tests).
    """
    return keras.distillation.LogitsDistillation(temperature=float(temperature), loss=keras.losses.KLDivergence())


def make_distiller(teacher, student, *, temperature=4.0, alpha=0.1, name="distiller"):
    """A ``keras.distillation.Distiller`` of logits versions of ``teacher`` and ``student``.

    Train it with ``compile``/``fit`` (or use :func:`distill`); ``distilled_student(distiller)`` is the
    trained student as a plain softmax classifier. ``alpha`` weights the hard-label cross-entropy,
    ``1 − alpha`` the T²-scaled KL term.
    """
    _check_temperature_alpha(temperature, alpha)
    for role, m in (("teacher", teacher), ("student", student)):
        if not isinstance(m, keras.Model):
            raise ValueError(f"make_distiller: {role} must be a keras.Model. Received: {type(m).__name__}")
    t_logits, s_logits = to_logits(teacher), to_logits(student)
    tc, sc = t_logits.outputs[0].shape[-1], s_logits.outputs[0].shape[-1]
    if tc != sc:
        raise ValueError(
            f"make_distiller: teacher and student must predict the same classes. Received: teacher {teacher.name!r} "
            f"{tc} classes, student {student.name!r} {sc} classes."
        )
    ti, si = tuple(t_logits.inputs[0].shape[1:]), tuple(s_logits.inputs[0].shape[1:])
    if ti != si:
        raise ValueError(
            f"make_distiller: teacher and student must take the same input shape. Received: teacher {ti}, student {si}."
        )
    return keras.distillation.Distiller(
        teacher=t_logits,
        student=s_logits,
        distillation_losses=_logits_distillation(temperature),
        student_loss_weight=float(alpha),
        name=name,
    )


def compile_distiller(distiller, optimizer="adam", jit_compile="auto"):
    """Compile with the hard-label loss on logits and an accuracy metric (student predictions);
    ``jit_compile`` as keras' ``compile`` takes it."""
    distiller.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    from kerasvk.training.trainer import build_optimizer

    build_optimizer(distiller)  # the first train step is traced once, not twice
    return distiller


def distilled_student(distiller):
    """The distiller's trained student as a plain softmax classifier (what to save / export)."""
    return to_probabilities(distiller.student)


def distill(
    teacher,
    student,
    train,
    *,
    validation_data=None,
    epochs=10,
    temperature=4.0,
    alpha=0.1,
    optimizer="adam",
    callbacks=None,
    verbose=0,
    jit_compile="auto",
):
    """Distil ``teacher`` into ``student`` on ``train`` (a dataset of (images, integer labels)).

    Returns ``(plain softmax student, history)``; ``student`` itself is not modified. Under a mixed precision
    policy build the models and call this inside it (the distiller then gets keras' loss scaling for
    ``mixed_float16``); ``jit_compile`` as keras' ``compile`` takes it.
    """
    distiller = make_distiller(teacher, student, temperature=temperature, alpha=alpha)
    distiller = compile_distiller(distiller, optimizer, jit_compile=jit_compile)
    history = distiller.fit(train, validation_data=validation_data, epochs=epochs, callbacks=callbacks, verbose=verbose)
    return distilled_student(distiller), history


def distillation_loss(y_true, teacher_logits, student_logits, *, temperature=4.0, alpha=0.1):
    """``α·CE(y, student) + (1 − α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T))``, batch-averaged.

    The same computation ``Distiller.compute_loss`` does (``keras.distillation.LogitsDistillation`` for
    the KL term).
    """
    _check_temperature_alpha(temperature, alpha)
    from keras import ops

    ce = ops.mean(keras.losses.sparse_categorical_crossentropy(y_true, student_logits, from_logits=True))
    kd = _logits_distillation(temperature).compute_loss(teacher_logits, student_logits)
    return alpha * ce + (1.0 - alpha) * kd
