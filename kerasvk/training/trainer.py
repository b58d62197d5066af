"""One trainer for every task: ``train(model, data, ...)`` and the run folder it fills.

The pipeline is the same for classifiers, the VAE/GAN and the autoregressive models::

    resolve options → check everything → data (the task's adapter) → build + compile inside the
    strategy scope and precision policy → fit with the standard callbacks → report → run folder

What differs by task (data, losses/metrics, report, sample files) is in ``tasks.py``. A run folder::

    run.json          configuration: model, build keywords, data facts (split, image size, class names,
                      vocabulary, ...), every training option used — enough to re-create the data
    history.json      per-epoch metrics (including the learning rate)
    metrics.json      the task's test-split report (+ train_seconds, epochs_run)
    model.keras       the trained model (loads with safe_mode=True)
    training_log.csv  CSVLogger output;  logs/  TensorBoard
    checkpoints/      best.keras (by val_loss) or last.keras (GANs)
    plots/            history.png and the task's figures (confusion matrix, samples, ...)

Nothing is created before every option, the data source and the model have been checked, and every
file is written atomically through ``kerasvk.io``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from kerasvk import io

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored")

# What `kerasvk train` does when neither the user, the model's registered recipe nor its task says otherwise.
TRAIN_DEFAULTS = {
    "epochs": 30,
    "batch_size": 64,
    "lr": None,  # the task's default (1e-3; GANs: their own two optimizers)
    "optimizer": None,  # the task's default (adam; autoregressive: adamw)
    "augment": None,
    "schedule": None,
    "warmup": 0,
    "label_smoothing": 0.0,
    "l2": 0.0,
    "steps_per_epoch": None,
    "image_size": None,
    "channels": None,
    "val_split": 0.1,
    "test_split": 0.2,
    "early_stopping": None,
}


def resolve_train_options(model, **given) -> dict:
    """Explicit options, else the model's registered ``train_defaults``, else the task's, else ``TRAIN_DEFAULTS``."""
    from kerasvk.registry import get_spec
    from kerasvk.training.tasks import adapter

    spec = get_spec(model)
    task = adapter(spec)
    allowed = {**TRAIN_DEFAULTS, **task.options}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown training option(s) {unknown}. Allowed: {', '.join(allowed)}.")
    recipe = spec.train_defaults
    opts = {k: given[k] if given.get(k) is not None else recipe.get(k, default) for k, default in allowed.items()}
    if opts["optimizer"] is None and opts["lr"] is not None:
        opts["optimizer"] = "adam"
    if opts["optimizer"] is None:
        opts["optimizer"] = task.default_optimizer_for(spec)  # None: the model compiles its own (GANs)
    if opts["lr"] is None and opts["optimizer"] is not None:
        opts["lr"] = task.default_lr
    return opts


def _int_option(opts, key, minimum):
    v = opts[key]
    if v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}. Received: {key}={v!r}")


def check_options(opts) -> dict:
    """Raise ``ValueError`` naming the allowed values for any bad training option (nothing is touched).

    Returns what was parsed on the way (``{"schedule": (name, options) or None}``), so nothing is parsed twice.
    """
    _int_option(opts, "epochs", 1)
    _int_option(opts, "batch_size", 1)
    _int_option(opts, "steps_per_epoch", 1)
    _int_option(opts, "early_stopping", 1)
    _int_option(opts, "warmup", 0)
    if opts["optimizer"] is not None and opts["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {opts['optimizer']!r}. Allowed: {', '.join(OPTIMIZERS)}.")
    lr = opts["lr"]
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
        raise ValueError(f"lr must be a positive number. Received: lr={lr!r}")
    ls = opts["label_smoothing"]
    if not isinstance(ls, (int, float)) or not 0.0 <= ls < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1). Received: {ls!r}")
    if not isinstance(opts["l2"], (int, float)) or opts["l2"] < 0:
        raise ValueError(f"l2 must be a number >= 0. Received: l2={opts['l2']!r}")
    for key in ("val_split", "test_split"):
        if not isinstance(opts[key], (int, float)) or not 0.0 < opts[key] < 1.0:
            raise ValueError(f"{key} must be in (0, 1). Received: {key}={opts[key]!r}")
    if opts["val_split"] + opts["test_split"] >= 1.0:
        raise ValueError("val_split + test_split must be < 1 (something must be left to train on).")
    if opts["warmup"] and opts["schedule"] is None:
        opts["schedule"] = "constant"  # --warmup alone: a linear warm-up to the constant rate
    parsed = {"schedule": None}
    if opts["schedule"]:
        from kerasvk.training.schedules import parse_schedule

        parsed["schedule"] = parse_schedule(opts["schedule"])
    return parsed  # the augment value is the task's to check (classifier presets, detection box-aware modes)


def default_run_dir(model, data) -> Path:
    """``runs/MODEL-DATA`` (``:`` and ``/`` of the data source replaced by ``_``)."""
    source = data if isinstance(data, str) else "arrays"
    return Path("runs") / f"{model}-{source.replace(':', '_').replace('/', '_')}"


def check_out(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder (it is created if missing).")
    return out


def make_optimizer(name, learning_rate):
    import keras

    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}. Allowed: {', '.join(OPTIMIZERS)}.")
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        if isinstance(learning_rate, bool) or not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
            raise ValueError(f"lr must be a positive number. Received: lr={learning_rate!r}")
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=1e-4)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    return keras.optimizers.RMSprop(learning_rate)


def learning_rate(opts, steps_per_epoch, schedule=None):
    """The peak rate, or a per-step schedule whose options (``step_size``, ``k``, warm-up) count epochs.

    ``schedule`` is the parsed ``(name, options)`` of ``opts["schedule"]`` (see ``check_options``).
    """
    if not opts["schedule"]:
        return opts["lr"]
    from kerasvk.training.schedules import make_schedule, parse_schedule

    name, sched = schedule if schedule is not None else parse_schedule(opts["schedule"])
    sched = dict(sched)
    if "step_size" in sched:
        sched["step_size"] = int(sched["step_size"]) * steps_per_epoch
    if "k" in sched:
        sched["k"] = sched["k"] / steps_per_epoch
    return make_schedule(name, opts["lr"], opts["epochs"] * steps_per_epoch, warmup=opts["warmup"] * steps_per_epoch, **sched)


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the backend; make TF ops deterministic so reruns repeat on CPU."""
    import keras

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def precision_policy(precision):
    """Build and compile under a keras dtype policy (``mixed_*``); the previous policy is restored after."""
    if precision in (None, "float32"):
        yield
        return
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}. Allowed: {', '.join(PRECISIONS)}.")
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def resolve_strategy(strategy):
    """None/"default" → no strategy; "mirrored" → ``tf.distribute.MirroredStrategy()``; a Strategy as is."""
    if strategy in (None, "default"):
        return None
    if strategy == "mirrored":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy()
    if hasattr(strategy, "scope") and hasattr(strategy, "num_replicas_in_sync"):
        return strategy
    raise ValueError(f"Unknown strategy {strategy!r}. Allowed: {', '.join(STRATEGIES)} or a tf.distribute.Strategy.")


