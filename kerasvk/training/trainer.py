"""One trainer for every task: ``train(model, data, ...)`` and the run folder it fills.

The pipeline is the same for classifiers, the VAE/GAN and the autoregressive models::

    resolve options → check everything → data (the task's adapter) → build + compile inside the
    strategy scope and precision policy → fit with the standard callbacks → report → run folder

What differs by task (data, losses/metrics, report, sample files) is in ``tasks.py``. A run folder::

    run.json          configuration: model, build keywords, data facts (split, image size, class names,
                      vocabulary, ...), every training option used — enough to re-create the data
    history.json      per-epoch metrics (including the learning rate)
    metrics.json      the task's test-split report (+ train_seconds over every attempt, epochs_run)
    attempts.json     one record per process that trained the run ({resumed_after_epoch, train_seconds}):
                      an uninterrupted run has one, a killed and resumed run one more per resume
    model.keras       the trained model (loads with safe_mode=True)
    training_log.csv  the same per-epoch record as CSV (rewritten atomically each epoch);  logs/  TensorBoard
    checkpoints/      best.keras (by val_loss) or last.keras (GANs): only epochs with finite losses/weights
    plots/            history.png and the task's figures (confusion matrix, samples, ...)
    backup/           while training (and until model.keras and metrics.json exist): the resume point

Nothing is created before every option, the data source and the model have been checked, and every
file is written atomically through ``kerasvk.io``.

A killed run, rerun with the same command and ``--out``, resumes bit-exact (on CPU, with the deterministic
ops ``set_seed`` enables): ``RunBackup`` restores weights, optimizer state (schedule position) and every
``SeedGenerator`` state after the last completed epoch; ``training_stream`` makes epoch ``e``'s batches
(shuffle order, augmentation draws) a function of (seed, e) alone; the history and CSV continue. Not
restored too: ``EarlyStopping``'s patience counter, best value and best weights (``ResumableEarlyStopping``),
and a run that had stopped early stays stopped. Apart from timings (``train_seconds``, ``attempts.json``,
TensorBoard's event files) the resumed run folder equals an uninterrupted run's. TensorBoard (``logs/``) gets one
event file per attempt in each of ``train``/``validation``: TensorBoard reads a folder's event files as one
run, and their steps are epoch numbers that continue where the backup left off, so the curves are whole.
Backups are per epoch, not per step interval: see ``RunBackup`` for why keras' ``save_freq=N`` is not bit-exact.
A diverged run (non-finite loss or weights) raises ``TrainingDiverged`` naming the epoch and step and the
last finite checkpoint, and saves no model.keras. A multi-worker run resumes the same way when ``--out`` is a
folder every worker sees (shared storage): every worker restores the chief's backup (``resume_from_chief``).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from kerasvk import io
from kerasvk.training import strategy as distribution
from kerasvk.training.strategy import STRATEGIES, resolve_strategy  # noqa: F401  (re-exported)

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

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


INT_MAX = 2**31 - 1  # sizes, epochs and steps beyond int32 would fail deep inside TensorFlow
MAX_IMAGE_SIZE = 4096


def _int_option(opts, key, minimum, maximum=INT_MAX):
    v = opts[key]
    if v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or not minimum <= v <= maximum:
        raise ValueError(f"{key} must be an integer >= {minimum} (at most {maximum}). Received: {key}={v!r}")


def _finite_number(v) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plain(value):
    """A NumPy scalar as the Python number it holds (anything else unchanged)."""
    import numbers

    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def check_call(model_kwargs, callbacks, weights, verbose) -> tuple:
    """The ``train`` arguments that are not training options: ``ValueError`` naming what is allowed."""
    import os

    import keras

    if model_kwargs is not None and (not isinstance(model_kwargs, dict) or not all(isinstance(k, str) for k in model_kwargs)):
        raise ValueError(f"model_kwargs must be a dict of builder arguments (name -> value). Received: {model_kwargs!r}")
    callbacks = () if callbacks is None else callbacks
    if isinstance(callbacks, keras.callbacks.Callback):
        callbacks = (callbacks,)
    if not isinstance(callbacks, (list, tuple)) or not all(isinstance(c, keras.callbacks.Callback) for c in callbacks):
        raise ValueError(f"callbacks must be a list of keras.callbacks.Callback. Received: callbacks={callbacks!r}")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be None, 'imagenet' or a path (.weights.h5, .keras or a run folder). "
                         f"Received: weights={weights!r}")
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return tuple(callbacks)


def check_options(opts) -> dict:
    """Raise ``ValueError`` naming the allowed values for any bad training option (nothing is touched).

    Returns what was parsed on the way (``{"schedule": (name, options) or None}``), so nothing is parsed twice.
    NumPy scalars (``np.int64(8)``, ``np.float32(1e-3)``) are taken as the Python numbers they hold.
    """
    for key, value in opts.items():
        opts[key] = _plain(value)
    _int_option(opts, "epochs", 1)
    _int_option(opts, "batch_size", 1)
    _int_option(opts, "steps_per_epoch", 1)
    _int_option(opts, "early_stopping", 1)
    _int_option(opts, "warmup", 0)
    if opts["optimizer"] is not None and opts["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {opts['optimizer']!r}. Allowed: {', '.join(OPTIMIZERS)}.")
    lr = opts["lr"]
    if lr is not None and not (_finite_number(lr) and lr > 0):
        raise ValueError(f"lr must be a positive (finite) number. Received: lr={lr!r}")
    ls = opts["label_smoothing"]
    if not _finite_number(ls) or not 0.0 <= ls < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1). Received: {ls!r}")
    if not _finite_number(opts["l2"]) or opts["l2"] < 0:
        raise ValueError(f"l2 must be a finite number >= 0. Received: l2={opts['l2']!r}")
    if opts.get("channels") not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB). Received: channels={opts['channels']!r}")
    size = opts.get("image_size")
    if size is not None:
        pair = tuple(size) if isinstance(size, (tuple, list)) else None
        if (pair is None or len(pair) != 2 or any(isinstance(d, bool) or not isinstance(d, int) for d in pair)
                or not all(1 <= d <= MAX_IMAGE_SIZE for d in pair)):
            raise ValueError(f"image_size must be (height, width) integers in [1, {MAX_IMAGE_SIZE}]. Received: image_size={size!r}")
    for key in ("val_split", "test_split"):
        if not _finite_number(opts[key]) or not 0.0 < opts[key] < 1.0:
            raise ValueError(f"{key} must be in (0, 1). Received: {key}={opts[key]!r}")
    if opts["val_split"] + opts["test_split"] >= 1.0:
        raise ValueError("val_split + test_split must be < 1 (something must be left to train on).")
    if opts["warmup"] and opts["schedule"] is None:
        opts["schedule"] = "constant"  # --warmup alone: a linear warm-up to the constant rate
    parsed = {"schedule": None}
    if opts["schedule"]:
        from kerasvk.training.schedules import parse_schedule

        check_schedule_numbers(opts["schedule"])
        parsed["schedule"] = parse_schedule(opts["schedule"])
    return parsed


def check_warmup(opts, parsed) -> None:
    """A cosine schedule's warm-up must be shorter than the run (``kerasvk train yolo --epochs 1``: the recipe
    warms up for one epoch). Checked with the other options, not after the data are loaded and the model built
    (where ``make_schedule`` would refuse it in steps); after the data source, so that error comes first."""
    schedule = parsed.get("schedule")
    if schedule and schedule[0] == "cosine" and opts["warmup"] and opts["warmup"] >= opts["epochs"]:
        raise ValueError(
            f"warmup ({opts['warmup']} epochs) must be shorter than epochs ({opts['epochs']}): the cosine schedule "
            f"decays after the warm-up. Use more epochs or a shorter warmup (0 for none). Received: "
            f"epochs={opts['epochs']}, warmup={opts['warmup']}"
        )  # the augment value is the task's to check (classifier presets, detection box-aware modes)


def _name_part(text) -> str:
    """``text`` usable inside one file name: ``:``, ``/``, ``\\`` and NUL replaced by ``_``."""
    for c in (":", "/", "\\", "\0"):
        text = text.replace(c, "_")
    return text


def check_schedule_numbers(spec) -> None:
    """Every number in a schedule string (``"step:gamma=0.5,step_size=10"``) is finite, else ``ValueError``.

    ``parse_schedule`` checks names and ranges; an ``inf``/``nan``/``1e400`` option got past it (``k=inf``
    trained silently at learning rate 0, ``step_size=inf`` ended in an ``OverflowError`` traceback).
    """
    import math

    if not isinstance(spec, str):
        return  # parse_schedule names what a schedule must be
    for item in filter(None, spec.partition(":")[2].split(",")):
        key, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            continue  # not a number: parse_schedule's message names the option
        if not math.isfinite(number):
            raise ValueError(f"Schedule option {key.strip()} must be a finite number. Received: {item!r} in {spec!r}")


def default_run_dir(model, data) -> Path:
    """``runs/MODEL-DATA`` (``:``, ``/`` and ``\\`` of the data source replaced by ``_``: one folder name, so
    ``..`` or an absolute path in a data source never leads the run outside ``runs/``)."""
    source = data if isinstance(data, str) else "arrays"
    return Path("runs") / f"{model}-{_name_part(source)}"


def check_out(out) -> Path:
    """The run folder, checked without creating it: not a file, not under a file, and writable.

    Writability is probed by making (and at once removing) a temporary folder in the nearest existing
    ancestor, so also a read-only file system or a root-owned place is answered before any work.
    """
    import os
    import tempfile

    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise ValueError(f"out must be a folder path. Received: out={out!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder (it is created if missing).")
    ancestor = out
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise ValueError(f"--out {out}: {ancestor} is a dangling symlink.")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--out {out} cannot be created: {ancestor} is a file, not a folder.")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tmp-write-probe-", dir=ancestor))
    except OSError as e:
        raise ValueError(f"--out {out} is not writable: {ancestor}: {e.strerror or e}.") from None
    refuse_symlinked_folders(out, "--out")
    return out


def refuse_symlinked_folders(run, what="run folder") -> None:
    """``ValueError`` if a folder inside ``run`` is a symlink: nothing is ever written through one.

    (A symlinked *file* is replaced by the new file, not followed: every write goes through ``io``'s
    temporary file + ``os.replace``.)
    """
    links = io.symlinked_folders(run)
    if links:
        import os

        shown = ", ".join(f"{p} -> {os.readlink(p)}" for p in links[:3])
        raise ValueError(
            f"{what} {run} holds a symlinked folder ({shown}); kerasvk never writes through a symlink inside a "
            "run folder (it could land anywhere). Remove the link or use another folder."
        )


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
    """Seed Python, NumPy and the backend; make TF ops deterministic so reruns repeat on CPU.

    ``deterministic=False`` switches TF's op determinism off again (it is process-wide): keras refuses to
    XLA-compile a train step while it is on, so a ``jit_compile=True`` run trains without it.
    """
    import keras

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    keras.utils.set_random_seed(seed)
    set_op_determinism(deterministic)


def set_op_determinism(enabled: bool) -> None:
    """Switch TF's process-wide op determinism on or off (nothing on other backends).

    keras XLA-compiles no train step while it is on (``model_supports_jit``): ``jit_compile=True`` then
    silently trains without XLA, so a ``--jit-compile`` run switches it off.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:  # the public API has no "disable" (TF's own tests use this one)
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()


