"""EfficientNet (Tan & Le, 2019): B0..B7 and compound scaling from one block table.

``BLOCKS_ARGS`` is the B0 baseline (keras ``DEFAULT_BLOCKS_ARGS``): seven stages of MBConv blocks
(1×1 expand → k×k depthwise → squeeze-and-excitation → 1×1 linear projection, swish activations,
stochastic depth on the residual branch as keras does it: ``Dropout(rate, noise_shape=(None, 1, 1, 1))``
with the rate growing linearly to ``drop_connect_rate`` over the blocks).

Scaling a network by width ``w`` and depth ``d`` uses keras' rules: filters ``round_filters`` (×w rounded
to a multiple of 8, never below 90%), repeats ``ceil(d·repeats)``. ``efficientnet_b0`` .. ``efficientnet_b7``
use the published coefficient table (``EFFICIENTNET_VARIANTS``) and have keras.applications' exact
parameter counts, the input ``Rescaling`` + ``Normalization`` included (``include_preprocessing``;
its mean/variance are the 7 non-trainable weights keras counts; ``input_max`` says whether inputs are in
[0, 1], kerasvk's pipelines, or raw [0, 255] pixels, keras.applications' convention): 5,330,571 for B0 ... 66,658,687 for B7.

``efficientnet(phi, alpha=1.2, beta=1.1, gamma=1.15)`` is the paper's compound scaling (eq. 3):
depth = α^φ, width = β^φ, resolution = round(224·γ^φ) (the paper gives no rounding rule for resolution;
we round to the nearest pixel). The published B1..B7 were hand-tuned around this rule, so
``efficientnet(phi=k)`` is close to but not equal to B_k; φ = 0 is exactly B0.

Pyramid outputs (``kerasvk.backbone``) are the last MBConv block at each stride (the 1×1 ``top`` conv
belongs to the classifier): for B0, P2..P5 = ``block2b_add``, ``block3b_add``, ``block5c_add``,
``block7a_project_bn`` (24/40/112/320 channels); deeper variants end each stage at a later letter.
"""

from __future__ import annotations

import copy
import math

import keras

from kerasvk.layers.blocks import conv_bn_act, correct_pad, make_divisible, squeeze_excite
from kerasvk.models.classification._weights import KerasTwin
from kerasvk.models.classification.base import (
    P2_P5,
    Pyramid,
    classifier_args,
    classifier_head,
    input_rescaling,
    make_input,
    zoo_model,
)
from kerasvk.registry import register, variant

BLOCKS_ARGS = (
    dict(kernel_size=3, repeats=1, filters_in=32, filters_out=16, expand_ratio=1, strides=1, se_ratio=0.25),
    dict(kernel_size=3, repeats=2, filters_in=16, filters_out=24, expand_ratio=6, strides=2, se_ratio=0.25),
    dict(kernel_size=5, repeats=2, filters_in=24, filters_out=40, expand_ratio=6, strides=2, se_ratio=0.25),
    dict(kernel_size=3, repeats=3, filters_in=40, filters_out=80, expand_ratio=6, strides=2, se_ratio=0.25),
    dict(kernel_size=5, repeats=3, filters_in=80, filters_out=112, expand_ratio=6, strides=1, se_ratio=0.25),
    dict(kernel_size=5, repeats=4, filters_in=112, filters_out=192, expand_ratio=6, strides=2, se_ratio=0.25),
    dict(kernel_size=3, repeats=1, filters_in=192, filters_out=320, expand_ratio=6, strides=1, se_ratio=0.25),
)

# variant -> (width_coefficient, depth_coefficient, resolution, dropout): the published table
EFFICIENTNET_VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

# A config, not an instance (as keras.applications): each layer makes its own initializer. One shared instance
# holds one fixed seed, so every kernel of a shape would start identical, whatever set_random_seed says.
CONV_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}


