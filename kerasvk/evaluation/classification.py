"""Classification metrics people report: accuracy, top-k, per-class/macro precision, recall, F1.

Accuracy, top-k and F1 come from keras metrics (``SparseCategoricalAccuracy``,
``SparseTopKCategoricalAccuracy``, ``F1Score``); the confusion matrix is ours, and precision/recall
per class are read off it (keras' ``Precision``/``Recall`` are binary-threshold metrics).
"""

from __future__ import annotations

import numpy as np


def predict_dataset(model, dataset):
    """Run ``model`` over a batched ``(x, y)`` dataset; return (y_true int, probabilities, images)."""
    ys, ps, xs = [], [], []
    for x, y in dataset:
        ps.append(np.asarray(model(x, training=False)))
        y = np.asarray(y)
        ys.append(np.argmax(y, axis=-1) if y.ndim == 2 else y)
        xs.append(np.asarray(x))
    if not ys:
        raise ValueError("The evaluation dataset is empty.")
    return np.concatenate(ys).astype("int64"), np.concatenate(ps), np.concatenate(xs)


def confusion_matrix(y_true, y_pred, num_classes) -> np.ndarray:
    """``cm[i, j]`` = number of examples of true class i predicted as class j."""
    y_true = np.asarray(y_true, dtype="int64")
    y_pred = np.asarray(y_pred, dtype="int64")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
    for nm, v in (("y_true", y_true), ("y_pred", y_pred)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{nm} has labels outside [0, {num_classes}). Received range [{v.min()}, {v.max()}].")
    cm = np.zeros((num_classes, num_classes), dtype="int64")
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def classification_report(y_true, probs, class_names, top_k=(5,)) -> dict:
    """All metrics as a JSON-ready dict."""
    import keras

    y_true = np.asarray(y_true, dtype="int64")
    probs = np.asarray(probs, dtype="float32")
    k = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != k:
        raise ValueError(f"probabilities must have shape (N, {k}). Received: {probs.shape}")
    y_pred = probs.argmax(axis=-1)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype("float64")
    precision = np.divide(tp, cm.sum(axis=0), out=np.zeros(k), where=cm.sum(axis=0) > 0)
    recall = np.divide(tp, cm.sum(axis=1), out=np.zeros(k), where=cm.sum(axis=1) > 0)

    acc = keras.metrics.SparseCategoricalAccuracy()
    acc.update_state(y_true, probs)
    one_hot = np.eye(k, dtype="float32")[y_true]
    f1_each = keras.metrics.F1Score(average=None)
    f1_each.update_state(one_hot, probs)
    f1_macro = keras.metrics.F1Score(average="macro")
    f1_macro.update_state(one_hot, probs)
    f1 = np.asarray(f1_each.result(), dtype="float64")

    report = {
        "num_examples": int(len(y_true)),
        "accuracy": float(acc.result()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1_macro.result()),
        "per_class": {
            str(name): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(cm[i].sum()),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "class_names": [str(c) for c in class_names],
    }
    for kk in top_k:
        if kk < k:
            m = keras.metrics.SparseTopKCategoricalAccuracy(k=kk)
            m.update_state(y_true, probs)
            report[f"top_{kk}_accuracy"] = float(m.result())
    return report


def format_report(report: dict) -> str:
    """A printable table of the report."""
    names = report["class_names"]
    w = max(10, *(len(n) for n in names))
    lines = [f"{'class':<{w}}  precision  recall     f1  support"]
    for n in names:
        r = report["per_class"][n]
        lines.append(f"{n:<{w}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:.4f}  {r['support']:7d}")
    lines.append(
        f"{'macro avg':<{w}}  {report['macro_precision']:9.4f}  {report['macro_recall']:6.4f}  "
        f"{report['macro_f1']:.4f}  {report['num_examples']:7d}"
    )
    lines.append(f"accuracy: {report['accuracy']:.4f}")
    for key in sorted(k for k in report if k.startswith("top_")):
        lines.append(f"{key.replace('_', '-')}: {report[key]:.4f}")
    return "\n".join(lines)
