"""The ``kerasvk`` command: list / info / train / evaluate / predict / export / check-export.

User errors (unknown model or data name, bad value, missing or corrupt file) print one line on
stderr and exit with code 2 — never a traceback. Subcommands are small functions registered in
``COMMANDS``; a new one is an ``add_*``/``run_*`` pair plus one entry there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


class UserError(Exception):
    """An error in what the user asked for (printed as one line, exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage + message otherwise)
        raise UserError(f"{self.prog}: {message}")


def _quiet_tf():
    """Import TensorFlow with its C++ start-up chatter (CUDA probing on CPU machines) silenced.

    Those lines are written to file descriptor 2 by native code before Python's logging exists, so
    the descriptor itself is pointed at /dev/null while TensorFlow loads and probes devices. Python
    exceptions raised meanwhile still propagate and are reported normally.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
            tf.constant(0)  # first op: device initialisation logs happen here
        except ImportError:
            pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _number(kind, ok, what):
    """An argparse type: ``kind(text)`` that satisfies ``ok``, else one clear message naming ``what``."""

    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    parse.__name__ = what.replace(" ", "_")
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: v > 0 and v != float("inf"), "a positive number")  # nan fails v > 0


def _model_kwarg(text):
    import ast

    key, eq, value = text.partition("=")
    if not eq or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (a builder argument), got {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a plain string
    return key, tuple(parsed) if isinstance(parsed, list) else parsed


def _size(text):
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW (e.g. 32 or 32x32), got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW (e.g. 32 or 32x32), got {text!r}")
    return tuple(parts)


# ---------------------------------------------------------------------------------------------- list
def add_list(p):
    p.add_argument("--task", help="only models of this task (classification, generative, autoregressive, ...)")


def run_list(args):
    from kerasvk.registry import get_spec, list_models

    names = list_models(args.task)
    width = max((len(n) for n in names), default=4)
    for n in names:
        s = get_spec(n)
        print(f"{n:<{width}}  {s.task:<15} {s.family:<14} {s.description}")
    return 0


# ---------------------------------------------------------------------------------------------- info
def add_info(p):
    p.add_argument("name", help="registered model name (see `kerasvk list`)")


def run_info(args):
    from kerasvk.registry import model_info

    info = model_info(args.name)
    print(json.dumps(info, indent=2, default=str))
    return 0


# --------------------------------------------------------------------------------------------- train
DATA_HELP = (
    "images (classifiers, vae, cvae, dcgan, wgan_gp, pixelcnn): digits | digits_photo | "
    "patterns[:classes=5|10,count=N] | folder:PATH | tfds:NAME; text (gpt): pydoc | file:PATH; "
    "audio (wavenet): audio; boxes (detectors: yolo, ssd): shapes[:count=N,size=S,max_objects=K]. "
    "Default: digits (gpt: pydoc, wavenet: audio, detectors: shapes)"
)
DEFAULT_DATA = {"gpt": "pydoc", "wavenet": "audio"}  # by family
TASK_DATA = {"detection": "shapes"}  # by task


def add_train(p):
    p.add_argument("model", help="registered model name, any task (see `kerasvk list`)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--epochs", type=_positive_int, help="default: the model's recipe (`kerasvk info MODEL`), else 30")
    p.add_argument("--batch-size", type=_positive_int, help="default: the model's recipe, else 64")
    p.add_argument("--steps-per-epoch", type=_positive_int, help="optimizer steps per epoch (default: one pass over the data)")
    p.add_argument("--lr", type=_positive_float, help="(peak) learning rate (default: the model's recipe, else 1e-3)")
    p.add_argument("--optimizer", help="adam | adamw | sgd | rmsprop (default: the model's recipe, else adam; "
                   "GANs: their own Adam(2e-4, β1=0.5) pair)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--out", help="run folder (default runs/MODEL-DATA)")
    p.add_argument("--image-size", type=_size, help="resize images to SIZE or HxW (default: the dataset's)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="convert images to 1 or 3 channels")
    p.add_argument("--seq-len", type=_positive_int, help="gpt/wavenet: training window length (gpt: its context)")
    p.add_argument("--early-stopping", type=_positive_int, metavar="PATIENCE", help="stop after PATIENCE epochs without val_loss improvement")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of the progress bar")
    p.add_argument(
        "--augment", help="classifiers: light | standard | strong | none, plus overrides: e.g. standard,rotation=30,cutmix=1.0; "
        "detectors: flip | standard (box-aware flip + scale-jitter) | none"
    )
    p.add_argument("--augment-on", choices=("host", "device"),
                   help="classifiers: host (tf.data on the CPU, default) | device (inside the train step, on the GPU/TPU; "
                   "cutmix/mixup stay on the host)")
    p.add_argument(
        "--schedule",
        help="per-step LR schedule: cosine | step[:gamma=G,step_size=EPOCHS] | exponential[:k=PER_EPOCH] | constant",
    )
    p.add_argument("--warmup", type=_non_negative_int, metavar="EPOCHS", help="linear LR warm-up epochs (alone: to a constant rate)")
    p.add_argument("--label-smoothing", type=float, metavar="ALPHA", help="targets y(1-α)+α/K")
    p.add_argument("--l2", type=float, help="L2 penalty λ on every kernel (λΣw²)")
    p.add_argument("--weights", help="classifiers: start from imagenet (online) | a .weights.h5/.keras file | a run folder")
    p.add_argument("--fine-tune", metavar="MODE", help="with --weights: frozen (train the new head only, default) | top-N | full")
    p.add_argument("--l2sp", type=_positive_float, metavar="LAMBDA", help="with --fine-tune top-N|full: L2-SP pull towards the pretrained weights")
    p.add_argument("--set", dest="model_kwargs", action="append", default=[], type=_model_kwarg, metavar="KEY=VALUE",
                   help="builder argument, repeatable (e.g. --set num_layers=2 --set filters=[8,16]; see `kerasvk info MODEL`)")
    from kerasvk.training.speed import add_speed_arguments
    from kerasvk.training.strategy import add_strategy_arguments

    add_speed_arguments(p)
    add_strategy_arguments(p)


def train_kwargs(args) -> dict:
    """Keyword arguments for ``kerasvk.training.train`` from the parsed train options."""
    return dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        lr=args.lr,
        optimizer=args.optimizer,
        seed=args.seed,
        out=args.out,
        image_size=args.image_size,
        channels=args.channels,
        early_stopping=args.early_stopping,
        verbose=2 if args.quiet else "auto",
        augment=args.augment,
        schedule=args.schedule,
        warmup=args.warmup,
        label_smoothing=args.label_smoothing,
        l2=args.l2,
        weights=args.weights,
        fine_tune=args.fine_tune,
        l2sp=args.l2sp,
        precision=args.precision,
        jit_compile=args.jit_compile,
        strategy=args.strategy,
        batch_scaling=args.batch_scaling,
        model_kwargs=dict(args.model_kwargs) or None,
        **({"seq_len": args.seq_len} if args.seq_len is not None else {}),
        **({"augment_on": args.augment_on} if args.augment_on is not None else {}),
    )


def format_task_report(report) -> str:
    """A classifier's report as its table; other tasks' numbers one per line."""
    from kerasvk.evaluation import format_report

    if "confusion_matrix" in report:
        return format_report(report)
    if "per_class_AP" in report:  # a detector: COCO metrics and the per-class AP table
        from kerasvk.evaluation.detection import format_detection_report

        extra = {k: v for k, v in report.items() if k.startswith("test_") or k in ("inference_images_per_second",)}
        return "\n".join([format_detection_report(report), *(f"{k}: {v:.4f}" for k, v in extra.items())])
    lines = []
    for k, v in report.items():
        if isinstance(v, float):
            lines.append(f"{k}: {v:.4f}")
        elif isinstance(v, list):
            lines.extend(str(x) for x in v)
        elif not isinstance(v, dict):
            lines.append(f"{k}: {v}")
    return "\n".join(lines)


def run_train(args):
    from kerasvk.registry import get_spec
    from kerasvk.training import train
    from kerasvk.training.trainer import default_run_dir

    spec = get_spec(args.model)
    data = args.data or DEFAULT_DATA.get(spec.family) or TASK_DATA.get(spec.task, "digits")
    report = train(args.model, data, **train_kwargs(args))
    print(format_task_report(report))
    print(f"trained in {report['train_seconds']:.1f}s; run folder: {args.out or default_run_dir(args.model, data)}")
    return 0


# ------------------------------------------------------------------------------------------ evaluate
def add_evaluate(p):
    p.add_argument("run", help="run folder made by `kerasvk train`")
    p.add_argument("--data", help="evaluate on another source (default: the run's own test split)")
    p.add_argument("--batch-size", type=_positive_int)


def run_evaluate(args):
    from kerasvk.training import evaluate_run

    report = evaluate_run(args.run, data=args.data, batch_size=args.batch_size)
    print(format_task_report(report))
    return 0


# ------------------------------------------------------------------------------------------- predict
def add_predict(p):
    p.add_argument("source", help="run folder made by `kerasvk train`, or an exported version folder (BASE/NAME/VERSION)")
    p.add_argument("files", nargs="*", help="classifiers: image files (PNG/JPEG/BMP/GIF) to classify")
    p.add_argument("--top-k", type=_positive_int, default=3, help="classes printed per image (default 3)")
    p.add_argument("--out", help="generators: folder the samples are written to (default RUN/predictions)")
    p.add_argument("--num", type=_positive_int, default=16, help="generators: number of samples (default 16)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="generators: sampling seed")
    p.add_argument("--prompt", help="gpt: text to continue")


def run_predict(args):
    from pathlib import Path

    if (Path(args.source) / "saved_model.pb").is_file():
        from kerasvk.export.predict import predict_exported

        lines = predict_exported(args.source, args.files, top_k=args.top_k)
    else:
        from kerasvk.training import predict_run

        lines = predict_run(args.source, args.files, out=args.out, top_k=args.top_k, num=args.num, seed=args.seed,
                            prompt=args.prompt)
    for line in lines:
        print(line)
    return 0


# -------------------------------------------------------------------------------------------- export
def add_export(p):
    p.add_argument("run", help="run folder made by `kerasvk train`")
    p.add_argument("--base", help="TF Serving base path (default saved_models)")
    p.add_argument("--name", help="model name under the base path (default: the run's model name)")
    p.add_argument("--version", type=_positive_int, help="version number (default: next free integer)")
    p.add_argument("--format", choices=("savedmodel", "litert", "tflite"), default="savedmodel",
                   help="savedmodel (TF Serving, default) | litert or tflite (classifiers: float32 + int8 .tflite "
                   "files, calibrated on the run's training images and evaluated on its test split)")
    p.add_argument("--out", help="litert: output folder (default RUN/litert)")


def run_export(args):
    # an option of the other format would be ignored silently (the files landing somewhere else): refused
    other = (["--out"] if args.out is not None else []) if args.format == "savedmodel" else \
        [f"--{k}" for k in ("base", "name", "version") if getattr(args, k) is not None]
    if other:
        raise UserError(f"{' and '.join(other)} {'is' if len(other) == 1 else 'are'} not for --format {args.format}: "
                        + ("a SavedModel goes to --base/--name/--version (BASE/NAME/VERSION)" if args.format == "savedmodel"
                           else "the .tflite files go to --out (default RUN/litert)") + ".")
    if args.format in ("litert", "tflite"):
        from kerasvk.export.litert import export_run_litert
        from kerasvk.training.trainer import refuse_symlinked_folders

        if args.out is None and os.path.isdir(args.run):
            refuse_symlinked_folders(args.run)  # RUN/litert/ is written into the run folder
        report = export_run_litert(args.run, args.out)
        for q, f in report["files"].items():
            print(f"{f['path']}: {f['size_bytes']} bytes, test accuracy {f['accuracy']:.4f} "
                  f"(Keras {report['keras_accuracy']:.4f}, top-1 agreement {f['top1_agreement_with_keras']:.4f})")
        return 0
    from kerasvk.training import export_run

    path = export_run(args.run, base=args.base or "saved_models", name=args.name, version=args.version)
    print(path)
    return 0


# -------------------------------------------------------------------------------------- check-export
def add_check_export(p):
    p.add_argument("path", help="exported model folder (saved_models/NAME: its highest version) or version folder "
                   "(saved_models/NAME/1)")
    p.add_argument("--version", type=_positive_int, help="version to check under a model folder (default: the highest)")
    p.add_argument("--run", help="run folder whose model.keras every signature must match, on a batch of the run's "
                   "test data (samplers such as sample/generate: on their warm-up request)")
    p.add_argument("--atol", type=_positive_float, default=1e-5, help="absolute tolerance of float outputs (default 1e-5)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON instead of the listing")


def run_check_export(args):
    """Lists the signatures (as ``saved_model_cli show``), replays the warm-up requests, compares with the run's
    Keras model; prints one JSON summary line last. A failing signature or a mismatch: exit 1."""
    import numpy as np

    from kerasvk.export import check_export
    from kerasvk.export.saved_model import format_signatures

    model = inputs = None
    options = {}
    if args.run:
        from kerasvk.training import load_run_model
        from kerasvk.training.trainer import run_data

        model, config = load_run_model(args.run)
        if config.get("task", "classification") == "classification":
            options["class_names"] = config.get("class_names")
        batch = next(iter(run_data(args.run, batch_size=16).test))[0]
        inputs = [np.asarray(b) for b in batch] if isinstance(batch, (list, tuple)) else np.asarray(batch)
    report = check_export(args.path, model=model, inputs=inputs, version=args.version, atol=args.atol,
                          raise_on_mismatch=False, **options)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(f"{report['path']}:")
        for line in format_signatures(report["signatures"]):
            print(line)
        for sig in report["signatures"]:
            warm = report["warmup"].get(sig)
            state = "no warm-up request" if sig in report["no_warmup"] else ("ok" if warm is not None else "FAILED")
            keras_diff = report["keras"].get(sig)
            vs_keras = f"; vs Keras max |diff| {keras_diff:.3g}" if keras_diff is not None else ""
            print(f"{sig}: warm-up {state}{vs_keras}")
        summary = {"path": report["path"], "signatures": len(report["signatures"]),
                   "warmup_ok": len(report["warmup"]), "compared_with_keras": len(report["keras"]),
                   "max_abs_diff": report["max_abs_diff"], "errors": len(report["errors"])}
        print(json.dumps(summary))
    if report["errors"]:
        extra = f" (and {len(report['errors']) - 1} more)" if len(report["errors"]) > 1 else ""
        print(f"kerasvk: check-export failed: {report['errors'][0]}{extra}", file=sys.stderr)
        return 1
    return 0


# -------------------------------------------------------------------- augment-preview / plot-schedule
def add_augment_preview(p):
    p.add_argument("--data", default="digits", help="embedded source: digits | patterns[:classes=5,count=N]")
    p.add_argument("--augment", default="standard", help="augmentation config (see `kerasvk train --help`)")
    p.add_argument("--out", default="augment_preview.png", help="PNG path (default augment_preview.png)")
    p.add_argument("--samples", type=_positive_int, default=8, help="rows: training images")
    p.add_argument("--variants", type=_positive_int, default=5, help="columns: augmented versions of each")
    p.add_argument("--seed", type=int, default=0)


def run_augment_preview(args):
    from kerasvk.data.preview import save_preview

    path = save_preview(args.data, args.augment, args.out, samples=args.samples, variants=args.variants, seed=args.seed)
    print(f"wrote {path}")
    return 0


def add_plot_schedule(p):
    p.add_argument("schedule", help="cosine | step[:gamma=G,step_size=S] | exponential[:k=K] | constant")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="peak learning rate")
    p.add_argument("--epochs", type=_positive_int, default=50, help="length T of the schedule")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up length")
    p.add_argument("--out", default="schedule.png", help="PNG path (default schedule.png)")


def run_plot_schedule(args):
    from kerasvk.training.schedules import plot_schedule
    from kerasvk.training.trainer import check_schedule_numbers

    check_schedule_numbers(args.schedule)
    path = plot_schedule(args.schedule, args.lr, args.epochs, args.out, warmup=args.warmup)
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "list": (add_list, run_list, "list registered models"),
    "info": (add_info, run_info, "task, family, default input shape and parameter count of a model"),
    "train": (add_train, run_train, "train any registered model on a data source into a run folder"),
    "evaluate": (add_evaluate, run_evaluate, "a run's test report: classifiers accuracy, P/R/F1, top-k, confusion matrix; detectors COCO mAP"),
    "predict": (add_predict, run_predict, "top-k classes of image files, or samples from a generator"),
    "export": (add_export, run_export, "export a run as a TF Serving SavedModel (BASE/NAME/VERSION)"),
    "check-export": (add_check_export, run_check_export,
                     "list an export's signatures, replay its warm-up requests, compare them with the run's model"),
    "augment-preview": (add_augment_preview, run_augment_preview, "PNG grid of augmented training samples"),
    "plot-schedule": (add_plot_schedule, run_plot_schedule, "draw a learning-rate schedule into a PNG"),
}


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kerasvk", description="Keras 3 toolkit: build, train, evaluate and export image models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (add, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(_run=run)
    return parser


def main(argv=None) -> int:
    _quiet_tf()
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"kerasvk: error: {msg}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from kerasvk.training.trainer import TrainingDiverged

        if not isinstance(e, TrainingDiverged):
            raise
        print(f"kerasvk: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except OSError as e:  # a path the user gave that cannot be read or written: one line, never a traceback
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"kerasvk: error: {e.strerror or type(e).__name__}{where}", file=sys.stderr)
        user = isinstance(e, (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError))
        return 2 if user else 1
    except KeyboardInterrupt:
        print("kerasvk: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # out of memory (NumPy's MemoryError, TensorFlow's ResourceExhaustedError): one line
        if not isinstance(e, MemoryError) and type(e).__name__ != "ResourceExhaustedError":
            raise
        first = (str(getattr(e, "message", "") or e).strip().splitlines() or [""])[0][:300]
        print(f"kerasvk: error: out of memory ({first}); use a smaller image size, batch size, count or model.",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