def mbconv_block(
    x,
    *,
    filters_in,
    filters_out,
    kernel_size=3,
    strides=1,
    expand_ratio=1,
    se_ratio=0.25,
    activation="swish",
    drop_rate=0.0,
    name,
):
    """EfficientNet's MBConv block with keras.applications names (``block2a_expand_conv`` ...)."""
    inputs = x
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = conv_bn_act(
            x,
            filters,
            1,
            padding="same",
            activation=activation,
            act_suffix="activation",
            kernel_initializer=CONV_KERNEL_INITIALIZER,
            name=f"{name}expand",
        )
    if strides == 2:
        x = keras.layers.ZeroPadding2D(correct_pad(x, kernel_size), name=f"{name}dwconv_pad")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="valid" if strides == 2 else "same",
        use_bias=False,
        depthwise_initializer=CONV_KERNEL_INITIALIZER,
        name=f"{name}dwconv",
    )(x)
    x = keras.layers.BatchNormalization(axis=3, name=f"{name}bn")(x)
    x = keras.layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        x = squeeze_excite(
            x,
            max(1, int(filters_in * se_ratio)),
            activation=activation,
            gate="sigmoid",
            kernel_initializer=CONV_KERNEL_INITIALIZER,
            name=f"{name}se",
        )
    x = keras.layers.Conv2D(
        filters_out,
        1,
        padding="same",
        use_bias=False,
        kernel_initializer=CONV_KERNEL_INITIALIZER,
        name=f"{name}project_conv",
    )(x)
    x = keras.layers.BatchNormalization(axis=3, name=f"{name}project_bn")(x)
    if strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = keras.layers.Add(name=f"{name}add")([x, inputs])
    return x


def efficientnet_family(
    width_coefficient=1.0,
    depth_coefficient=1.0,
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="efficientnet",
    dropout=0.2,
    drop_connect_rate=0.2,
    depth_divisor=8,
    activation="swish",
    include_preprocessing=True,
    input_max=1.0,
):
    """EfficientNet scaled by ``width_coefficient`` and ``depth_coefficient`` (keras ``EfficientNet``).

    Family options: ``dropout`` before the classifier, ``drop_connect_rate`` (stochastic depth, max
    rate), ``depth_divisor`` (channel rounding unit), ``activation``, ``include_preprocessing``
    (``Rescaling(1/input_max)`` + ``Normalization`` on the input, as keras.applications), ``input_max``
    (1.0: inputs in [0, 1] as kerasvk's pipelines give; 255: raw pixels, as keras.applications expects).
    """
    for arg, value in (("width_coefficient", width_coefficient), ("depth_coefficient", depth_coefficient)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name}: {arg} must be a number > 0. Received: {arg}={value!r}")
    for arg, value in (("dropout", dropout), ("drop_connect_rate", drop_connect_rate)):
        if not 0 <= value < 1:
            raise ValueError(f"{name}: {arg} must be in [0, 1). Received: {arg}={value!r}")
    shape, head = classifier_args(
        input_shape, num_classes, include_top, pooling, classifier_activation, min_size=32, model=name
    )

    def round_filters(filters):
        return make_divisible(filters * width_coefficient, depth_divisor)

    def round_repeats(repeats):
        return int(math.ceil(depth_coefficient * repeats))

    inputs = make_input(shape)
    x = inputs
    if include_preprocessing:
        x = input_rescaling(x, input_max, model=name)
        x = keras.layers.Normalization(axis=3, name="normalization")(x)
    x = keras.layers.ZeroPadding2D(correct_pad(x, 3), name="stem_conv_pad")(x)
    x = conv_bn_act(
        x,
        round_filters(32),
        3,
        strides=2,
        padding="valid",
        activation=activation,
        act_suffix="activation",
        kernel_initializer=CONV_KERNEL_INITIALIZER,
        name="stem",
    )
    pyramid = Pyramid(stride=2)
    blocks_args = copy.deepcopy(BLOCKS_ARGS)
    total = float(sum(round_repeats(a["repeats"]) for a in blocks_args))
    b = 0
    for i, args in enumerate(blocks_args):
        filters_in, filters_out = round_filters(args.pop("filters_in")), round_filters(
            args.pop("filters_out")
        )
        for j in range(round_repeats(args.pop("repeats"))):
            x = mbconv_block(
                x,
                **{**args, "strides": args["strides"] if j == 0 else 1},
                filters_in=filters_in if j == 0 else filters_out,
                filters_out=filters_out,
                activation=activation,
                drop_rate=drop_connect_rate * b / total,
                name=f"block{i + 1}{chr(j + 97)}_",
            )
            pyramid.add(x, args["strides"] if j == 0 else 1)
            b += 1
    x = conv_bn_act(
        x,
        round_filters(1280),
        1,
        padding="same",
        activation=activation,
        act_suffix="activation",
        kernel_initializer=CONV_KERNEL_INITIALIZER,
        name="top",
    )
    return zoo_model(inputs, classifier_head(x, **head, dropout=dropout), name=name, pyramid=pyramid)