JIT_COMPILE = (None, "auto", True, False)


def check_precision(precision) -> None:
    """``ValueError`` for an unknown precision, or ``mixed_float16`` where no device computes float16 fast.

    float16 mixed precision pays off only on GPUs with float16 tensor cores (compute capability >= 7.0);
    on a CPU (or an older GPU) keras would run it, but float16 arithmetic there is emulated and far
    slower than float32, which TensorFlow only answers with a log warning. Refused before anything is
    loaded or built (documented behaviour: an error, not a silent fallback), naming what works instead.
    ``mixed_bfloat16`` is accepted everywhere (fast on CPUs with AVX-512 BF16/AMX, TPUs and Ampere+ GPUs).
    """
    if precision not in (None, *PRECISIONS):
        raise ValueError(f"Unknown precision {precision!r}. Allowed: {', '.join(PRECISIONS)}.")
    if precision == "mixed_float16" and not float16_device():
        raise ValueError(
            "precision mixed_float16 needs a GPU with float16 tensor cores (compute capability >= 7.0); this "
            "machine has none, and emulated float16 would train slower than float32. Use mixed_bfloat16 "
            "(runs on CPUs) or float32."
        )


def check_jit_compiled(net, name=None) -> None:
    """After ``compile(jit_compile=True)``: ``ValueError`` where keras refused XLA (it falls back silently),
    naming the layers without an XLA kernel (Faster/Mask R-CNN's proposal NMS)."""
    if net.jit_compile:
        return
    blockers = [layer.name for layer in net._flatten_layers() if not getattr(layer, "supports_jit", True)]
    raise ValueError(f"{name or net.name} cannot be XLA-compiled (--jit-compile): "
                     f"{', '.join(blockers) or 'keras refused it'} has no XLA kernel. "
                     "Train it without --jit-compile.")


