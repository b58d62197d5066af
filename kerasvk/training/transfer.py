"""Transfer learning: feature extraction with a frozen encoder, fine-tuning the top N blocks, L2-SP.

The encoder/head split follows the keras.applications head names every kerasvk classifier uses: the
head starts at the first of ``avg_pool`` / ``max_pool`` / ``flatten`` and ends at ``predictions``;
everything before it is the encoder. A model built with ``include_top=False`` is all encoder.
Another split point can be named with ``cut_at="layer_name"``.

Typical use::

    model = transfer_classifier(pretrained, num_classes=5)     # encoder frozen, new head
    model.compile(...); model.fit(...)                          # trains the head only
    fine_tune(model, top_n_blocks=2, l2sp=1e-3)                 # unfreeze conv blocks, pull toward θ_pre
    model.compile(optimizer=Adam(1e-4), ...); model.fit(...)

The encoder is called with ``training=False``: batch-norm layers stay in inference mode (moving
statistics frozen) both while the encoder is frozen and after it is unfrozen for fine-tuning, as the
Keras transfer-learning guide recommends for small target sets.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
from keras import ops

HEAD_STARTS = ("avg_pool", "max_pool", "flatten")
ENCODER_NAME = "encoder"


# ----------------------------------------------------------------------------------------- L2-SP
@keras.saving.register_keras_serializable(package="kerasvk")
class L2SP(keras.regularizers.Regularizer):
    """L2-SP (Li et al., 2018): ``l2 * Σ (θ − θ_pre)²`` — pulls a weight toward its pre-trained value.

    ``reference`` is θ_pre, captured when fine-tuning starts (:func:`apply_l2sp`); it is stored in the
    config as a nested list, so a model carrying this regularizer saves and loads like any other.
    """

    def __init__(self, l2=1e-3, reference=None):
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not l2 >= 0:
            raise ValueError(f"L2SP: l2 must be a number >= 0. Received: l2={l2!r}")
        if reference is None:
            raise ValueError("L2SP: reference (the pre-trained weight values θ_pre) is required.")
        self.l2 = float(l2)
        self.reference = np.asarray(reference, dtype="float32")

    def __call__(self, x):
        ref = ops.convert_to_tensor(self.reference, dtype=x.dtype)
        return self.l2 * ops.sum(ops.square(x - ref))

    def get_config(self):
        return {"l2": self.l2, "reference": self.reference.tolist()}


def apply_l2sp(model, l2, *, layers=None):
    """Attach an L2-SP regularizer, with θ_pre = the current values, to every trainable weight of ``layers``.

    ``layers`` defaults to the encoder of a :func:`transfer_classifier` model (the pre-trained part);
    the new head is left unregularized. The penalty is part of ``model.losses`` (so ``fit`` adds it) and
    is saved in the layers' configs (``kernel_regularizer``, ``bias_regularizer``, ...). Returns the
    number of weights regularized.
    """
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not l2 >= 0:
        raise ValueError(f"apply_l2sp: l2 must be a number >= 0. Received: l2={l2!r}")
    if layers is None:
        layers = _flat_layers(get_encoder(model))
    count = 0
    for layer in layers:
        if not layer.trainable:
            continue
        for var in layer._trainable_variables:  # the layer's own weights, not its sublayers'
            reg = L2SP(l2, reference=ops.convert_to_numpy(var))
            var.regularizer = reg
            slot = f"{var.name.split('/')[-1]}_regularizer"  # kernel_regularizer, bias_regularizer, gamma_...
            if hasattr(layer, slot):
                setattr(layer, slot, reg)  # so the layer's config (and .keras file) carries it
            count += 1
    return count


def l2sp_penalty(model):
    """The current total L2-SP penalty of ``model`` (sum of its L2SP-regularized weight terms)."""
    total = 0.0
    for layer in _flat_layers(model):
        if not layer.trainable:
            continue
        for var in layer._trainable_variables:
            reg = var.regularizer
            if isinstance(reg, L2SP):
                total = total + float(ops.convert_to_numpy(reg(var)))
    return total


# ------------------------------------------------------------------------------- encoder / head
def _flat_layers(model):
    """Every layer inside ``model`` (nested models expanded) that owns weights directly, in graph order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if layer._trainable_variables or layer._non_trainable_variables
    ]


