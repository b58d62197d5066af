"""Bad inputs, tried systematically: every row gets one clear message and nothing that looks like a result.

CLI rows call ``kerasvk.cli.main`` in-process (no subprocess): exit code 2, exactly one line on stderr
starting ``kerasvk: error:``, no traceback, the expected words in it, and no run folder created (neither
``--out`` nor the default ``runs/``). Python API rows expect ``ValueError``/``FileNotFoundError`` whose
message names what is allowed.

Decisions recorded here:
- A folder with one corrupt image among good ones **fails naming the file** (``Unreadable image PATH``),
  before anything is created — no silent skipping, so the class counts in run.json are the real ones.
  This holds for undecodable bytes and for a truncated JPEG alike.
- Training options that overflow int32 (sizes, epochs, steps) are rejected up front instead of
  failing deep inside TensorFlow; non-finite rates (``inf``, ``nan``) are rejected.
- WAV files: no training source reads WAV files (wavenet trains on the embedded ``audio`` source; a WAV
  given as ``--data`` is refused naming ``audio``), and ``kerasvk.data.read_wav`` answers a stereo WAV by
  mixing it to mono and a WAV at another rate by resampling it to the ``sample_rate`` asked for (one of
  8000, 16000; any other is a ``ValueError``) — tested in ``test_wav_inputs``. Unreadable and missing WAV
  files are error rows.
- Detection arrays ``(images, {"boxes", "labels"})``: the first NaN/Inf of images, boxes or labels is
  named by index (image, row) before anything is loaded; boxes of padding rows (label -1) are not looked
  at. Box geometry (x2 < x1), label range and shapes are refused by ``check_boxes`` naming image and row.
- A cosine schedule whose warm-up is not shorter than the run (``kerasvk train yolo --epochs 1``: the
  recipe warms up for one epoch) is refused up front, not after the data is loaded and the model built.
- Detection arrays with no box at all (every label -1, or every box outside its image) are refused: a detector
  has nothing to learn. Mask values are binarised (``> 0``: 0/1 and 0/255 masks both work); NaN masks, masks of
  another shape and missing masks (Mask R-CNN) are refused.
- ``Detector.detect`` takes float images in [0, 1] or uint8 0..255; NaN/Inf pixels and floats outside [0, 1]
  (0..255 floats gave the detections of a washed-out image) are refused naming the first index.
- ``kerasvk export``: an option of the other format (``--out`` with a SavedModel, ``--base/--name/--version``
  with ``--format litert|tflite``) is refused instead of being ignored (the files went somewhere else).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from kerasvk.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")

BIG = "99999999999999999999"  # overflows int64


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad files and folders, made once: corrupt/truncated images, non-UTF-8 text, broken .keras files."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("bad")
    img = (np.arange(16 * 16 * 3).reshape(16, 16, 3) % 251).astype("uint8")
    good_jpeg = tf.io.encode_jpeg(img).numpy()
    for name, corrupt in (("corrupt_folder", b"this is not a JPEG"), ("truncated_folder", good_jpeg[: len(good_jpeg) // 2])):
        for c in ("a", "b"):
            d = root / name / c
            d.mkdir(parents=True)
            for i in range(3):
                (d / f"{i}.jpg").write_bytes(good_jpeg)
        (root / name / "b" / "bad.jpg").write_bytes(corrupt)
    (root / "empty").mkdir()
    (root / "one_class" / "a").mkdir(parents=True)
    (root / "one_class" / "a" / "0.jpg").write_bytes(good_jpeg)
    (root / "no_images" / "a").mkdir(parents=True)
    (root / "no_images" / "b").mkdir(parents=True)
    (root / "no_images" / "a" / "notes.txt").write_text("x")
    (root / "no_images" / "b" / "notes.txt").write_text("x")
    (root / "latin1.txt").write_bytes("caf\xe9 na\xefve ".encode("latin-1") * 200)
    (root / "a_file").write_text("x")
    (root / "not.png").write_bytes(b"not an image")
    (root / "not.wav").write_bytes(b"RIFF....WAVEjunk")
    (root / "saved_model_file").write_bytes(b"\x00" * 64)  # a file where a SavedModel folder is expected
    t = np.arange(1600) / 16000.0
    tone = np.sin(2 * np.pi * 440 * t).astype("float32")[:, None] * 0.5
    (root / "stereo.wav").write_bytes(tf.audio.encode_wav(np.concatenate([tone, -tone * 0.5], 1), 8000).numpy())
    (root / "rate16k.wav").write_bytes(tf.audio.encode_wav(tone, 16000).numpy())
    import keras

    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    m.save(root / "good.keras")
    data = (root / "good.keras").read_bytes()
    (root / "truncated.keras").write_bytes(data[: len(data) // 2])
    (root / "garbage.keras").write_bytes(b"\x00" * 100)
    lam = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    lam.save(root / "lambda.keras")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder for the evaluate/predict/export rows (the trainer's run.json keys and an untrained
    model.keras: these rows fail before any number is computed, so no training is needed), broken copies of
    it, and a detector run beside them ({DET})."""
    import shutil

    import kerasvk
    from kerasvk import io

    out = tmp_path_factory.mktemp("runs") / "sc"
    model = kerasvk.build("simple_cnn", input_shape=(16, 16, 1), num_classes=5, dense_units=4)
    io.save_model(model, out / "model.keras")
    io.write_json({"model": "simple_cnn", "task": "classification", "data": P, "image_size": [16, 16], "channels": 1,
                   "class_names": [str(i) for i in range(5)], "seed": 0, "batch_size": 8, "val_split": 0.1,
                   "test_split": 0.2, "model_kwargs": {"dense_units": 4}}, out / "run.json")
    broken = {}
    for what in ("truncated_model", "lambda_model", "corrupt_json", "no_model"):
        d = out.parent / what
        shutil.copytree(out, d)
        broken[what] = d
    data = (out / "model.keras").read_bytes()
    (broken["truncated_model"] / "model.keras").write_bytes(data[:1000])
    import keras

    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x + 1)]).save(broken["lambda_model"] / "model.keras")
    (broken["corrupt_json"] / "run.json").write_text("{not json")
    (broken["no_model"] / "model.keras").unlink()
    det = out.parent / "det"  # a detector run (untrained tiny YOLO) for the detection rows of predict/export/evaluate
    io.save_model(kerasvk.build("yolo", input_shape=(32, 32, 3), num_classes=2, **TINY["yolo"]), det / "model.keras")
    io.write_json({"model": "yolo", "task": "detection", "data": "shapes:count=24,size=32", "image_size": [32, 32],
                   "channels": 3, "class_names": ["a", "b"], "seed": 0, "batch_size": 8, "val_split": 0.1,
                   "test_split": 0.2, "max_boxes": 4, "with_masks": False}, det / "run.json")
    return out, broken


