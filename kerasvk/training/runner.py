"""Train → evaluate → export for registered classifiers: what ``kerasvk train/evaluate/export`` run.

A run folder holds everything a run produced::

    run.json          the configuration (model, data, seed, class names, ...) — enough to re-create the data
    history.json      per-epoch metrics (including the learning rate)
    metrics.json      test-split report (accuracy, top-k, per-class/macro precision/recall/F1, confusion matrix)
    model.keras       the trained model (loads with safe_mode=True)
    training_log.csv  CSVLogger output
    logs/             TensorBoard
    checkpoints/      best-by-validation-loss checkpoint
    plots/            history.png, confusion_matrix.png, predictions.png

Every file is written atomically (temporary path, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")

# What `kerasvk train` does when neither the user nor the model's registered recipe says otherwise.
TRAIN_DEFAULTS = {
    "epochs": 30,
    "batch_size": 64,
    "lr": 1e-3,
    "optimizer": "adam",
    "augment": None,
    "schedule": None,
    "warmup": 0,
    "label_smoothing": 0.0,
    "l2": 0.0,
}


def resolve_train_options(model, **given) -> dict:
    """Explicit options, else the model's registered ``train_defaults``, else ``TRAIN_DEFAULTS``."""
    from kerasvk.registry import get_spec

    recipe = get_spec(model).train_defaults
    unknown = sorted(set(given) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown training option(s) {unknown}. Allowed: {', '.join(TRAIN_DEFAULTS)}.")
    return {
        k: given[k] if given.get(k) is not None else recipe.get(k, default) for k, default in TRAIN_DEFAULTS.items()
    }


def write_json(obj, path) -> Path:
    """Write JSON atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json", prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)
    return path


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def save_model_atomic(model, path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def make_optimizer(name, learning_rate):
    import keras

    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}. Allowed: {', '.join(OPTIMIZERS)}.")
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
            raise ValueError(f"lr must be a positive number. Received: lr={learning_rate!r}")
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=1e-4)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    return keras.optimizers.RMSprop(learning_rate)


def classification_loss_and_metrics(one_hot=False, label_smoothing=0.0, from_logits=False):
    """Loss and accuracy metrics for integer or one-hot labels (label smoothing needs one-hot)."""
    import keras

    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1). Received: {label_smoothing!r}")
    if one_hot or label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)
        metrics = [
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=3, name="top3_accuracy"),
        ]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        metrics = [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3_accuracy"),
        ]
    return loss, metrics


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the backend; make TF ops deterministic so reruns repeat on CPU."""
    import keras

    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def default_callbacks(out: Path, *, early_stopping=None, extra=()):
    """ModelCheckpoint, BackupAndRestore, CSVLogger, TensorBoard, TerminateOnNaN (+ opt-in EarlyStopping)."""
    import keras

    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    from kerasvk.training.schedules import LearningRateLogger

    cbs = [
        LearningRateLogger(),  # first, so History/CSVLogger see logs["learning_rate"]
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(
            str(out / "checkpoints" / "best.keras"), monitor="val_loss", save_best_only=True
        ),
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.CSVLogger(str(out / "training_log.csv")),
        keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False, profile_batch=0),
    ]
    if early_stopping:
        cbs.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(early_stopping), restore_best_weights=True)
        )
    cbs.extend(extra)
    return cbs