def float16_device() -> bool:
    """True when keras' backend sees a GPU with fast float16 (compute capability >= 7.0)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0)
        if tuple(capability) >= (7, 0):
            return True
    return False


@contextlib.contextmanager
def precision_policy(precision):
    """Build and compile under a keras dtype policy (``mixed_*``); the previous policy is restored after."""
    if precision not in (None, *PRECISIONS):
        raise ValueError(f"Unknown precision {precision!r}. Allowed: {', '.join(PRECISIONS)}.")
    from kerasvk.layers.precision import dtype_policy_scope

    with dtype_policy_scope(precision):
        yield


def build_optimizer(model) -> None:
    """Create a compiled model's optimizer variables now, as keras does under a distribution strategy.

    Otherwise keras creates them inside the first traced train step, and ``tf.function`` then traces that
    step twice (once creating variables, once without): twice the start-up time of every run (half a
    minute of CPU for a detector's loss graph). Optimizers that a model builds itself (the GAN's two) are
    already built; a model whose layers are not built yet is left to keras.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built and all(layer.built for layer in model._flatten_layers()):
        optimizer.build(model.trainable_variables)


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


RESUME_MAY_CHANGE = ("epochs",)  # a resumed run may be given more (or fewer) epochs; nothing else may differ
# options run.json gained later, with the value every run before them had (a run without the key had it)
RESUME_IMPLIED = {"augment_on": "host"}


def check_resumable(out, config) -> None:
    """``ValueError`` when ``out`` holds an unfinished run (a backup to resume) made with other settings.

    The rerun would otherwise restore a backup of another model or data (keras' "objects could not be
    loaded", or silently different numbers) and overwrite that run's run.json. Checked before anything is
    written.
    """
    import json

    out = Path(out)
    if not (out / "backup" / "training_metadata.json").is_file() or not (out / "run.json").is_file():
        return
    try:
        before = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return  # no readable record of the earlier settings: RunBackup's own checks answer a mismatch
    now = json.loads(json.dumps(config, default=io.json_default))
    keys = sorted(set(before) | set(now), key=lambda k: (k not in ("model", "data", "model_kwargs"), k))
    differ = [k for k in keys if k not in RESUME_MAY_CHANGE and before.get(k, RESUME_IMPLIED.get(k)) != now.get(k)]
    epoch = json.loads((out / "backup" / "training_metadata.json").read_text()).get("epoch")
    if differ and all(k not in before for k in differ):  # the same command; only what this version records is new
        raise ValueError(
            f"--out {out} holds an unfinished run (backup/ after epoch {epoch}) started by an older kerasvk: its "
            f"run.json lacks {', '.join(differ[:4])}{', ...' if len(differ) > 4 else ''}, which this version records "
            "and trains by, so it cannot continue that run exactly. Finish it with the version that started it, "
            f"use another --out, or delete {out / 'backup'} to start over."
        )
    if differ:
        shown = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in differ[:3])
        raise ValueError(
            f"--out {out} holds an unfinished run (backup/ after epoch {epoch}) made with other "
            f"settings ({shown}{'; ...' if len(differ) > 3 else ''}). Rerun its own command to resume it, use "
            f"another --out, or delete {out / 'backup'} to start over."
        )


# what a non-chief worker copies from the chief's run folder to resume: the record the callbacks continue
RESUME_RECORD = ("history.json", "training_log.csv", "checkpoints/best.keras", "checkpoints/last.keras")