T = ["train", "simple_cnn", "--epochs", "1", "--set", "dense_units=4", "--quiet"]  # rejected before any work
P = "patterns:classes=5,count=40"
D = ["--data", "shapes:count=8,size=32", "--epochs", "2", "--quiet"]  # detectors: 2 epochs (the recipes warm up for 1)
# the tiny detector builds of these rows
TINY = {"yolo": {"backbone_kwargs": {"width_multiplier": 0.25, "blocks_per_stage": [1, 1, 1, 1]}, "neck_width": 8,
                 "head_width": 8, "reg_max": 8},
        "faster_rcnn": {"backbone_kwargs": {"width_multiplier": 0.25, "blocks_per_stage": [1, 1, 1, 1]},
                        "fpn_filters": 8, "num_proposals": 8, "rpn_pre_nms_topk": 50, "head_units": 8}}
TINY["mask_rcnn"] = {**TINY["faster_rcnn"], "mask_filters": 4, "mask_roi_size": 4}

# (argv, words the message must contain). {F} is the files folder, {RUN} the run folder, {B} its broken copies.
CLI_ROWS = [
    # names
    (["train", "nosuch_model"], "Unknown model name 'nosuch_model'"),
    ([*T, "--data", "nope"], "Unknown data source 'nope'"),
    ([*T, "--data", "digitz"], "Did you mean digits"),
    ([*T, "--data", P, "--augment", "wild"], "wild"),
    ([*T, "--data", P, "--augment", "standard,blur=3"], "blur"),
    ([*T, "--data", P, "--augment", "standard,rotation=abc"], "rotation"),
    ([*T, "--data", P, "--schedule", "linear"], "linear"),
    ([*T, "--data", P, "--schedule", "step:gamma=x"], "gamma"),
    ([*T, "--data", P, "--schedule", "step:step_size=inf"], "Schedule option step_size must be a finite number"),
    ([*T, "--data", P, "--schedule", "exponential:k=1e400"], "Schedule option k must be a finite number"),
    (["plot-schedule", "step:step_size=nan", "--out", "{F}/s.png"], "Schedule option step_size must be a finite"),
    ([*T, "--data", P, "--strategy", "gpu"], "invalid choice: 'gpu'"),
    ([*T, "--data", P, "--optimizer", "adagrad"], "Unknown optimizer 'adagrad'. Allowed: adam, adamw, sgd, rmsprop"),
    ([*T, "--data", P, "--precision", "float8"], "invalid choice: 'float8'"),
    (["info", "lenet"], "Unknown model name 'lenet'"),
    (["list", "--task", "segmentation"], "Unknown task"),
    (["frobnicate"], "invalid choice"),
    (["plot-schedule", "nope", "--out", "{F}/s.png"], "nope"),
    (["augment-preview", "--augment", "wild", "--out", "{F}/p.png"], "wild"),
    (["augment-preview", "--data", "nope", "--out", "{F}/p.png"], "nope"),
    # sizes, epochs, batch sizes, steps: negative, zero, huge, non-numeric
    ([*T, "--data", P, "--epochs", "0"], "expected a positive integer, got '0'"),
    ([*T, "--data", P, "--epochs", "-3"], "expected a positive integer"),
    ([*T, "--data", P, "--epochs", "ten"], "expected a positive integer, got 'ten'"),
    ([*T, "--data", P, "--epochs", BIG], "epochs must be an integer"),
    ([*T, "--data", P, "--batch-size", "0"], "expected a positive integer"),
    ([*T, "--data", P, "--batch-size", "-8"], "expected a positive integer"),
    ([*T, "--data", P, "--batch-size", "1.5"], "expected a positive integer, got '1.5'"),
    ([*T, "--data", P, "--batch-size", BIG], "batch_size must be an integer"),
    ([*T, "--data", P, "--steps-per-epoch", "0"], "expected a positive integer"),
    ([*T, "--data", P, "--steps-per-epoch", BIG], "steps_per_epoch must be an integer"),
    ([*T, "--data", P, "--image-size", "0"], "expected SIZE or HxW"),
    ([*T, "--data", P, "--image-size", "32x"], "expected SIZE or HxW"),
    ([*T, "--data", P, "--image-size", "8x8x8"], "expected SIZE or HxW"),
    ([*T, "--data", P, "--image-size", "100000"], "image_size must be"),
    ([*T, "--data", P, "--seed", "-1"], "expected an integer >= 0"),
    ([*T, "--data", P, "--early-stopping", "0"], "expected a positive integer"),
    ([*T, "--data", P, "--warmup", "-1"], "expected an integer >= 0"),
    ([*T, "--data", P, "--warmup", "two"], "expected an integer >= 0"),
    # rates
    ([*T, "--data", P, "--lr", "0"], "expected a positive number, got '0'"),
    ([*T, "--data", P, "--lr", "-0.1"], "expected a positive number"),
    ([*T, "--data", P, "--lr", "fast"], "expected a positive number, got 'fast'"),
    ([*T, "--data", P, "--lr", "inf"], "expected a positive number"),
    ([*T, "--data", P, "--lr", "nan"], "expected a positive number"),
    ([*T, "--data", P, "--label-smoothing", "1.5"], "label_smoothing must be in [0, 1)"),
    ([*T, "--data", P, "--label-smoothing", "-0.1"], "label_smoothing must be in [0, 1)"),
    ([*T, "--data", P, "--label-smoothing", "nan"], "label_smoothing must be in [0, 1)"),
    ([*T, "--data", P, "--l2", "-1"], "l2 must be"),
    ([*T, "--data", P, "--l2", "inf"], "l2 must be"),
    ([*T, "--data", P, "--l2sp", "0"], "expected a positive number"),
    # ranks / channels / builder arguments
    ([*T, "--data", P, "--channels", "2"], "invalid choice: 2"),
    ([*T, "--data", P, "--set", "noequals"], "expected KEY=VALUE"),
    ([*T, "--data", P, "--set", "nosuch=1"], "does not take argument(s) nosuch"),
    ([*T, "--data", P, "--set", "input_shape=(32,32)"], "input_shape"),
    ([*T, "--data", P, "--set", "num_classes=0"], "num_classes"),
    ([*T, "--data", P, "--set", "filters='abc'"], "simple_cnn: filters must be a non-empty list/tuple of integers >= 1"),
    (["train", "gpt", "--seq-len", "1", "--epochs", "1"], "seq_len must be an integer >= 2"),
    (["train", "lenet5", "--seq-len", "8", "--data", P], "Unknown training option(s) ['seq_len']"),
    # data sources and label counts
    ([*T, "--data", "patterns:classes=abc"], "must be an integer"),
    ([*T, "--data", "patterns:colour=3"], "colour"),
    ([*T, "--data", "digits:count=5"], "takes no options"),
    ([*T, "--data", "patterns:count=10,count=20"], "Option 'count' given twice"),
    ([*T, "--data", "patterns:count=" + BIG], "Option count must be in [1, 1,000,000]"),
    ([*T, "--data", "digits", "--image-size", "4096"], "would hold 1,797 images = 28.1 GiB in memory; at most 8 GiB"),
    ([*T, "--data", "folder:/nonexistent/images"], "Image folder not found"),
    ([*T, "--data", "folder:{F}/empty"], "has 0 class subfolder(s); at least 2 are needed"),
    ([*T, "--data", "folder:{F}/one_class"], "has 1 class subfolder(s)"),
    ([*T, "--data", "folder:{F}/no_images"], "has no images"),
    ([*T, "--data", "folder:{F}/corrupt_folder"], "Unreadable image {F}/corrupt_folder/b/bad.jpg"),
    ([*T, "--data", "folder:{F}/truncated_folder"], "Unreadable image {F}/truncated_folder/b/bad.jpg"),
    ([*T, "--data", "folder:{F}/a_file"], "Image folder not found"),
    # tasks and their sources
    (["train", "gpt", "--data", "digits", "--epochs", "1"], "Unknown text source 'digits' for gpt. Allowed: pydoc"),
    (["train", "gpt", "--data", "file:/nonexistent.txt", "--epochs", "1"], "Text file not found"),
    (["train", "gpt", "--data", "file:{F}/latin1.txt", "--epochs", "1"], "'utf-8' codec can't decode byte 0xe9"),
    (["train", "wavenet", "--data", "digits", "--epochs", "1"], "Unknown audio source 'digits'"),
    (["train", "dcgan", "--schedule", "cosine", "--epochs", "1"], "dcgan trains two optimizers"),
    (["train", "vae", "--augment", "standard", "--epochs", "1"], "does not take augment"),
    (["train", "vae", "--weights", "imagenet", "--epochs", "1"], "are for classifiers"),
    ([*T, "--data", P, "--fine-tune", "frozen"], "--fine-tune needs --weights"),
    ([*T, "--data", P, "--weights", "imagenet", "--fine-tune", "half"], "Unknown fine-tune mode 'half'"),
    ([*T, "--data", P, "--weights", "/nonexistent.weights.h5"], "No weights at"),
    # detectors and their box sources
    (["train", "yolo", "--data", "digits"], "Unknown detection source 'digits'"),
    (["train", "yolo", "--data", "shapesz"], "Did you mean shapes?"),
    (["train", "yolo", "--data", "shapes:count=0"], "Option count must be >= 1"),
    (["train", "yolo", "--data", "shapes:size=8"], "Option size must be >= 16"),
    (["train", "yolo", "--data", "shapes:max_objects=abc"], "Option max_objects must be an integer"),
    (["train", "yolo", "--data", "shapes:colour=3"], "Allowed options: count=N, size=N, max_objects=N"),
    (["train", "yolo", "--data", "shapes:size=99999"], "Option size must be at most 4,096"),
    (["train", "yolo", "--data", "shapes:max_objects=99999999999"], "Option max_objects must be at most 1,000"),
    (["train", "yolo", "--data", "shapes:count=1000000"], "would hold 1,000,000 images = 45.8 GiB in memory"),
    (["train", "ssd", "--data", "shapes:count=8", "--augment", "strong"], "Unknown detection augmentation 'strong'"),
    (["train", "yolo", "--data", "shapes:count=8", "--channels", "1"], "does not take channels"),
    (["train", "yolo", "--data", "shapes:count=8", "--label-smoothing", "0.1"], "does not take label_smoothing"),
    (["train", "yolo", "--data", "shapes:count=8", "--weights", "imagenet"], "are for classifiers; yolo is a detection"),
    (["train", "yolo", "--data", "shapes:count=8", "--epochs", "1"], "warmup (1 epochs) must be shorter than epochs (1)"),
    (["train", "yolo", "--data", "shapes:count=8", "--image-size", "8"], "image_size must be (height, width) integers >= 16"),
    ([*T, "--data", "shapes"], "Unknown data source 'shapes'"),
    # audio: a WAV file is no training source
    (["train", "wavenet", "--data", "file:{F}/stereo.wav", "--epochs", "1"], "Unknown audio source 'file:"),
    # where the run goes
    ([*T, "--data", P, "--out", "{F}/a_file"], "is an existing file"),
    ([*T, "--data", P, "--out", "{F}/a_file/sub"], "is a file, not a folder"),
    ([*T, "--data", P, "--out", "/proc/kerasvk-run"], "is not writable"),
    # using runs, exports and model files
    (["evaluate", "/nonexistent/run"], "Run folder not found"),
    (["evaluate", "{F}/empty"], "run.json is missing"),
    (["evaluate", "{B}/no_model"], "model.keras is missing"),
    (["evaluate", "{B}/corrupt_json"], "Corrupt run configuration"),
    (["evaluate", "{B}/truncated_model"], "not a valid .keras file (truncated or corrupt"),
    (["evaluate", "{B}/lambda_model"], "contains a Lambda layer"),
    (["evaluate", "{RUN}", "--data", "nope"], "Unknown data source 'nope'"),
    (["predict", "{RUN}", "{F}/not.png"], "Cannot decode"),
    (["predict", "{RUN}", "{F}/missing.png"], "Image file not found"),
    (["predict", "{RUN}"], "needs image files"),
    (["predict", "{F}/saved_model_file", "{F}/not.png"], "Run folder not found"),
    (["export", "{RUN}", "--base", "{F}/sm", "--name", "../escape"], "export name must be a plain name"),
    (["export", "{RUN}", "--base", "{F}/sm", "--name", ".."], "export name must be a plain name"),
    (["export", "{RUN}", "--base", "{F}/sm", "--name", "/tmp/abs"], "export name must be a plain name"),
    (["export", "{RUN}", "--base", "{F}/a_file"], "is an existing file"),
    (["export", "{RUN}", "--version", "0"], "expected a positive integer"),
    (["check-export", "{F}/saved_model_file"], "SavedModel"),
    (["check-export", "/nonexistent/export"], "No SavedModel"),
    # recent surface: detectors (Faster/Mask R-CNN), check-export, --format tflite, predict
    (["train", "faster_rcnn", *D[:1], "shapes:count=8,size=16", *D[2:]], "multiples of 32 (the stride of P5"),
    (["train", "mask_rcnn", "--data", "shapes:count=8", "--image-size", "48", "--epochs", "2"],
     "multiples of 32 (the stride of P5"),
    (["train", "yolo", "--data", "shapes:count=8", "--image-size", "40", "--epochs", "2"],
     "multiples of its largest stride, 32"),
    (["train", "yolo", *D, "--image-size", "64"], "makes 32x32 images but image_size=(64, 64): give the size once"),
    (["train", "faster_rcnn", *D, "--set", "backbone=nosuch"], "'nosuch' is not a registered model. Allowed backbones:"),
    (["train", "mask_rcnn", *D, "--set", "backbone=gpt"], "'gpt' has none. Allowed backbones: densenet121"),
    (["train", "mask_rcnn", *D, "--set", "mask_threshold=1.5"], "mask_threshold must be a number in (0, 1)"),
    (["train", "faster_rcnn", *D, "--set", "rpn_positive_iou=2"], "rpn_positive_iou must be a number in [0, 1]"),
    (["export", "{RUN}", "--format", "nosuch"], "invalid choice: 'nosuch'"),
    (["export", "{RUN}", "--out", "{F}/x"], "--out is not for --format savedmodel"),
    (["export", "{RUN}", "--format", "tflite", "--name", "x", "--version", "2"], "--name and --version are not for"),
    (["export", "{DET}", "--format", "tflite"], "LiteRT export is for classifiers; {DET} holds a detection model (yolo)"),
    (["export", "{RUN}", "--format", "litert", "--out", "{F}/a_file"], "is an existing file"),
    (["check-export", "{RUN}"], "No SavedModel at {RUN}"),
    (["check-export", "{F}/empty", "--version", "3"], "No SavedModel at {F}/empty"),
    (["check-export", "{F}/saved_model_file", "--atol", "nan"], "expected a positive number, got 'nan'"),
    (["check-export", "{F}/saved_model_file", "--run", "/nonexistent/run"], "Run folder not found"),
    (["predict", "{DET}"], "predict on a detector needs image files"),
    (["predict", "{DET}", "{F}/not.png"], "Cannot decode {F}/not.png as an image"),
    (["predict", "{RUN}", "{F}/stereo.wav"], "Cannot decode {F}/stereo.wav as an image"),
    (["evaluate", "{DET}", "--data", "digits"], "Unknown detection source 'digits'"),
]