def resume_point(out) -> tuple[int, dict]:
    """``(epochs completed, their history)`` of a killed run in ``out`` (``(0, {})`` for a fresh one).

    ``BackupAndRestore`` records the completed epochs in ``backup/training_metadata.json``; the
    per-epoch ``history.json`` is cut to that many epochs (a kill between the two writes may have left
    one more), so the resumed run continues the same record.
    """
    import json

    meta = Path(out) / "backup" / "training_metadata.json"
    if not meta.is_file():
        return 0, {}
    try:
        done = int(json.loads(meta.read_text())["epoch"])
        history = json.loads((Path(out) / "history.json").read_text()) if (Path(out) / "history.json").is_file() else {}
    except (ValueError, KeyError, json.JSONDecodeError):
        return 0, {}
    history = {k: list(v)[:done] for k, v in history.items()}
    if done and any(len(v) != done for v in history.values()):
        history = {}  # the record does not cover the restored epochs: keep what fit reports from here on
    return done, history


def write_csv_log(history, path) -> Path:
    """``training_log.csv`` (CSVLogger's layout: epoch, then the sorted keys) from a whole history."""
    keys = sorted(history)
    n = max((len(v) for v in history.values()), default=0)
    rows = [",".join(["epoch", *keys])]
    rows += [",".join([str(e), *(repr(history[k][e]) if e < len(history[k]) else "" for k in keys)]) for e in range(n)]
    return io.write_text(path, "\n".join(rows) + "\n")


def default_callbacks(out: Path, *, monitor="val_loss", early_stopping=None, extra=(), prior_history=None, record=None):
    """LR logger, TerminateOnNaN, ModelCheckpoint, BackupAndRestore, CSVLogger, TensorBoard (+ EarlyStopping).

    ``prior_history``: the epochs a resumed run already did; the best checkpoint must beat their best.
    ``record``: the per-epoch history writer; it runs before the backup, so a backup never covers an
    epoch the record lacks.
    """
    import keras

    from kerasvk.training.schedules import LearningRateLogger

    out = Path(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    seen = [v for v in (prior_history or {}).get(monitor or "", []) if v == v]
    checkpoint = (
        keras.callbacks.ModelCheckpoint(str(out / "checkpoints" / "best.keras"), monitor=monitor, save_best_only=True,
                                        initial_value_threshold=min(seen) if seen else None)
        if monitor
        else keras.callbacks.ModelCheckpoint(str(out / "checkpoints" / "last.keras"))
    )
    cbs = [
        LearningRateLogger(),  # first, so History/CSVLogger see logs["learning_rate"]
        *([record] if record is not None else []),
        keras.callbacks.TerminateOnNaN(),
        checkpoint,
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.CSVLogger(str(out / "training_log.csv"), append=bool(prior_history)),
        keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False, profile_batch=0),
    ]
    if early_stopping:
        cbs.append(
            keras.callbacks.EarlyStopping(monitor=monitor or "loss", patience=int(early_stopping), restore_best_weights=True)
        )
    cbs.extend(extra)
    return cbs