def backup_fingerprint(run_dir) -> tuple[int, int]:
    """``(epoch, digest)`` of the backup in ``run_dir``: the epochs it restores and a 56-bit hash of its
    metadata (which names its weight file and records each attempt's timings, so two backups differ);
    ``(0, 0)`` where this process cannot read one."""
    import hashlib
    import json

    meta = Path(run_dir) / "backup" / "training_metadata.json"
    try:
        data = meta.read_bytes()
    except OSError:
        return 0, 0
    try:
        epoch = int(json.loads(data)["epoch"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"The backup {meta} is unreadable ({type(e).__name__}); delete {meta.parent} to "
                         "start the run over.") from None
    return epoch, int.from_bytes(hashlib.blake2b(data, digest_size=7).digest(), "big")


def resume_from_chief(dist, run_dir, out, config) -> None:
    """Multi-worker: every worker resumes from the chief's backup in ``run_dir`` (``--out``), or none trains.

    Each worker checks the run folder at ``run_dir`` against ``config`` (``check_resumable``) and reads
    the backup there; one all-gather then compares what the workers saw. The same backup everywhere: a
    non-chief worker copies it and the record the callbacks continue (``RESUME_RECORD``) into its own folder
    ``out``, so every worker restores the same weights, optimizer, RNG and callback state and skips to the
    same batch. Different backups (a worker cannot see the chief's folder: ``--out`` is not on a filesystem
    every worker shares) or a refusal on any worker: ``ValueError`` on every worker, before anything is
    written or trained. Starting over instead would discard the run's completed epochs over a mount.
    """
    import json

    run_dir, out = Path(run_dir), Path(out)
    error, seen = None, (0, 0)
    try:
        check_resumable(run_dir, config)
        seen = backup_fingerprint(run_dir)
    except ValueError as e:
        error = e
    rows = distribution.gather_from_workers(dist, [error is not None, *seen])
    names = distribution.worker_names(dist)
    if error is not None:
        raise error
    refused = [name for name, row in zip(names, rows) if row[0]]
    if refused:
        raise ValueError(f"{', '.join(refused)} refused to start this run (its own error says why); nothing "
                         "was trained on any worker.")
    backup = run_dir / "backup"
    if len({row[1:] for row in rows}) > 1:
        chief = rows[0][1:]

        def saw(row):
            if not row[1]:
                return "none"
            return f"{'the same' if row[1:] == chief else 'another'} backup after epoch {row[1]}"

        seen_by = "; ".join(f"{name}: {saw(row)}" for name, row in zip(names, rows))
        raise ValueError(
            f"The workers see different backups at {backup} ({seen_by}). A multi-worker run resumes from the "
            "chief's backup, which every worker reads: --out must be a folder on a filesystem every worker "
            f"sees at the same path (shared storage). Rerun with such an --out, or delete {backup} (on every "
            "machine that has one) to start over."
        )
    epoch, digest = rows[0][1:]
    if not epoch or distribution.is_chief(dist):
        return
    data = (backup / "training_metadata.json").read_bytes()
    meta = json.loads(data)
    named = [meta.get("weights", "latest.weights.h5"),
             *(s["arrays"] for s in meta.get("callbacks", {}).values() if s.get("arrays"))]
    for rel in [*(f"backup/{name}" for name in named), *RESUME_RECORD]:
        if (run_dir / rel).is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / rel, out / rel)
    io.write_bytes(out / "backup" / "training_metadata.json", data)  # last: it names the files above
    if backup_fingerprint(out) != (epoch, digest):
        raise ValueError(f"The chief's backup at {backup} changed while this worker copied it (another run "
                         "writing the same --out?); rerun the command on every worker.")


def write_csv_log(history, path) -> Path:
    """``training_log.csv`` (CSVLogger's layout: epoch, then the sorted keys) from a whole history."""
    from kerasvk.training.callbacks import csv_log_text

    return io.write_text(path, csv_log_text(history))


def default_callbacks(out: Path, *, monitor="val_loss", early_stopping=None, extra=(), prior_history=None, record=None):
    """LR logger, the history record, StopOnNonFinite, FiniteCheckpoint (+ EarlyStopping), RunBackup,
    TensorBoard — see ``kerasvk.training.callbacks``.

    ``prior_history``: the epochs a resumed run already did; the best checkpoint must beat their best.
    ``record``: the per-epoch writer of history.json and training_log.csv (default: an ``EpochHistory``
    continuing ``prior_history``); it runs before the backup, so a backup never covers an epoch the
    record lacks. ``KERASVK_TEST_SIGKILL_AFTER_STEPS`` (tests only) adds a callback that
    SIGKILLs the process after that many training batches.
    """
    import os

    import keras

    from kerasvk.training.callbacks import (
        KILL_ENV, EpochHistory, FiniteCheckpoint, KillAfterSteps, ResumableEarlyStopping, RunBackup, StopOnNonFinite,
    )
    from kerasvk.training.schedules import LearningRateLogger

    out = Path(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    prior_history = prior_history or {}
    if record is None:
        record = EpochHistory(out / "history.json", prior_history, csv_path=out / "training_log.csv")
    path = out / "checkpoints" / ("best.keras" if monitor else "last.keras")
    best = saved_epoch = None
    if path.is_file():  # a resumed run: what the file holds, from the record of the earlier epochs
        if monitor:
            seen = [(v, e) for e, v in enumerate(prior_history.get(monitor, []), 1) if v == v and abs(v) != float("inf")]
            best, saved_epoch = min(seen) if seen else (None, None)
        else:
            losses = {k: v for k, v in prior_history.items() if "loss" in k}
            n = min((len(v) for v in losses.values()), default=0)
            finite = [e for e in range(1, n + 1) if all(abs(v[e - 1]) != float("inf") and v[e - 1] == v[e - 1] for v in losses.values())]
            saved_epoch = finite[-1] if finite else None
    # early stopping before the backup: the state backed up after an epoch is the one after it saw that epoch
    stopper = ([ResumableEarlyStopping(monitor=monitor or "loss", patience=int(early_stopping), restore_best_weights=True)]
               if early_stopping else [])
    cbs = [
        LearningRateLogger(),  # first, so History and the record see logs["learning_rate"]
        record,
        StopOnNonFinite(),
        FiniteCheckpoint(path, monitor=monitor, best=best, saved_epoch=saved_epoch),
        *stopper,
        RunBackup(out / "backup", stateful=stopper),
        keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False, profile_batch=0),
    ]
    cbs.extend(extra)
    if os.environ.get(KILL_ENV):
        cbs.append(KillAfterSteps(int(os.environ[KILL_ENV])))
    return cbs


