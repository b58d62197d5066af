"""Evaluation: classification metrics and confusion matrix (more metrics live in submodules)."""

from kerasvk.evaluation.classification import (
    classification_report,
    confusion_matrix,
    format_report,
    predict_dataset,
)

__all__ = ["classification_report", "confusion_matrix", "format_report", "predict_dataset"]
