"""The data path, in one package: sources → seeded split → cache → shuffle → batch → augment → prefetch."""

from kerasvk.data.augment import PRESETS as AUGMENT_PRESETS
from kerasvk.data.augment import Augmenter, augmentation_model, make_augmenter, parse_augment
from kerasvk.data.detection import (
    DETECTION_AUGMENTS,
    DETECTION_SOURCES,
    DetectionAugmenter,
    DetectionData,
    check_boxes,
    load_detection,
    parse_detection_source,
)
from kerasvk.data.embedded import PATTERN_CLASSES_5, PATTERN_CLASSES_10, digits, patterns
from kerasvk.data.pipeline import dataset_arrays, make_pipeline, split_indices, to_float
from kerasvk.data.shapes import SHAPE_CLASSES  # the generator: kerasvk.data.shapes.shapes (module name kept)
from kerasvk.data.sources import SOURCE_FORMS, ImageData, load, load_arrays, parse_source

__all__ = [
    "dataset_arrays",
    "Augmenter",
    "AUGMENT_PRESETS",
    "augmentation_model",
    "make_augmenter",
    "parse_augment",
    "load",
    "load_arrays",
    "parse_source",
    "ImageData",
    "SOURCE_FORMS",
    "make_pipeline",
    "split_indices",
    "to_float",
    "digits",
    "patterns",
    "PATTERN_CLASSES_5",
    "PATTERN_CLASSES_10",
    "SHAPE_CLASSES",
    "load_detection",
    "DetectionData",
    "DetectionAugmenter",
    "DETECTION_AUGMENTS",
    "DETECTION_SOURCES",
    "check_boxes",
    "parse_detection_source",
]
