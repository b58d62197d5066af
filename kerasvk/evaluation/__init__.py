"""Evaluation: classification metrics and confusion matrix; FID and Inception Score for generators; COCO mAP
(pycocotools) for detectors."""

from kerasvk.evaluation.classification import (
    classification_report,
    confusion_matrix,
    format_report,
    predict_dataset,
)
from kerasvk.evaluation.detection import coco_evaluate, format_detection_report
from kerasvk.evaluation.generative import fid, inception_score

__all__ = ["classification_report", "confusion_matrix", "format_report", "predict_dataset", "fid", "inception_score",
           "coco_evaluate", "format_detection_report"]