def _load_base(base, **build_kwargs):
    """A model from a keras.Model, a ``.keras`` file, a run folder (with ``model.keras``) or a registered name."""
    if isinstance(base, keras.Model):
        return base
    if isinstance(base, (str, Path)):
        p = Path(base)
        if p.is_dir() and (p / "model.keras").is_file():
            p = p / "model.keras"
        if p.suffix == ".keras":
            if not p.is_file():
                raise FileNotFoundError(f"No saved model at {p}.")
            # the registry's loader imports kerasvk's models and layers first, so their classes are
            # registered with Keras in a fresh process (plain keras.saving.load_model would not find them)
            from kerasvk.registry import load_model

            return load_model(p, safe_mode=True)
        from kerasvk.registry import build

        return build(str(base), include_top=False, **build_kwargs)
    raise ValueError(
        "base must be a keras.Model, a path to a .keras file or run folder, or a registered model name. "
        f"Received: {type(base).__name__}"
    )


def split_point(model, cut_at=None):
    """The name of the first head layer of ``model`` (None when the whole model is an encoder).

    Raises ``ValueError`` when no encoder/head split can be recognized.
    """
    names = [layer.name for layer in model.layers]
    if cut_at is not None:
        if cut_at not in names:
            raise ValueError(f"cut_at={cut_at!r} is not a layer of {model.name}. Layers: {', '.join(names)}")
        return cut_at
    if "predictions" in names:
        for name in names:
            if name in HEAD_STARTS:
                return name
        raise ValueError(
            f"Cannot find the encoder/head split of {model.name!r}: it has a 'predictions' layer but none of "
            f"{', '.join(map(repr, HEAD_STARTS))} before it (keras.applications head names). "
            "Pass cut_at='<first head layer>' or a model built with include_top=False."
        )
    out_rank = len(model.outputs[0].shape) if getattr(model, "outputs", None) else None
    last = names[-1] if names else None
    if out_rank == 4 or last in ("avg_pool", "max_pool"):
        return None  # include_top=False: feature map or pooled features
    raise ValueError(
        f"Cannot find the encoder/head split of {model.name!r}: allowed are a classifier whose head starts at "
        f"{' / '.join(HEAD_STARTS)} and ends at 'predictions' (every kerasvk and keras.applications classifier), "
        "a model built with include_top=False (feature-map or pooled output), or an explicit cut_at='<layer>'. "
        f"Received layers: {', '.join(names[-6:])} (output rank {out_rank})."
    )


def make_encoder(base, cut_at=None, **build_kwargs):
    """The encoder part of ``base`` as a functional model named ``"encoder"`` sharing ``base``'s weights."""
    model = _load_base(base, **build_kwargs)
    if not getattr(model, "inputs", None) or len(model.inputs) != 1:
        raise ValueError(
            f"make_encoder: the base model must be functional with one image input. Received: {type(model).__name__}"
        )
    first_head = split_point(model, cut_at)
    out = model.outputs[0] if first_head is None else model.get_layer(first_head).input
    return keras.Model(model.inputs, out, name=ENCODER_NAME)