def _fill(argv, files, run):
    out, broken = run
    return [a.replace("{F}", str(files)).replace("{RUN}", str(out)).replace("{B}", str(out.parent))
            .replace("{DET}", str(out.parent / "det")) for a in argv]


class ReachedFit(Exception):
    """A bad input that got as far as ``model.fit`` (every row must be refused before any training)."""


@pytest.fixture
def no_fit(monkeypatch):
    """``keras.Model.fit`` raises ``ReachedFit``: a row that slips through fails at once, without training."""
    import keras

    def refuse(*a, **k):
        raise ReachedFit()

    monkeypatch.setattr(keras.Model, "fit", refuse)


def _run_rows(rows, call, tmp_path, what):
    """``call(kwargs, out)`` for each row ``(kwargs, error, regex)``: the failures, one line per row whose call
    did not raise ``error`` matching ``regex``, raised another exception, or created its run folder ``out``."""
    import re

    failures = []
    for i, (kwargs, error, match) in enumerate(rows):
        out = tmp_path / f"{what}{i}"
        try:
            call(dict(kwargs), out)
            failures.append(f"{what} row {i}: no error")
        except error as e:
            if not re.search(match, str(e)):
                failures.append(f"{what} row {i}: {str(e)!r} does not match {match!r}")
        except Exception as e:  # noqa: BLE001 - a wrong exception type (ReachedFit included) fails the row
            failures.append(f"{what} row {i}: {type(e).__name__}: {e}")
        if out.exists():
            failures.append(f"{what} row {i}: {out} was created")
    return failures


