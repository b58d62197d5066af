"""Vision Transformer (Dosovitskiy et al., 2021): ViT-Ti/S/B/L over one table.

Image → non-overlapping ``patch_size`` patches embedded by a strided conv (``patch_embed``) → class token
prepended (``class_token``) → learned position embeddings (``position_embedding``) → dropout →
``num_layers`` pre-norm encoder blocks (LN → multi-head self-attention → dropout → add; LN → MLP with
GELU → dropout → add; LN ε 1e-6) → final layer norm (``encoder_norm``) → class token → ``predictions``.
``vit_base_16`` at 224×224×3 with 1000 classes has 86,567,656 parameters (the paper's / timm's count).

Any input size divisible by ``patch_size`` builds. To reuse weights trained at one resolution at
another, build the model at the new size and call ``transfer_weights(source, target)``: every layer is
copied and the position embeddings are interpolated (bicubic) to the new patch grid.
"""

from __future__ import annotations

import keras

from kerasvk.layers import ClassToken, PositionEmbedding, interpolate_position_embeddings
from kerasvk.models.classification.base import classifier_args, classifier_head, make_input, zoo_model
from kerasvk.registry import variant

# size -> (hidden_dim, num_layers, num_heads, mlp_dim)
VIT_CONFIGS = {
    "tiny": (192, 12, 3, 768),
    "small": (384, 12, 6, 1536),
    "base": (768, 12, 12, 3072),
    "large": (1024, 24, 16, 4096),
}
# registered variants: (size, patch size)
VIT_VARIANTS = (("tiny", 16), ("small", 16), ("base", 16), ("base", 32), ("large", 16), ("large", 32))


def encoder_block(x, *, num_heads, mlp_dim, dropout=0.0, attention_dropout=0.0, epsilon=1e-6, name):
    """Pre-norm transformer encoder block (LN → MHSA → add, LN → MLP(GELU) → add)."""
    dim = x.shape[-1]
    y = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_ln1")(x)
    y = keras.layers.MultiHeadAttention(
        num_heads, dim // num_heads, dropout=attention_dropout, name=f"{name}_attention"
    )(y, y)
    y = keras.layers.Dropout(dropout, name=f"{name}_attention_dropout")(y)
    x = keras.layers.Add(name=f"{name}_add1")([x, y])
    y = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_ln2")(x)
    y = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp_dense1")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_mlp_dropout1")(y)
    y = keras.layers.Dense(dim, name=f"{name}_mlp_dense2")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_mlp_dropout2")(y)
    return keras.layers.Add(name=f"{name}_add2")([x, y])


def vit(
    size="base",
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    patch_size=16,
    hidden_dim=None,
    num_layers=None,
    num_heads=None,
    mlp_dim=None,
    dropout=0.0,
    attention_dropout=0.0,
):
    """ViT of ``size`` in ``VIT_CONFIGS`` ("tiny", "small", "base", "large") with ``patch_size`` patches.

    Family options: ``patch_size``; ``hidden_dim``, ``num_layers``, ``num_heads``, ``mlp_dim`` override
    the size's configuration; ``dropout`` (embeddings, attention output, MLP) and ``attention_dropout``.
    With ``include_top=False``: ``pooling`` None returns the normalised token sequence
    ``(batch, 1 + patches, hidden_dim)``, "avg"/"max" pool it over tokens.
    """
    if size not in VIT_CONFIGS:
        raise ValueError(f"vit: size must be one of {list(VIT_CONFIGS)}. Received: size={size!r}")
    name = name or f"vit_{size}_{patch_size}"
    cfg = dict(zip(("hidden_dim", "num_layers", "num_heads", "mlp_dim"), VIT_CONFIGS[size]))
    for k, v in (
        ("hidden_dim", hidden_dim),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
        ("mlp_dim", mlp_dim),
    ):
        if v is not None:
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name}: {k} must be an integer >= 1. Received: {k}={v!r}")
            cfg[k] = v
    if cfg["hidden_dim"] % cfg["num_heads"]:
        raise ValueError(
            f"{name}: hidden_dim must be divisible by num_heads. "
            f"Received: hidden_dim={cfg['hidden_dim']}, num_heads={cfg['num_heads']}"
        )
    if not (isinstance(patch_size, int) and patch_size >= 1):
        raise ValueError(f"{name}: patch_size must be an integer >= 1. Received: patch_size={patch_size!r}")
    for arg, value in (("dropout", dropout), ("attention_dropout", attention_dropout)):
        if not 0 <= value < 1:
            raise ValueError(f"{name}: {arg} must be in [0, 1). Received: {arg}={value!r}")
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation, min_size=patch_size, model=name
    )
    h, w = shape[:2]
    if h is None or w is None or h % patch_size or w % patch_size:
        raise ValueError(
            f"{name}: input height and width must be known multiples of patch_size={patch_size} "
            f"(e.g. {patch_size * max(1, (h or 224) // patch_size)}). Received: input_shape={shape}"
        )
    grid = (h // patch_size, w // patch_size)
    dim = cfg["hidden_dim"]

    inputs = make_input(shape)
    x = keras.layers.Conv2D(dim, patch_size, strides=patch_size, name="patch_embed")(inputs)
    x = keras.layers.Reshape((grid[0] * grid[1], dim), name="patch_flatten")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(grid, num_prefix_tokens=1, name="position_embedding")(x)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(cfg["num_layers"]):
        x = encoder_block(
            x,
            num_heads=cfg["num_heads"],
            mlp_dim=cfg["mlp_dim"],
            dropout=dropout,
            attention_dropout=attention_dropout,
            name=f"encoder_block{i + 1}",
        )
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    return zoo_model(inputs, classifier_head(x, **head, head="token"), name=name)


def transfer_weights(source, target, method="bicubic"):
    """Copy weights layer by layer (by name) from ``source`` into ``target``; return ``target``.

    ``PositionEmbedding`` layers whose patch grids differ are interpolated with
    ``interpolate_position_embeddings``, so a ViT trained at one resolution runs at another.
    Layers whose other weights differ in shape raise ``ValueError``.
    """
    src_layers = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        src = src_layers.get(layer.name)
        if src is None or not src.weights:
            continue
        if isinstance(layer, PositionEmbedding) and tuple(src.grid_size) != tuple(layer.grid_size):
            emb = interpolate_position_embeddings(
                src.embedding, src.grid_size, layer.grid_size, src.num_prefix_tokens, method=method
            )
            layer.embedding.assign(emb)
            continue
        values = src.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            raise ValueError(
                f"transfer_weights: layer {layer.name!r} weight shapes differ: "
                f"{[v.shape for v in values]} vs {[tuple(w.shape) for w in layer.weights]}"
            )
        layer.set_weights(values)
    return target


_TINY = {"input_shape": (32, 32, 3), "hidden_dim": 16, "num_layers": 1, "num_heads": 2, "mlp_dim": 32}

vit_tiny_16, vit_small_16, vit_base_16, vit_base_32, vit_large_16, vit_large_32 = (
    variant(
        vit,
        f"vit_{size}_{p}",
        family="vit",
        fixed={"size": size},
        defaults={"patch_size": p},
        description=(
            f"ViT-{size.title()}/{p} (hidden {VIT_CONFIGS[size][0]}, {VIT_CONFIGS[size][1]} layers, "
            f"{VIT_CONFIGS[size][2]} heads, MLP {VIT_CONFIGS[size][3]})"
        ),
        test_kwargs={**_TINY, "patch_size": 8 if p == 16 else 16},
    )
    for size, p in VIT_VARIANTS
)