def compound_coefficients(phi=0, alpha=1.2, beta=1.1, gamma=1.15, base_resolution=224):
    """Compound scaling (paper eq. 3): depth α^φ, width β^φ, resolution round(base·γ^φ).

    Raises ``ValueError`` for φ < 0 or α, β, γ < 1 (the paper's constraints).
    """
    if not isinstance(phi, (int, float)) or isinstance(phi, bool) or phi < 0:
        raise ValueError(f"efficientnet: phi must be a number >= 0 (0 is B0). Received: phi={phi!r}")
    for arg, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not (isinstance(value, (int, float)) and value >= 1):
            raise ValueError(
                f"efficientnet: {arg} must be >= 1 (paper: α, β, γ ≥ 1). Received: {arg}={value!r}"
            )
    if not (isinstance(base_resolution, int) and base_resolution >= 32):
        raise ValueError(
            f"efficientnet: base_resolution must be an integer >= 32. Received: {base_resolution!r}"
        )
    return {
        "phi": phi,
        "depth_coefficient": alpha**phi,
        "width_coefficient": beta**phi,
        "resolution_coefficient": gamma**phi,
        "resolution": int(round(base_resolution * gamma**phi)),
        "flops_factor": (alpha * beta**2 * gamma**2) ** phi,
    }


def _compound_info(phi=0, alpha=1.2, beta=1.1, gamma=1.15, base_resolution=224, **_):
    return {"scaling": compound_coefficients(phi, alpha, beta, gamma, base_resolution)}


@register(
    "efficientnet",
    task="classification",
    family="efficientnet",
    description="EfficientNet by compound scaling: depth α^φ, width β^φ, resolution 224·γ^φ",
    test_kwargs={"phi": 0, "input_shape": (32, 32, 3)},
    info=_compound_info,
    pyramid_levels=P2_P5,
)
def efficientnet(
    phi=0,
    alpha=1.2,
    beta=1.1,
    gamma=1.15,
    input_shape=None,
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    base_resolution=224,
    dropout=0.2,
    drop_connect_rate=0.2,
    include_preprocessing=True,
    input_max=1.0,
):
    """EfficientNet-φ by compound scaling of B0; ``input_shape`` defaults to the derived resolution."""
    c = compound_coefficients(phi, alpha, beta, gamma, base_resolution)
    if input_shape is None:
        input_shape = (c["resolution"], c["resolution"], 3)
    return efficientnet_family(
        width_coefficient=c["width_coefficient"],
        depth_coefficient=c["depth_coefficient"],
        input_shape=input_shape,
        num_classes=num_classes,
        include_top=include_top,
        pooling=pooling,
        classifier_activation=classifier_activation,
        name=name or f"efficientnet_phi{phi:g}",
        dropout=dropout,
        drop_connect_rate=drop_connect_rate,
        include_preprocessing=include_preprocessing,
        input_max=input_max,
    )


def _variant_info(v):
    w, d, r, _ = EFFICIENTNET_VARIANTS[v]

    def info(**kwargs):
        return {"scaling": {"width_coefficient": w, "depth_coefficient": d, "resolution": r}}

    return info


(
    efficientnet_b0,
    efficientnet_b1,
    efficientnet_b2,
    efficientnet_b3,
    efficientnet_b4,
    efficientnet_b5,
    efficientnet_b6,
    efficientnet_b7,
) = (
    variant(
        efficientnet_family,
        f"efficientnet_{v}",
        family="efficientnet",
        fixed={},
        defaults={
            "width_coefficient": w,
            "depth_coefficient": d,
            "input_shape": (r, r, 3),
            "dropout": drop,
        },
        description=f"EfficientNet-{v.upper()} (width {w}, depth {d}, {r}×{r}) as keras.applications",
        # tiny test build: one block per stage, narrow; the full graph is covered by exact counts
        test_kwargs={"input_shape": (32, 32, 3), "width_coefficient": 0.25, "depth_coefficient": 0.1},
        info=_variant_info(v),
        weights_loader=KerasTwin(f"EfficientNet{v.upper()}"),
        pyramid_levels=P2_P5,
    )
    for v, (w, d, r, drop) in EFFICIENTNET_VARIANTS.items()
)