def test_cli_bad_inputs(files, run, tmp_path, monkeypatch, capsys, no_fit):
    """Every CLI row (one test over the table: a test item per row would cost more in set-up than the rows)."""
    monkeypatch.chdir(tmp_path)  # the default run (and export) folders would be tmp_path/runs/..., saved_models/
    before = {p: sorted(q.name for q in p.iterdir()) for p in (files, *run[0].parent.iterdir()) if p.is_dir()}
    failures = []
    for i, (argv, words) in enumerate(CLI_ROWS):
        argv = _fill(argv, files, run)
        words = _fill([words], files, run)[0]
        out = tmp_path / f"run{i}"
        if argv[0] == "train" and "--out" not in argv:
            argv = [*argv, "--out", str(out)]
        try:
            code = main(argv)
        except ReachedFit:
            code = "ReachedFit"
        err = capsys.readouterr().err.strip()
        ok = (code == 2 and err.startswith("kerasvk: error:") and "\n" not in err and "Traceback" not in err
              and words in err and not out.exists() and not (tmp_path / "runs").exists()
              and not (tmp_path / "saved_models").exists())
        if not ok:
            failures.append(f"{' '.join(argv)} -> exit {code}: {err[-300:]!r} (expected {words!r})")
    assert not failures, "\n".join(failures)
    # nothing written next to the inputs or into the run folders either (no predictions/, litert/, metrics)
    assert {p: sorted(q.name for q in p.iterdir()) for p in before} == before