def train(
    model="lenet5",
    data="digits",
    *,
    seed=0,
    out=None,
    model_kwargs=None,
    weights=None,
    fine_tune=None,
    l2sp=None,
    strategy=None,
    precision=None,
    callbacks=(),
    one_hot=False,
    verbose="auto",
    **options,
) -> dict:
    """Train any registered model on a data source and fill a run folder; returns the test report.

    ``options`` are the training options of ``TRAIN_DEFAULTS`` (epochs, batch_size, lr, optimizer, augment,
    schedule, warmup, label_smoothing, l2, steps_per_epoch, image_size, channels, val_split, test_split,
    early_stopping) and the task's own (autoregressive: ``seq_len``); those left None come from the model's
    registered recipe, then the task, then ``TRAIN_DEFAULTS``. ``weights`` (``"imagenet"``, a
    ``.weights.h5``/``.keras`` file or a run folder), ``fine_tune`` (``frozen``, ``top-N``, ``full``) and
    ``l2sp`` (λ) start a classifier from a pretrained encoder. ``strategy`` (``"mirrored"`` or a
    ``tf.distribute.Strategy``) and ``precision`` (``mixed_float16``/``mixed_bfloat16``) wrap build and compile.
    """
    from kerasvk.registry import get_spec
    from kerasvk.training.tasks import adapter

    # 1. resolve and check everything before anything is loaded, built or written
    spec = get_spec(model)
    task = adapter(spec)
    opts = resolve_train_options(model, **options)
    parsed = check_options(opts)
    if precision not in (None, *PRECISIONS):
        raise ValueError(f"Unknown precision {precision!r}. Allowed: {', '.join(PRECISIONS)}.")
    transfer = {"weights": weights, "fine_tune": fine_tune, "l2sp": l2sp}
    task.check(spec, data, opts, transfer)
    out = check_out(out or default_run_dir(model, data))
    set_seed(seed)
    dist = resolve_strategy(strategy)

    # 2. data, model, optimizer
    run_data = task.load(spec, data, opts, seed, model_kwargs)
    opts["one_hot"] = bool(run_data.config.get("one_hot", one_hot))
    steps = opts["steps_per_epoch"] or run_data.steps_per_epoch
    with precision_policy(precision), (dist.scope() if dist is not None else contextlib.nullcontext()):
        net, build_kwargs = task.build(spec, run_data, model_kwargs, transfer)
        if opts["l2"]:
            from kerasvk.training.regularization import apply_weight_regularization

            apply_weight_regularization(net, l2=opts["l2"])
        optimizer = make_optimizer(opts["optimizer"], learning_rate(opts, steps, parsed["schedule"])) if opts["optimizer"] else None
        task.compile(net, optimizer, opts)

    # 3. the run folder
    config = {
        "model": model,
        "task": spec.task,
        "model_kwargs": build_kwargs,
        **run_data.config,
        "seed": seed,
        **{k: v for k, v in opts.items() if k not in run_data.config},
        "augment": task.describe_augment(opts["augment"]),
        "steps_per_epoch": steps,
        "weights": None if weights is None else str(weights),
        "fine_tune": fine_tune,
        "l2sp": l2sp,
        "precision": precision or "float32",
        "strategy": type(dist).__name__ if dist is not None else "default",
        "parameters": int(net.count_params()),
    }
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(config, out / "run.json")

    # 4. fit (a rerun of a killed run resumes from its last completed epoch and continues its record)
    from kerasvk.training.callbacks import EpochHistory

    resumed, prior = resume_point(out)
    epoch_history = EpochHistory(out / "history.json", prior)
    t0 = time.time()
    net.fit(
        run_data.train.repeat() if opts["steps_per_epoch"] else run_data.train,
        validation_data=run_data.val,
        epochs=opts["epochs"],
        steps_per_epoch=opts["steps_per_epoch"],
        shuffle=False,  # the pipelines shuffle themselves (keras ignores shuffle= for datasets, with a warning)
        callbacks=default_callbacks(
            out, monitor=task.monitor, early_stopping=opts["early_stopping"], prior_history=prior, record=epoch_history,
            extra=[*task.callbacks(out, run_data, opts), *callbacks],
        ),
        verbose=verbose,
    )
    train_seconds = time.time() - t0
    history = epoch_history.history  # every epoch of the run, the resumed ones included
    io.write_json(history, out / "history.json")
    write_csv_log(history, out / "training_log.csv")  # the whole run, also after a resume
    diverged = _divergence(net, history)
    if diverged:  # never reported as success: no model.keras, a metrics.json that says so, an error
        io.write_json({"diverged": True, "reason": diverged, "train_seconds": round(train_seconds, 2)}, out / "metrics.json")
        raise TrainingDiverged(
            f"Training diverged: {diverged}. Nothing was saved as {out / 'model.keras'}; "
            f"try a lower learning rate (it was {opts['lr']}) or gradient clipping."
        )
    io.save_model(net, out / "model.keras")

    # 5. report
    report = task.report(net, run_data, out)
    report["train_seconds"] = round(train_seconds, 2)
    report["epochs_run"] = len(history.get("loss", next(iter(history.values()), [])))
    if resumed:
        report["resumed_after_epoch"] = resumed
    io.write_json(report, out / "metrics.json")
    from kerasvk import plots

    plots.history_curves(history, out / "plots" / "history.png", title=f"{model} on {config['data']}")
    return report


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or weights (the CLI prints it on one line and exits 1)."""


def _divergence(model, history):
    """Why the run diverged (a non-finite loss or weight), or None."""
    import numpy as np

    for key, values in history.items():
        if "loss" in key and any(not np.isfinite(v) for v in values):
            return f"{key} became {values[-1] if not np.isfinite(values[-1]) else 'non-finite'}"
    if getattr(model, "stop_training", False) and not history.get("loss"):
        return "stopped by TerminateOnNaN before finishing an epoch"
    for w in model.weights:
        if not np.all(np.isfinite(np.asarray(w))):
            return f"weight {w.path} is not finite"
    return None


# ------------------------------------------------------------------------------------ using a run
def read_run(run) -> tuple[Path, dict]:
    """Validate a run folder and return (path, run.json contents)."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"Run folder not found: {run} (made by `kerasvk train ... --out {run}`).")
    for f in ("run.json", "model.keras"):
        if not (run / f).is_file():
            raise FileNotFoundError(f"{run} is not a complete run folder: {f} is missing.")
    return run, io.read_json(run / "run.json", what="run configuration")


