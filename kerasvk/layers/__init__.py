"""Named, serializable layers shared by model families (no Lambda layers anywhere).

Importing this package registers every kerasvk layer with Keras' serialization, so ``.keras`` files
that use them load with ``safe_mode=True``.
"""

# Pooling, shortcuts, transformer tokens (classification zoo).
from kerasvk.layers.pooling import AdaptiveAveragePooling2D
from kerasvk.layers.shortcut import PadChannelsShortcut
from kerasvk.layers.transformer import ClassToken, PositionEmbedding, TakeToken, interpolate_position_embeddings

# Augmentation (fused geometric/colour ops and exact-area CutMix; see kerasvk.data.augment).
from kerasvk.layers.augment import CutMix, RandomAffine, RandomColor

# Transfer / domain adaptation / ensembles (training techniques).
from kerasvk.layers.ensemble import CombinePredictions
from kerasvk.layers.gradient_reversal import GradientReversal, reverse_gradient

# Generative and autoregressive models.
from kerasvk.layers.generative import Sampling, seeded_normal
from kerasvk.layers.causal_conv import CausalConv1D, GatedActivation, MaskedConv2D, WaveNetResidualBlock
from kerasvk.layers.causal_attention import CausalSelfAttention, TokenAndPositionEmbedding, TransformerDecoderBlock

__all__ = [
    "AdaptiveAveragePooling2D",
    "PadChannelsShortcut",
    "ClassToken",
    "PositionEmbedding",
    "TakeToken",
    "interpolate_position_embeddings",
    "CutMix",
    "RandomAffine",
    "RandomColor",
    "CombinePredictions",
    "GradientReversal",
    "reverse_gradient",
    "Sampling",
    "seeded_normal",
    "CausalConv1D",
    "GatedActivation",
    "MaskedConv2D",
    "WaveNetResidualBlock",
    "CausalSelfAttention",
    "TokenAndPositionEmbedding",
    "TransformerDecoderBlock",
]