# ------------------------------------------------------------------------------------------ Python API
def _x(n=20, shape=(8, 8, 1)):
    return np.random.default_rng(0).random((n, *shape)).astype("float32")


def _nan_at(index, value=np.nan):
    x = _x()
    x[index] = value
    return x


def _labels(n=20):
    return np.arange(n) % 2


API_ROWS = [
    # arrays: NaN/Inf named by index, counts, ranks, channels, label values, dtypes
    (dict(data=(_nan_at((3, 1, 2, 0)), _labels())), ValueError, r"images contains NaN at index \(3, 1, 2, 0\) \(example 3\)"),
    (dict(data=(_nan_at((7, 0, 0, 0), np.inf), _labels())), ValueError, r"images contains Inf at index \(7, 0, 0, 0\)"),
    (dict(data=(_x(), np.where(np.arange(20) == 5, np.nan, 0.0))), ValueError, r"labels contains NaN at index \(5,\)"),
    (dict(data=(_x(), _labels(19))), ValueError, "differ in length: 20 images, 19 labels"),
    (dict(data=(_x(), -_labels() - 1)), ValueError, r"labels must be class indices >= 0. Received: labels\[0\]=-1"),
    (dict(data=(_x(), _labels() + 0.5)), ValueError, "labels must be integer class indices"),
    (dict(data=(_x(), _labels().reshape(10, 2))), ValueError, "labels must be a 1-D array"),
    (dict(data=(_x()[:, :, 0, 0], _labels())), ValueError, r"images must have shape \(N, H, W\) or \(N, H, W, C\)"),
    (dict(data=(_x(shape=(8, 8, 2)), _labels())), ValueError, "C = 1 or 3"),
    (dict(data=(np.array([["a"]] * 20), _labels())), ValueError, "images must be a numeric array"),
    (dict(data=(_x()[:0], _labels(0))), ValueError, "images is empty"),
    (dict(data=(_x(), _labels(), _labels())), ValueError, "must be a pair"),
    # options
    (dict(epochs=True), ValueError, "epochs must be an integer >= 1"),
    (dict(epochs=1.5), ValueError, "epochs must be an integer >= 1"),
    (dict(batch_size="8"), ValueError, "batch_size must be an integer >= 1"),
    (dict(batch_size=2**40), ValueError, "batch_size must be an integer"),
    (dict(lr=float("inf")), ValueError, "lr must be a positive"),
    (dict(lr=float("nan")), ValueError, "lr must be a positive"),
    (dict(val_split=0.0), ValueError, r"val_split must be in \(0, 1\)"),
    (dict(test_split=1.5), ValueError, r"test_split must be in \(0, 1\)"),
    (dict(val_split=0.5, test_split=0.5), ValueError, "val_split \\+ test_split must be < 1"),
    (dict(seed=-1), ValueError, "seed must be a non-negative integer"),
    (dict(optimizer="adagrad"), ValueError, "Allowed: adam, adamw, sgd, rmsprop"),
    (dict(strategy="gpu"), ValueError, "Unknown strategy 'gpu'. Allowed: default, mirrored, multiworker, tpu"),
    (dict(precision="float8"), ValueError, "Unknown precision 'float8'. Allowed: float32"),
    (dict(image_size=(0, 8)), ValueError, "image_size must be"),
    (dict(nonsense=1), ValueError, r"Unknown training option\(s\) \['nonsense'\]. Allowed: epochs"),
    (dict(out=Path(__file__)), ValueError, "is an existing file"),
    (dict(channels=2), ValueError, r"channels must be 1 \(grey\) or 3 \(RGB\)"),
    (dict(model_kwargs=[4]), ValueError, "model_kwargs must be a dict of builder arguments"),
    (dict(callbacks=[print]), ValueError, "callbacks must be a list of keras.callbacks.Callback"),
    (dict(weights=5), ValueError, "weights must be None, 'imagenet' or a path"),
    (dict(verbose="loud"), ValueError, "verbose must be 'auto', 0, 1 or 2"),
    (dict(data=(_x(), _labels()), model_kwargs={"dense_units": 4, "input_shape": (16, 16, 1)}), ValueError,
     r"input_shape=\(16, 16, 1\) differs from the data's \(8, 8, 1\)"),
]