def train(
    model="lenet5",
    data="digits",
    *,
    epochs=None,
    batch_size=None,
    lr=None,
    optimizer=None,
    seed=0,
    out=None,
    image_size=None,
    channels=None,
    val_split=0.1,
    test_split=0.2,
    early_stopping=None,
    label_smoothing=None,
    augment=None,
    one_hot=False,
    callbacks=(),
    schedule=None,
    warmup=None,
    l2=None,
    model_kwargs=None,
    verbose="auto",
) -> dict:
    """Train a registered classifier on a data source and fill a run folder. Returns the test report.

    Training options left as None come from the model's registered recipe (``train_defaults`` in
    its ``@register``), then from ``TRAIN_DEFAULTS``; the values used are recorded in ``run.json``.
    """
    import kerasvk
    from kerasvk import data as kdata

    recipe = resolve_train_options(
        model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        augment=augment,
        schedule=schedule,
        warmup=warmup,
        label_smoothing=label_smoothing,
        l2=l2,
    )
    epochs, batch_size, lr, optimizer = recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["optimizer"]
    augment, schedule, warmup = recipe["augment"], recipe["schedule"], recipe["warmup"]
    label_smoothing, l2 = recipe["label_smoothing"], recipe["l2"]
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer. Received: epochs={epochs!r}")
    spec = kerasvk.registry.get_spec(model)
    if spec.task != "classification":
        raise ValueError(
            f"`train` fits classifiers; {model!r} is a {spec.task} model (see its recipe). "
            f"Classifiers: {', '.join(kerasvk.list_models('classification'))}."
        )
    from kerasvk.data.augment import describe, make_augmenter

    augment = make_augmenter(augment, seed=seed)  # a config string/dict → Augmenter (None: no-op config)
    one_hot = one_hot or bool(augment is not None and augment.needs_one_hot)  # CutMix/MixUp mix labels
    if schedule:
        from kerasvk.training.schedules import parse_schedule

        parse_schedule(schedule)  # fail before anything is written
    set_seed(seed)
    source_name = data if isinstance(data, str) else "arrays"
    out = Path(out or Path("runs") / f"{model}-{source_name.replace(':', '_').replace('/', '_')}")
    out.mkdir(parents=True, exist_ok=True)

    if image_size is None and spec.task == "classification" and isinstance(data, str) and data.startswith("folder:"):
        image_size = (spec.default_input_shape or (224, 224, 3))[:2]
    ds = kdata.load(
        data,
        image_size=image_size,
        channels=channels,
        batch_size=batch_size,
        val_split=val_split,
        test_split=test_split,
        seed=seed,
        augment=augment,
        one_hot=one_hot or bool(label_smoothing),
    )
    kw = dict(model_kwargs or {})
    kw.setdefault("input_shape", ds.input_shape)
    kw.setdefault("num_classes", ds.num_classes)
    net = kerasvk.build(model, **kw)
    if l2:
        from kerasvk.training.regularization import apply_weight_regularization

        apply_weight_regularization(net, l2=l2)
    lr_value = lr
    if schedule:
        from kerasvk.training.schedules import make_schedule, parse_schedule

        name, opts = parse_schedule(schedule)
        if not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be a whole number of epochs >= 0. Received: warmup={warmup!r}")
        steps = -(-ds.counts["train"] // batch_size)  # the schedule is per step; options count epochs
        if "step_size" in opts:
            opts["step_size"] = int(opts["step_size"]) * steps
        if "k" in opts:
            opts["k"] = opts["k"] / steps
        lr = make_schedule(name, lr, epochs * steps, warmup=warmup * steps, **opts)
    loss, metrics = classification_loss_and_metrics(one_hot or bool(label_smoothing), label_smoothing)
    net.compile(optimizer=make_optimizer(optimizer, lr), loss=loss, metrics=metrics)

    config = {
        "model": model,
        "model_kwargs": kw,
        "data": source_name,
        "image_size": list(ds.input_shape[:2]),
        "channels": ds.input_shape[2],
        "val_split": val_split,
        "test_split": test_split,
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr_value if isinstance(lr_value, (int, float)) else repr(lr_value),
        "optimizer": optimizer,
        "label_smoothing": label_smoothing,
        "augment": describe(augment.config) if augment is not None else "none",
        "schedule": schedule,
        "warmup": warmup,
        "l2": l2,
        "class_names": ds.class_names,
        "counts": ds.counts,
        "parameters": int(net.count_params()),
    }
    write_json(config, out / "run.json")

    t0 = time.time()
    hist = net.fit(
        ds.train,
        validation_data=ds.val,
        epochs=epochs,
        callbacks=default_callbacks(out, early_stopping=early_stopping, extra=callbacks),
        verbose=verbose,
    )
    train_seconds = time.time() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    write_json(history, out / "history.json")
    save_model_atomic(net, out / "model.keras")

    report = evaluate_model(net, ds.test, ds.class_names, out)
    report["train_seconds"] = round(train_seconds, 2)
    report["epochs_run"] = len(history.get("loss", []))
    write_json(report, out / "metrics.json")
    from kerasvk import plots

    plots.history_curves(history, out / "plots" / "history.png", title=f"{model} on {source_name}")
    return report


def evaluate_model(model, dataset, class_names, out=None) -> dict:
    """Test-split report; with ``out`` also the confusion-matrix and prediction-grid plots."""
    from kerasvk import plots
    from kerasvk.evaluation import classification_report, predict_dataset

    y, probs, images = predict_dataset(model, dataset)
    report = classification_report(y, probs, class_names)
    if out is not None:
        out = Path(out)
        plots.confusion_matrix(report["confusion_matrix"], class_names, out / "plots" / "confusion_matrix.png")
        plots.prediction_grid(images, y, probs, class_names, out / "plots" / "predictions.png")
    return report


def read_run(run) -> tuple[Path, dict]:
    """Validate a run folder and return (path, run.json contents)."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"Run folder not found: {run} (made by `kerasvk train ... --out {run}`).")
    for f in ("run.json", "model.keras"):
        if not (run / f).is_file():
            raise FileNotFoundError(f"{run} is not a complete run folder: {f} is missing.")
    try:
        config = json.loads((run / "run.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"Corrupt {run / 'run.json'}: {e}") from None
    return run, config


def load_run_model(run):
    from kerasvk.registry import load_model

    run, config = read_run(run)
    return load_model(run / "model.keras"), config


def evaluate_run(run, data=None, batch_size=None, write=True) -> dict:
    """Evaluate a run's model on its own test split (same seed/split), or on another ``data`` source."""
    from kerasvk import data as kdata

    run = Path(run)
    model, config = load_run_model(run)
    source = data or config["data"]
    if source == "arrays":
        raise ValueError(f"Run {run} was trained on in-memory arrays; pass data=... to evaluate it.")
    ds = kdata.load(
        source,
        image_size=tuple(config["image_size"]),
        channels=config["channels"],
        batch_size=batch_size or config["batch_size"],
        val_split=config["val_split"],
        test_split=config["test_split"],
        seed=config["seed"],
    )
    if ds.num_classes != len(config["class_names"]):
        raise ValueError(
            f"Data {source!r} has {ds.num_classes} classes but the model in {run} was trained on "
            f"{len(config['class_names'])}: {config['class_names']}."
        )
    report = evaluate_model(model, ds.test, config["class_names"], run if write else None)
    report["data"] = source
    if write:
        name = "metrics.json" if data is None else f"metrics-{source.replace(':', '_').replace('/', '_')}.json"
        write_json(report, run / name)
    return report


def export_run(run, base="saved_models", name=None, version=None) -> Path:
    """Export a run's model to ``base/name/version`` (serving_default: probabilities, class_id, score, class_name)."""
    from kerasvk.export import export_model

    model, config = load_run_model(run)
    return export_model(
        model,
        base=base,
        name=name or config["model"],
        version=version,
        class_names=config["class_names"],
    )
