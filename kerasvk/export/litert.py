"""LiteRT (TensorFlow Lite) export of classifiers for phones and microcontrollers.

``export_litert(model, folder, representative=images)`` writes, atomically::

    folder/model_float32.tflite   the float model (same numbers as Keras up to float rounding)
    folder/model_int8.tflite      full-integer post-training quantisation (int8 weights and activations,
                                  calibrated on ``representative`` images; float32 input/output tensors, so
                                  callers feed the same [0, 1] images as to the Keras model)
    folder/labels.txt             one class name per line (when known)

``evaluate_litert(path, images, labels)`` runs a file in the LiteRT interpreter (``ai-edge-litert``, the
successor of ``tf.lite.Interpreter``; the latter is used when the former is not installed) and returns
its accuracy and the probabilities. ``kerasvk export RUN --format litert`` does both on the run's own
data and writes ``litert.json`` (sizes, accuracy of each file and of the Keras model on the test split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasvk import io

QUANTIZATIONS = ("float32", "int8")
# the families meant for devices (any fixed-size image classifier converts; these are the ones we test)
DEVICE_FAMILIES = ("mobilenet", "efficientnet", "lenet", "simple_cnn")


def _check_classifier(model):
    shape = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else None
    if shape is None or len(shape) != 3 or None in shape or len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            "LiteRT export takes an image classifier with one fixed-size (height, width, channels) input and one "
            f"(batch, classes) output. Received: {model.name} with inputs "
            f"{[tuple(t.shape) for t in model.inputs]} and outputs {[tuple(t.shape) for t in model.outputs]}."
        )
    return shape


def convert(model, quantization="float32", representative=None) -> bytes:
    """The ``.tflite`` bytes of ``model``; ``int8`` needs ``representative`` float images (N ≥ 1) for calibration."""
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}. Allowed: {', '.join(QUANTIZATIONS)}.")
    shape = _check_classifier(model)

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "int8":
        reps = np.asarray(representative if representative is not None else [], dtype="float32")
        if reps.ndim != 4 or len(reps) < 1 or tuple(reps.shape[1:]) != shape:
            raise ValueError(
                f"int8 quantisation needs representative images of shape (N, {', '.join(map(str, shape))}), N >= 1. "
                f"Received: {None if representative is None else reps.shape}"
            )

        def dataset():
            for img in reps:
                yield [img[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    return converter.convert()


def _interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - the declared dependency is missing
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No LiteRT model at {path} (expected a .tflite file).")
    try:
        interp = Interpreter(model_path=str(path))
        interp.allocate_tensors()
    except Exception as e:
        raise ValueError(f"Cannot load LiteRT model {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    return interp


def predict_litert(path, images) -> np.ndarray:
    """Probabilities ``(N, classes)`` of float images in [0, 1] through the LiteRT interpreter."""
    interp = _interpreter(path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    images = np.asarray(images, dtype="float32")
    expected = tuple(inp["shape"][1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"{path} takes images of shape (N, {', '.join(map(str, expected))}). Received: {images.shape}")
    probs = []
    for img in images:
        interp.set_tensor(inp["index"], img[None])
        interp.invoke()
        probs.append(np.array(interp.get_tensor(out["index"])[0]))
    return np.stack(probs) if probs else np.zeros((0, int(out["shape"][-1])), "float32")


def evaluate_litert(path, images, labels) -> dict:
    """``{"accuracy", "size_bytes"}`` of a ``.tflite`` file on labelled images."""
    probs = predict_litert(path, images)
    labels = np.asarray(labels).reshape(-1)
    return {"accuracy": float(np.mean(np.argmax(probs, -1) == labels)), "size_bytes": Path(path).stat().st_size}


def export_litert(model, folder, *, representative=None, quantizations=QUANTIZATIONS, class_names=None) -> dict:
    """Write ``model_<q>.tflite`` for each quantisation (and ``labels.txt``) into ``folder``; ``{q: path}``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"LiteRT export folder {folder} is an existing file; give a folder.")
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise ValueError(f"Unknown quantization {q!r}. Allowed: {', '.join(QUANTIZATIONS)}.")
    blobs = {q: convert(model, q, representative) for q in quantizations}  # everything converts before anything is written
    paths = {q: io.write_bytes(folder / f"model_{q}.tflite", blob) for q, blob in blobs.items()}
    if class_names is not None:
        io.write_text(folder / "labels.txt", "".join(f"{c}\n" for c in class_names))
    return paths


def export_run_litert(run, out=None, *, quantizations=QUANTIZATIONS, calibration_images=200) -> dict:
    """LiteRT files of a classifier run (calibrated on its training images), evaluated on its test split.

    Writes ``out`` (default ``RUN/litert``) with the ``.tflite`` files, ``labels.txt`` and ``litert.json``
    (per file: size in bytes, test accuracy, agreement of its top-1 with Keras'; the Keras model's accuracy).
    """
    from kerasvk.training.trainer import load_run_model, run_data

    model, config = load_run_model(run)
    if config.get("task", "classification") != "classification":
        raise ValueError(f"LiteRT export is for classifiers; {run} holds a {config.get('task')} model "
                         f"({config['model']}). Export it as a SavedModel (the default --format savedmodel).")
    rd = run_data(run)
    reps = _images(rd.train, calibration_images)
    test_x, test_y = _images(rd.test, None, labels=True)
    out = Path(out) if out is not None else Path(run) / "litert"
    paths = export_litert(model, out, representative=reps, quantizations=quantizations,
                          class_names=config.get("class_names"))
    keras_pred = np.argmax(np.asarray(model.predict(test_x, verbose=0)), -1)
    report = {"model": config["model"], "test_images": int(len(test_x)),
              "keras_accuracy": float(np.mean(keras_pred == test_y)), "files": {}}
    for q, path in paths.items():
        probs = predict_litert(path, test_x)
        pred = np.argmax(probs, -1)
        report["files"][q] = {"path": str(path), "size_bytes": path.stat().st_size,
                              "accuracy": float(np.mean(pred == test_y)),
                              "top1_agreement_with_keras": float(np.mean(pred == keras_pred))}
    if "float32" in report["files"] and "int8" in report["files"]:
        f, i = report["files"]["float32"], report["files"]["int8"]
        report["int8_accuracy_drop"] = f["accuracy"] - i["accuracy"]
        report["int8_size_ratio"] = i["size_bytes"] / f["size_bytes"]
    io.write_json(report, out / "litert.json")
    return report


def _images(dataset, limit, labels=False):
    xs, ys, n = [], [], 0
    for x, y in dataset:
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
        n += len(xs[-1])
        if limit is not None and n >= limit:
            break
    x = np.concatenate(xs)[:limit]
    if not labels:
        return x
    y = np.concatenate(ys)
    return x, (np.argmax(y, -1) if y.ndim == 2 else y.reshape(-1))
