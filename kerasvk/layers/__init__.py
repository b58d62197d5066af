"""Named, serializable layers shared by model families (no Lambda layers anywhere)."""

from kerasvk.layers.pooling import AdaptiveAveragePooling2D
from kerasvk.layers.shortcut import PadChannelsShortcut
from kerasvk.layers.transformer import ClassToken, PositionEmbedding, TakeToken, interpolate_position_embeddings

__all__ = [
    "AdaptiveAveragePooling2D",
    "ClassToken",
    "PadChannelsShortcut",
    "PositionEmbedding",
    "TakeToken",
    "interpolate_position_embeddings",
]

# Transfer / domain adaptation / ensembles (training techniques).
from kerasvk.layers.ensemble import CombinePredictions  # noqa: E402
from kerasvk.layers.gradient_reversal import GradientReversal, reverse_gradient  # noqa: E402

__all__ += ["CombinePredictions", "GradientReversal", "reverse_gradient"]

# Augmentation (fused geometric/colour ops and exact-area CutMix; see kerasvk.data.augment).
from kerasvk.layers.augment import CutMix, RandomAffine, RandomColor  # noqa: E402

__all__ += ["CutMix", "RandomAffine", "RandomColor"]