def test_train_api_bad_inputs(tmp_path, no_fit):
    from kerasvk.training import train

    def call(kwargs, out):
        train("simple_cnn", **{"data": P, "epochs": 1, "out": out, "verbose": 0, "model_kwargs": {"dense_units": 4},
                               **kwargs})

    failures = _run_rows(API_ROWS, call, tmp_path, "api")
    # NumPy scalars are the numbers they hold (np.int64(8) was refused as "not an integer")
    with pytest.raises(ReachedFit):
        train("simple_cnn", P, epochs=np.int32(1), batch_size=np.int64(8), lr=np.float32(1e-3), seed=np.int64(0),
              out=tmp_path / "numpy", verbose=0, model_kwargs={"dense_units": 4})
    assert not failures, "\n".join(failures)


# detection arrays: (images, {"boxes", "labels"[, "masks"]}) through train(DETECTOR, ...), refused before anything
# is built (or, for sizes, before the model is)
def _det(n=12, size=32, with_masks=False, **change):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3)).astype("uint8")
    boxes = np.tile(np.array([[[2, 2, 12, 12], [-1, -1, -1, -1]]], "float32"), (n, 1, 1))
    labels = np.tile(np.array([[0, -1]]), (n, 1))
    parts = {"images": images, "boxes": boxes, "labels": labels}
    if with_masks:
        parts["masks"] = np.zeros((n, 2, size, size), "uint8")
        parts["masks"][:, 0, 2:12, 2:12] = 1
    for key, fn in change.items():
        parts[key] = fn(parts[key].copy())
    targets = {k: v for k, v in parts.items() if k != "images" and v is not None}
    return parts["images"], targets