def training_stream(train, steps_per_epoch=None, resumed_epochs=0):
    """``(dataset, steps_per_epoch)`` for ``fit``: the same batches epoch by epoch, also after a resume.

    BackupAndRestore restores weights, optimizer and (``RunBackup``) RNG state, but not where the data
    stream was: a rerun's shuffle and augmentation would start again at epoch 1's order. So every epoch
    is ``steps`` consecutive batches of one fixed stream, ``train.repeat()`` (a fresh process always makes
    the same stream: seeded shuffle, seeded augmentation), and a run resumed after epoch ``k`` starts at
    batch ``k · steps`` of it (``skip``: the skipped batches go through the input pipeline, not the model).
    ``steps`` is ``steps_per_epoch``, else one pass (the dataset's cardinality). A dataset of unknown
    length trains one pass per epoch as keras iterates it, and a resume first reads ``k`` whole passes.
    """
    steps = steps_per_epoch
    if steps is None:
        card = int(train.cardinality())
        if card > 0:
            steps = card
    if steps is None:
        for _ in range(int(resumed_epochs)):
            for _ in train:
                pass
        return train, None
    stream = train.repeat()
    if resumed_epochs:
        stream = stream.skip(int(resumed_epochs) * int(steps))
    return stream, int(steps)


def _numeric_finite(name, arr, ignore=None, unit="example", at=()):
    """``arr`` as a numeric NumPy array; the first NaN/Inf (outside ``ignore``) is named by its index.

    ``at``: the index of ``arr`` in the array it is part of (one image's targets: ``(i,)``).
    """
    import numpy as np

    try:
        a = np.asarray(arr)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} must be a numeric array. Received: {type(arr).__name__} ({e})") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array. Received dtype {a.dtype}.")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if ignore is not None:
            bad &= ~ignore
        if bad.any():
            local = tuple(int(i) for i in np.argwhere(bad)[0])
            idx = (*at, *local)
            what = "NaN" if np.isnan(a[local]) else "Inf"
            where = f"{unit} {idx[0]}" + (f", row {idx[1]}" if at and len(idx) > 2 else "")
            raise ValueError(f"{name} contains {what} at index {idx} ({where}); "
                             f"clean or drop the non-finite {unit}s before training.")
    return a


def _per_image(name, arr) -> list:
    """Detection targets as one array per image (an ``(N, M, ...)`` array or per-image lists)."""
    import numpy as np

    try:
        a = np.asarray(arr)
        if a.dtype.kind in "biuf" and a.ndim >= 1:
            return list(a)
    except (ValueError, TypeError):
        pass
    if isinstance(arr, (list, tuple)):
        out = []
        for i, item in enumerate(arr):
            try:
                out.append(np.asarray(item))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{name}[{i}] must be a numeric array. Received: {type(item).__name__} ({e})") from None
        return out
    raise ValueError(f"{name} must be a numeric array (or one array per image). Received: {type(arr).__name__}")


