"""Named, serializable layers shared by model families (no Lambda layers anywhere)."""

from kerasvk.layers.pooling import AdaptiveAveragePooling2D

__all__ = ["AdaptiveAveragePooling2D"]