def load_run_model(run):
    from kerasvk.registry import load_model

    run, config = read_run(run)
    return load_model(run / "model.keras"), config


def _task_of(config):
    from kerasvk.registry import get_spec
    from kerasvk.training.tasks import TASK_ADAPTERS, adapter

    return TASK_ADAPTERS.get(config.get("task")) or adapter(get_spec(config["model"]))


def run_data(run, data=None, batch_size=None):
    """The data of a run, re-created from its run.json (same source, split and seed), or of another source."""
    _, config = read_run(run)
    if (data or config["data"]) == "arrays":
        raise ValueError(f"Run {run} was trained on in-memory arrays; pass data=... to evaluate it.")
    return _task_of(config).data_from_config(config, source=data, batch_size=batch_size)


def evaluate_run(run, data=None, batch_size=None, write=True) -> dict:
    """Evaluate a run's model on its own test split (same seed/split), or on another ``data`` source."""
    run = Path(run)
    model, config = load_run_model(run)
    rd = run_data(run, data=data, batch_size=batch_size)
    names = config.get("class_names")
    if config.get("task", "classification") == "classification" and len(rd.config["class_names"]) != len(names):
        raise ValueError(
            f"Data {data!r} has {len(rd.config['class_names'])} classes but the model in {run} was trained on "
            f"{len(names)}: {names}."
        )
    rd.config.update({k: v for k, v in config.items() if k not in rd.config})
    report = _task_of(config).report(model, rd, run if write else None)
    report["data"] = data or config["data"]
    if write:
        name = "metrics.json" if data is None else f"metrics-{data.replace(':', '_').replace('/', '_')}.json"
        io.write_json(report, run / name)
    return report


def export_run(run, base="saved_models", name=None, version=None) -> Path:
    """Export a run's model to ``base/name/version`` with its task's serving signatures."""
    from kerasvk.export import export_model

    model, config = load_run_model(run)
    return export_model(model, base=base, name=name or config["model"], version=version, **_task_of(config).export_kwargs(config))


def predict_run(run, files=(), *, out=None, top_k=3, num=16, seed=0, prompt=None) -> list[str]:
    """Lines to print for ``kerasvk predict RUN FILES...``: top-k per image, or where samples were written."""
    model, config = load_run_model(run)
    return _task_of(config).predict(model, config, list(files), Path(out or Path(run) / "predictions"),
                                    top_k=top_k, num=num, seed=seed, prompt=prompt)