def check_arrays(data) -> None:
    """Array data, checked before anything is loaded or written; the first NaN/Inf is named by index.

    ``(images, labels)`` (classifiers, generative models): numeric, finite, images ``(N, H, W[, C])`` with
    C = 1 or 3, integer labels >= 0, one per image. ``(images, {"boxes", "labels"[, "masks"]})``
    (detectors): every array numeric and finite (boxes of padding rows, label -1, are not looked at);
    shapes, label ranges and box geometry are the detection data's to check (``check_boxes``: image and
    row of the first bad box).
    """
    import numpy as np

    if not isinstance(data, (tuple, list)):
        return
    if len(data) != 2:
        raise ValueError(f"Array data must be a pair (images, labels). Received a {type(data).__name__} of {len(data)} items.")
    if isinstance(data[1], dict):
        _numeric_finite("images", data[0], unit="image")
        targets = data[1]
        per_image = {k: _per_image(k, targets[k]) for k in ("labels", "boxes", "masks") if k in targets}
        for i, arrays in enumerate(zip(*per_image.values()) if per_image else ()):
            row = dict(zip(per_image, arrays))
            labels = row.get("labels")
            for key, a in row.items():
                ignore = None
                if key == "boxes" and labels is not None and a.ndim == 2 and labels.shape == a.shape[:1]:
                    ignore = np.broadcast_to((labels == -1)[:, None], a.shape)  # padding rows
                _numeric_finite(key, a, ignore=ignore, unit="image", at=(i,))
        return
    for name, arr in zip(("images", "labels"), data):
        _numeric_finite(name, arr)
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C) with C = 1 or 3. Received: shape={x.shape}")
    if len(x) == 0:
        raise ValueError("images is empty: there is nothing to train on.")
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices. Received: shape={y.shape}")
    if len(x) != len(y):
        raise ValueError(f"images and labels differ in length: {len(x)} images, {len(y)} labels.")
    if y.dtype.kind == "f" and np.any(y != np.round(y)):
        i = int(np.flatnonzero(y != np.round(y))[0])
        raise ValueError(f"labels must be integer class indices. Received: labels[{i}]={float(y[i])!r}")
    if np.any(y < 0):
        i = int(np.flatnonzero(y < 0)[0])
        raise ValueError(f"labels must be class indices >= 0. Received: labels[{i}]={y[i].item()!r}")


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
    batch_scaling="global",
    precision=None,
    jit_compile=None,
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
    ``l2sp`` (λ) start a classifier from a pretrained encoder. ``strategy`` (``default``, ``mirrored``,
    ``multiworker``, ``tpu`` or a ``tf.distribute.Strategy``) and ``precision`` (``mixed_float16``/
    ``mixed_bfloat16``) wrap build and compile; ``batch_scaling`` says whether ``batch_size`` is the global
    batch (``"global"``) or each replica's (``"per-replica"``, learning rates × replicas) — see
    ``kerasvk.training.strategy``. On a multi-worker cluster only the chief writes ``out`` (on storage every
    worker sees, a killed run resumes: ``resume_from_chief``). Under a mixed
    ``precision`` outputs and losses stay float32; ``mixed_float16`` gets keras' loss scaling and needs a GPU
    (see ``check_precision``). ``jit_compile`` (True/False; None = keras' "auto", off on CPU) is passed to
    ``compile``; run.json records the value the model compiled with.
    """
    with contextlib.ExitStack() as cleanup:  # a worker's temporary run folder, a JAX distribution scope
        return _train(cleanup, model, data, seed=seed, out=out, model_kwargs=model_kwargs, weights=weights,
                      fine_tune=fine_tune, l2sp=l2sp, strategy=strategy, batch_scaling=batch_scaling,
                      precision=precision, jit_compile=jit_compile, callbacks=callbacks, one_hot=one_hot,
                      verbose=verbose, **options)


def _train(
    cleanup,
    model,
    data,
    *,
    seed,
    out,
    model_kwargs,
    weights,
    fine_tune,
    l2sp,
    strategy,
    batch_scaling,
    precision,
    jit_compile,
    callbacks,
    one_hot,
    verbose,
    **options,
) -> dict:
    """``train``'s pipeline; ``cleanup`` (an ``ExitStack``) closes what it opens when ``train`` returns."""
    from kerasvk.registry import get_spec
    from kerasvk.training.device_input import augment_in_step, input_dtype, scale_uint8_inputs
    from kerasvk.training.tasks import adapter

    # 1. resolve and check everything before anything is loaded, built or written
    spec = get_spec(model)
    task = adapter(spec)
    opts = resolve_train_options(model, **options)
    parsed = check_options(opts)
    callbacks = check_call(model_kwargs, callbacks, weights, verbose)
    seed = _plain(seed)
    check_precision(precision)
    if jit_compile not in JIT_COMPILE or not isinstance(jit_compile, (type(None), str, bool)):
        raise ValueError(f"jit_compile must be True, False or None (keras' 'auto'). Received: jit_compile={jit_compile!r}")
    opts["jit_compile"] = "auto" if jit_compile is None else jit_compile
    distribution.check_strategy(strategy, batch_scaling)  # TF_CONFIG of a multi-worker run, before anything starts
    transfer = {"weights": weights, "fine_tune": fine_tune, "l2sp": l2sp}
    check_arrays(data)
    task.check(spec, data, opts, transfer)
    check_warmup(opts, parsed)
    out = check_out(out or default_run_dir(model, data))
    set_seed(seed, deterministic=jit_compile is not True)  # keras compiles no XLA step under op determinism
    dist = resolve_strategy(strategy)
    replicas = distribution.num_replicas(dist)
    user_batch = opts["batch_size"]
    opts["batch_size"], per_replica_batch = distribution.batch_sizes(user_batch, replicas, batch_scaling)
    lr_factor = distribution.lr_factor(replicas, batch_scaling)
    if opts["lr"] is not None:
        opts["lr"] = opts["lr"] * lr_factor
    if dist is not None and not hasattr(dist, "extended"):
        cleanup.enter_context(dist.scope())  # JAX: keras.distribution applies to build, compile and fit alike
    multi_worker = distribution.is_multi_worker(dist)
    run_dir = out  # --out: the chief's run folder (multi-worker: every worker reads its backup there)
    out = cleanup.enter_context(distribution.writer_folder(out, dist))  # non-chief workers: a temporary folder

    # 2. data, model, optimizer
    run_data = task.load(spec, data, opts, seed, model_kwargs)
    if dist is not None:  # in-memory/generated data: each worker keeps its replicas' slices of every batch
        run_data.train, run_data.val, run_data.test = (
            distribution.shard_by_data(ds) for ds in (run_data.train, run_data.val, run_data.test))
    _check_input_shape(model_kwargs, run_data.build_kwargs.get("input_shape"))
    opts["one_hot"] = bool(run_data.config.get("one_hot", one_hot))
    steps = opts["steps_per_epoch"] or run_data.steps_per_epoch
    with precision_policy(precision), (dist.scope() if dist is not None else contextlib.nullcontext()):
        try:
            net, build_kwargs = task.build(spec, run_data, model_kwargs, transfer)
        except TypeError as e:  # a --set value of the wrong type that the builder passed on unchecked
            if not model_kwargs:
                raise
            given = ", ".join(f"{k}={v!r}" for k, v in model_kwargs.items())
            raise ValueError(f"{model} cannot be built with {given}: {str(e).splitlines()[0]}. "
                             f"`kerasvk info {model}` lists its arguments and defaults.") from None
        if opts["l2"]:
            from kerasvk.training.regularization import apply_weight_regularization

            apply_weight_regularization(net, l2=opts["l2"])
        optimizer = make_optimizer(opts["optimizer"], learning_rate(opts, steps, parsed["schedule"])) if opts["optimizer"] else None
        task.compile(net, optimizer, opts)
        if jit_compile is True:
            check_jit_compiled(net, model)
        if opts["optimizer"] is None:
            distribution.scale_model_learning_rates(net, lr_factor)  # a GAN's own two rates
        if run_data.extras.get("device_augment") is not None:  # --augment-on device: after the scaling below
            augment_in_step(net, run_data.extras["device_augment"].layers(value_range=(0, 1)))
        scale_uint8_inputs(net, run_data.train.element_spec)  # uint8 batches: scaled in the step, on the device
        build_before_fit(net, run_data.train.element_spec)
    distribution.prepare_fit(net, run_data.train.element_spec)  # no-op without a strategy; keras-team/keras#20585

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
        "jit_compile": bool(net.jit_compile),
        "input_dtype": input_dtype(run_data.train.element_spec),  # uint8: scaled to [0, 1] in the train step
        "strategy": type(dist).__name__ if dist is not None else "default",
        **({"replicas": replicas, "batch_scaling": batch_scaling, "batch_size_given": user_batch,
            "per_replica_batch_size": per_replica_batch} if dist is not None else {}),
        "parameters": int(net.count_params()),
    }
    if multi_worker:  # every worker resumes from the chief's backup, or none trains
        resume_from_chief(dist, run_dir, out, config)
    else:
        check_resumable(out, config)
    out.mkdir(parents=True, exist_ok=True)
    if distribution.is_multi_process(dist) and not multi_worker:  # JAX processes: only the chief has a
        shutil.rmtree(out / "backup", ignore_errors=True)  # backup, and no agreement here: start over
    io.remove_stale_temporaries(out)  # what a killed write left behind (never where anything is read)
    io.write_json(config, out / "run.json")

    # 4. fit (a rerun of a killed run resumes from its last completed epoch and continues its record,
    #    with the optimizer, RNG state and data position of that epoch: bit-exact on CPU)
    from kerasvk.training.callbacks import EpochHistory, FiniteCheckpoint, RunBackup, StopOnNonFinite

    resumed, prior = resume_point(out)
    epoch_history = EpochHistory(out / "history.json", prior, csv_path=out / "training_log.csv")
    stream, fit_steps = training_stream(run_data.train, opts["steps_per_epoch"], resumed)
    cbs = default_callbacks(
        out, monitor=task.monitor, early_stopping=opts["early_stopping"], prior_history=prior, record=epoch_history,
        extra=[*task.callbacks(out, run_data, opts), *callbacks],
    )
    net.fit(
        stream,
        validation_data=run_data.val,
        epochs=opts["epochs"],
        steps_per_epoch=fit_steps,
        shuffle=False,  # the pipelines shuffle themselves (keras ignores shuffle= for datasets, with a warning)
        callbacks=cbs,
        verbose=verbose,
    )
    backup = next(c for c in cbs if isinstance(c, RunBackup))
    attempts = backup.attempts()  # this process and the killed ones it resumed (seconds up to their last backup)
    train_seconds = sum(a["train_seconds"] for a in attempts)
    history = epoch_history.history  # every epoch of the run, the resumed ones included
    io.write_json(history, out / "history.json")
    write_csv_log(history, out / "training_log.csv")  # the whole run, also after a resume
    stopper = next(c for c in cbs if isinstance(c, StopOnNonFinite))
    checkpoint = next(c for c in cbs if isinstance(c, FiniteCheckpoint))
    diverged = _divergence(net, history, stopper.where)
    if diverged:  # never reported as success: no model.keras, a metrics.json that says so, an error
        kept = (f"the last finite checkpoint is kept: {checkpoint.path} (epoch {checkpoint.saved_epoch})"
                if checkpoint.saved_epoch and Path(checkpoint.path).is_file()
                else "no epoch finished with finite losses, so there is no checkpoint to keep")
        io.write_json({"attempts": attempts}, out / "attempts.json")
        io.write_json({"diverged": True, "reason": diverged, "last_finite_checkpoint":
                       checkpoint.path if checkpoint.saved_epoch else None, "last_finite_epoch": checkpoint.saved_epoch,
                       "train_seconds": round(train_seconds, 2)}, out / "metrics.json")
        shutil.rmtree(out / "backup", ignore_errors=True)  # the run is over; a rerun starts afresh
        lr = opts["lr"] if opts["lr"] is not None else "the model's own"
        raise TrainingDiverged(
            f"Training diverged {diverged}. Nothing was saved as {out / 'model.keras'}; {kept}. "
            f"Try a lower learning rate (it was {lr}) or gradient clipping."
        )
    io.save_model(net, out / "model.keras")

    # 5. report
    report = task.report(net, run_data, out)
    report["train_seconds"] = round(train_seconds, 2)
    report["epochs_run"] = len(history.get("loss", next(iter(history.values()), [])))
    io.write_json({"attempts": attempts}, out / "attempts.json")  # timings: kept out of the report
    io.write_json(report, out / "metrics.json")
    from kerasvk import plots

    plots.history_curves(history, out / "plots" / "history.png", title=f"{model} on {config['data']}")
    shutil.rmtree(out / "backup", ignore_errors=True)  # only now: a kill before this point still resumes
    return report