def _put(index, value):
    def put(a):
        a = a.astype("float32") / (255.0 if a.dtype == np.uint8 else 1.0) if np.isnan(value) or np.isinf(value) else a
        a[index] = value
        return a
    return put


def _rows(model, rows):
    """``(data, regex)`` rows of ``model`` as ``(kwargs, ValueError, regex)``."""
    return [(dict(model=model, data=data), ValueError, match) for data, match in rows]


def _m(fn):  # a change of the masks (Mask R-CNN rows carry them)
    return dict(with_masks=True, masks=fn)


DETECTION_ROWS = _rows("yolo", [
    (_det(boxes=_put((3, 0, 2), np.nan)), r"boxes contains NaN at index \(3, 0, 2\) \(image 3, row 0\)"),
    (_det(boxes=_put((5, 0, 1), np.inf)), r"boxes contains Inf at index \(5, 0, 1\) \(image 5, row 0\)"),
    (_det(images=_put((4, 1, 2, 0), np.nan)), r"images contains NaN at index \(4, 1, 2, 0\) \(image 4\)"),
    (_det(labels=lambda a: np.where(a == 0, np.nan, a)), r"labels contains NaN at index \(0, 0\) \(image 0\)"),
    (_det(images=lambda a: a[..., :1]), r"Detection images must have shape \(N, H, W, 3\)"),
    (_det(images=lambda a: a.astype("float32")), r"uint8 0..255 or floats in \[0, 1\]"),
    (_det(labels=lambda a: np.where(a == 0, -5, a)), r"Labels must be in \[0, 1\) \(-1 marks a padding row\). "
                                                     r"Received: labels\[0, 0\]=-5"),
    (_det(labels=lambda a: a + 0.5), "labels must be integers"),
    (_det(boxes=lambda a: a[..., [2, 3, 0, 1]]), r"Box of image 0, row 0 has x2 < x1 or y2 < y1"),
    (_det(boxes=lambda a: a[..., :3]), r"boxes must have shape \(images, max_boxes, 4\)"),
    (_det(images=lambda a: a[:10]), "Images and boxes differ in length: 10 vs 12 images"),
    (_det(labels=lambda a: None), r"must be \(images, \{'boxes': ..., 'labels': ...\}\)"),
    (_det(boxes=lambda a: "boxes"), "boxes must be a numeric array"),
    ((_det()[0], np.zeros(12)), r"An array detection source must be \(images, \{'boxes'"),
    (_det(size=16), "multiples of its largest stride, 32"),  # smaller than the coarsest stride
    (_det(labels=lambda a: np.full(a.shape, -1)), r"no box to learn from: every label is -1 \(padding\)"),
]) + _rows("faster_rcnn", [
    (_det(size=16), r"multiples of 32 \(the stride of P5.*Received: input_shape=\(16, 16, 3\)"),
    (_det(boxes=_put((1, 0, 0), np.nan)), r"boxes contains NaN at index \(1, 0, 0\) \(image 1, row 0\)"),
    (_det(boxes=lambda a: a + 100), "no box to learn from: all 12 boxes lie outside their images"),
]) + _rows("mask_rcnn", [
    (_det(**_m(_put((3, 0, 5, 5), np.nan))), r"masks contains NaN at index \(3, 0, 5, 5\) \(image 3, row 0\)"),
    (_det(**_m(lambda m: m[:, :, :16, :16])), r"targets\['masks'\] must have shape \(N, M, H, W\) = \(12, 2, 32, 32\)"),
    (_det(**_m(lambda m: m[:, :1])), r"Received: shape=\(12, 1, 32, 32\)"),
    (_det(**_m(lambda m: m[:, 0])), r"Received: shape=\(12, 32, 32\)"),
    (_det(**_m(lambda m: None)), r"with_masks=True needs targets\['masks'\]"),
    (_det(**_m(lambda m: np.full(m.shape, "x"))), "masks must be a numeric array"),
])


def test_detection_bad_inputs(tmp_path, no_fit):
    """Box data with NaN and the other bad detection arrays: one clear ValueError each, nothing created;
    the valid arrays (32x32, the detector's default being 128x128) reach ``fit``."""
    from kerasvk.training import train

    def call(kwargs, out):
        model = kwargs.pop("model")
        train(model, kwargs.pop("data"), epochs=2, out=out, verbose=0, model_kwargs=TINY[model])

    failures = _run_rows(DETECTION_ROWS, call, tmp_path, "det")
    with pytest.raises(ValueError, match="is a detection source"):
        train("simple_cnn", _det(), out=tmp_path / "cls", verbose=0)
    images, targets = _det()
    targets["boxes"][2, 1] = np.nan  # a padding row (label -1): not looked at
    with pytest.raises(ReachedFit):
        train("yolo", (images, targets), epochs=2, out=tmp_path / "ok", verbose=0, model_kwargs=TINY["yolo"])
    assert not failures, "\n".join(failures)
    assert json.loads((tmp_path / "ok" / "run.json").read_text())["image_size"] == [32, 32]