def transfer_classifier(
    base,
    num_classes,
    *,
    cut_at=None,
    freeze=True,
    pooling="avg",
    dropout=0.0,
    classifier_activation="softmax",
    name="transfer",
    **build_kwargs,
):
    """New classifier = (frozen) encoder of ``base`` → pooling → dropout → ``Dense(num_classes, "predictions")``.

    ``base``: a keras.Model, a ``.keras`` path / run folder, or a registered name (built with
    ``include_top=False`` and ``build_kwargs``). The encoder runs with ``training=False`` so batch-norm
    statistics stay frozen; with ``freeze=True`` none of its weights train (feature extraction).
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"transfer_classifier: num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
    if pooling not in ("avg", "max", "flatten"):
        raise ValueError(f"transfer_classifier: pooling must be 'avg', 'max' or 'flatten'. Received: pooling={pooling!r}")
    encoder = make_encoder(base, cut_at=cut_at, **build_kwargs)
    encoder.trainable = not freeze
    inputs = keras.Input(shape=encoder.inputs[0].shape[1:], name="images")
    x = encoder(inputs, training=False)
    if len(x.shape) == 4:
        if pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
        else:
            x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    # float32 under a mixed precision policy: probabilities (and the loss on them) stay float32
    outputs = keras.layers.Dense(
        num_classes, activation=classifier_activation, name="predictions", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def get_encoder(model):
    """The nested ``"encoder"`` model of a :func:`transfer_classifier` model."""
    try:
        return model.get_layer(ENCODER_NAME)
    except ValueError:
        raise ValueError(
            f"{model.name!r} has no nested '{ENCODER_NAME}' model; build it with transfer_classifier(...)."
        ) from None


_BLOCK_RE = re.compile(r"^(.*?block\d+[a-z]?)(?:_|$)")


def block_name(layer_name):
    """Block a layer belongs to, from keras.applications-style names.

    ``conv2_block1_1_conv`` → ``conv2_block1``; ``block3_conv2`` → ``block3``; ``conv1_bn`` → ``conv1``;
    ``c5_conv`` → ``c5``; ``fc6`` → ``fc6``.
    """
    m = _BLOCK_RE.match(layer_name)
    if m:
        return m.group(1)
    return layer_name.rsplit("_", 1)[0] if "_" in layer_name else layer_name


def encoder_blocks(encoder):
    """Ordered ``[(block name, [layers with weights])]`` of an encoder, input side first."""
    blocks: dict[str, list] = {}
    for layer in _flat_layers(encoder):
        if not layer.weights:
            continue
        blocks.setdefault(block_name(layer.name), []).append(layer)
    return list(blocks.items())


def _is_batch_norm(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


def freeze_encoder(model):
    """Freeze the encoder of a transfer model (feature extraction). Recompile before training."""
    get_encoder(model).trainable = False
    return model


def fine_tune(model, top_n_blocks="all", *, l2sp=None, train_batch_norm=False):
    """Unfreeze the encoder's top ``top_n_blocks`` blocks (or ``"all"``) for fine-tuning.

    Batch-norm layers stay frozen unless ``train_batch_norm`` (their statistics stay frozen either
    way: the encoder is called with ``training=False``). With ``l2sp=λ`` an :class:`L2SP` penalty
    ``λ‖θ − θ_pre‖²`` is attached to the unfrozen encoder weights, θ_pre captured now. Returns the
    names of the unfrozen blocks. Recompile the model (with a lower learning rate) afterwards.
    """
    encoder = get_encoder(model)
    blocks = encoder_blocks(encoder)
    if top_n_blocks == "all":
        n = len(blocks)
    elif isinstance(top_n_blocks, int) and not isinstance(top_n_blocks, bool) and 0 <= top_n_blocks <= len(blocks):
        n = top_n_blocks
    else:
        raise ValueError(
            f"fine_tune: top_n_blocks must be 'all' or an integer in [0, {len(blocks)}] (the encoder's blocks: "
            f"{', '.join(b for b, _ in blocks)}). Received: top_n_blocks={top_n_blocks!r}"
        )
    encoder.trainable = True
    for layer in _flat_layers(encoder):
        layer.trainable = False
    chosen = blocks[len(blocks) - n :] if n else []
    unfrozen = []
    for bname, layers in chosen:
        for layer in layers:
            layer.trainable = train_batch_norm or not _is_batch_norm(layer)
            if layer.trainable:
                unfrozen.append(layer)
    if l2sp is not None:
        apply_l2sp(model, l2sp, layers=unfrozen)
    return [b for b, _ in chosen]


def trainable_summary(model):
    """``{"trainable": n, "non_trainable": m}`` parameter counts (for tables)."""
    count = lambda ws: int(sum(int(np.prod(w.shape)) for w in ws))  # noqa: E731
    return {"trainable": count(model.trainable_weights), "non_trainable": count(model.non_trainable_weights)}