def _check_input_shape(model_kwargs, data_shape) -> None:
    """An ``input_shape`` given with the model's arguments must be the data's (the data are not resized to it)."""
    given = (model_kwargs or {}).get("input_shape")
    if given is None or data_shape is None:
        return
    try:
        same = tuple(int(d) for d in given) == tuple(int(d) for d in data_shape)
    except (TypeError, ValueError):
        return  # not a shape at all: the builder names input_shape
    if not same:
        raise ValueError(
            f"input_shape={tuple(given)} differs from the data's {tuple(data_shape)}: the model is built for the "
            f"images it trains on. Resize the data instead (--image-size H[xW], --channels 1|3) or leave input_shape out."
        )


def build_before_fit(model, data_spec) -> None:
    """Create the optimizer's and compiled metrics' variables before ``fit`` traces its train step.

    Keras on TensorFlow defers this to the first trace of ``train_function`` unless a distribution
    strategy is set (``TensorFlowTrainer._maybe_symbolic_build``); variables created inside a
    ``tf.function``'s first trace make TensorFlow trace it a second time, so every first epoch paid two
    traces of the whole forward + backward graph (measured: YOLO at 128×128 72.8 s → 32.5 s for the
    first step, resnet18 at 32×32 13.6 s → 6.8 s). ``data_spec``: the training dataset's
    ``element_spec`` (shapes only: nothing is computed). Models that cannot be built symbolically (a
    custom ``call`` that needs real data) fall back to building just the optimizer; either way the
    numbers ``fit`` computes are unchanged.
    """
    symbolic_build = getattr(model, "_symbolic_build", None)
    if callable(symbolic_build):
        try:
            symbolic_build(data_batch=data_spec)
            return
        except Exception:  # noqa: BLE001 - fit builds it then, exactly as keras would have
            pass
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built and model.built:
        optimizer.build(model.trainable_variables)


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or weights (the CLI prints it on one line and exits 1)."""


def _divergence(model, history, where=None):
    """Where and why the run diverged (a non-finite loss or weight), or None.

    ``where``: ``StopOnNonFinite.where`` — ``(epoch, step, key, value)`` of the first non-finite batch loss.
    """
    import numpy as np

    if where is not None:
        epoch, step, key, value = where
        return f"at epoch {epoch}, step {step}: {key} became {value}"
    for key, values in history.items():
        bad = [e for e, v in enumerate(values, 1) if not np.isfinite(v)]
        if "loss" in key and bad:
            return f"at epoch {bad[0]}: {key} became {values[bad[0] - 1]}"
    if getattr(model, "stop_training", False) and not history.get("loss"):
        return "in the first epoch: a non-finite loss stopped training"
    for w in model.weights:
        if not np.all(np.isfinite(np.asarray(w))):
            n = len(next(iter(history.values()), []))
            return f"by epoch {n}: weight {w.path} is not finite"
    return None


# ------------------------------------------------------------------------------------ using a run
def read_run(run) -> tuple[Path, dict]:
    """Validate a run folder and return (path, run.json contents)."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"Run folder not found: {run} (made by `kerasvk train ... --out {run}`).")
    if (run / "run.json").is_file() and not (run / "model.keras").is_file():
        try:
            metrics = io.read_json(run / "metrics.json")
        except (FileNotFoundError, ValueError):
            metrics = {}
        if isinstance(metrics, dict) and metrics.get("diverged"):
            kept = metrics.get("last_finite_checkpoint")
            raise ValueError(
                f"{run} has no model.keras: its training diverged ({metrics.get('reason')})."
                + (f" The last finite checkpoint is {kept} (epoch {metrics.get('last_finite_epoch')})." if kept else "")
            )
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
    if write:
        refuse_symlinked_folders(run)  # the report writes plots/ and metrics*.json into it
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
        name = "metrics.json" if data is None else f"metrics-{_name_part(data)}.json"
        io.write_json(report, run / name)
    return report