def test_detect_bad_images():
    """``Detector.detect``: images of another shape or kind, non-finite or out-of-range pixels, bad NMS settings."""
    import kerasvk

    model = kerasvk.build("yolo", input_shape=(32, 32, 3), num_classes=2, **TINY["yolo"])
    ok = np.zeros((2, 32, 32, 3), "float32")
    nan, wide = ok.copy(), ok.copy()
    nan[1, 3, 4, 2], wide[0, 0, 1, 0] = np.nan, 255.0
    rows = [
        (dict(images=ok[:, :16]), r"takes float images of shape \(batch, 32, 32, 3\) in \[0, 1\]. Received: shape=\(2, 16, 32, 3\)"),
        (dict(images=ok[0]), r"Received: shape=\(32, 32, 3\)"),
        (dict(images="abc"), "Received: dtype <U3"),
        (dict(images=nan), r"Received: images\[1, 3, 4, 2\]=nan \(image 1\)"),
        (dict(images=wide), r"Received: images\[0, 0, 1, 0\]=255.0 \(image 0\). Scale 0..255 floats by 1/255"),
        (dict(images=ok, score_threshold=2), r"score_threshold must be a number in \[0, 1\]"),
        (dict(images=ok, iou_threshold=-0.1), r"iou_threshold must be a number in \[0, 1\]"),
        (dict(images=ok, max_detections=0), "max_detections must be an integer >= 1"),
    ]
    for kwargs, match in rows:
        with pytest.raises(ValueError, match=match):
            model.detect(**kwargs)


def test_out_of_memory_is_one_line(monkeypatch, capsys):
    """A size that passes every check but does not fit in memory (NumPy's MemoryError, TensorFlow's
    ResourceExhaustedError) ends with one line and exit 1, not a traceback."""
    import tensorflow as tf

    import kerasvk.registry

    for error in (MemoryError("Unable to allocate 54.6 TiB for an array with shape (2000, 99999, 99999, 3)"),
                  tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[2048,9999999999999]")):
        def fail(*a, error=error, **k):
            raise error

        monkeypatch.setattr(kerasvk.registry, "list_models", fail)
        assert main(["list"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("kerasvk: error: out of memory (") and "\n" not in err and "smaller" in err


def test_wav_inputs(files):
    """A stereo WAV is mixed to mono, a 16 kHz WAV resampled to the rate asked for; other rates are refused."""
    from kerasvk.data.audio import read_wav

    wave, rate = read_wav(files / "stereo.wav")
    assert wave.ndim == 1 and rate == 8000 and len(wave) == 1600
    assert np.max(np.abs(wave)) == pytest.approx(0.125, abs=2e-3)  # the mean of (x, -x/2), x peaking at 0.5
    wave, rate = read_wav(files / "rate16k.wav", sample_rate=8000)
    assert rate == 8000 and len(wave) == 800
    with pytest.raises(ValueError, match=r"sample_rate must be one of \(8000, 16000\)"):
        read_wav(files / "rate16k.wav", sample_rate=44100)


def test_model_files_and_names_api(files, run, tmp_path):
    import kerasvk
    from kerasvk import io
    from kerasvk.data.audio import read_wav
    from kerasvk.training import export_run

    rows = [
        (lambda: kerasvk.build("nosuch"), ValueError, "Unknown model name"),
        (lambda: kerasvk.build("lenet5", input_shape=(32, 32)), ValueError, "input_shape"),
        (lambda: kerasvk.build("lenet5", num_classes=0), ValueError, "num_classes"),
        (lambda: kerasvk.load_model(files / "truncated.keras"), ValueError, "not a valid .keras file"),
        (lambda: kerasvk.load_model(files / "garbage.keras"), ValueError, "not a valid .keras file"),
        (lambda: kerasvk.load_model(files / "lambda.keras"), ValueError, "safe_mode=True"),
        (lambda: kerasvk.load_model(files / "empty"), ValueError, "is a folder, not a .keras file"),
        (lambda: kerasvk.load_model(files / "missing.keras"), FileNotFoundError, "No model file"),
        (lambda: io.safe_name("../x", "export name"), ValueError, "plain name"),
        (lambda: io.safe_name("/abs", "run name"), ValueError, "plain name"),
        (lambda: export_run(run[0], base=tmp_path / "sm", name="a/../../b"), ValueError, "plain name"),
        (lambda: export_run(run[0], base=tmp_path / "sm", version=-1), ValueError, "version must be a positive integer"),
        (lambda: read_wav(files / "not.wav"), ValueError, "Cannot decode"),
        (lambda: read_wav(files / "missing.wav"), FileNotFoundError, "WAV file not found"),
    ]
    for fn, error, match in rows:
        with pytest.raises(error, match=match):
            fn()
    assert not (tmp_path / "sm").exists()
    # the Lambda message explains safe_mode and how to opt out; the file still loads when trusted
    with pytest.raises(ValueError) as e:
        kerasvk.load_model(files / "lambda.keras")
    assert "Python code" in str(e.value) and "safe_mode=False" in str(e.value)
    assert kerasvk.load_model(files / "lambda.keras", safe_mode=False).count_params() == 0


def test_table_size():
    """The issue asks for at least 60 bad inputs; keep the count visible."""
    assert len(CLI_ROWS) + len(API_ROWS) + len(DETECTION_ROWS) + 14 + 8 >= 60
    assert len(CLI_ROWS) >= 60