def export_run(run, base="saved_models", name=None, version=None) -> Path:
    """Export a run's model to ``base/name/version`` with its task's serving signatures.

    ``name`` must be one plain path component (no ``/``, ``..`` or absolute path): nothing is written
    outside ``base``.
    """
    import os

    from kerasvk.export import export_model

    if name is not None:
        io.safe_name(name, "export name")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"version must be a positive integer. Received: version={version!r}")
    base_path = Path(base)
    if base_path.exists() and not base_path.is_dir():
        raise ValueError(f"The export base {base} is an existing file; give a folder (it is created if missing).")
    _, config = read_run(run)
    target = base_path / (name or config["model"])
    if target.is_symlink():
        raise ValueError(f"The export folder {target} is a symlink (-> {os.readlink(target)}); kerasvk never writes "
                         "through a symlink inside the export base. Remove the link or use another --base/--name.")
    model, config = load_run_model(run)
    return export_model(model, base=base, name=name or config["model"], version=version, **_task_of(config).export_kwargs(config))


def predict_run(run, files=(), *, out=None, top_k=3, num=16, seed=0, prompt=None) -> list[str]:
    """Lines to print for ``kerasvk predict RUN FILES...``: top-k per image, or where samples were written."""
    model, config = load_run_model(run)
    if out is None:
        refuse_symlinked_folders(run)  # predictions/ goes into the run folder
    return _task_of(config).predict(model, config, list(files), Path(out or Path(run) / "predictions"),
                                    top_k=top_k, num=num, seed=seed, prompt=prompt)
