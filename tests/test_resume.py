"""Fault tolerance: a SIGKILLed run resumes bit-exact, and a kill during a save never leaves a half file.

The kills are deterministic: the training subprocess SIGKILLs itself after its N-th training batch
(``KERASVK_TEST_SIGKILL_AFTER_STEPS``, a test-only hook of the trainer), and the save subprocesses kill
themselves from inside the writer, halfway through the new file. No sleeps, no timing races.

Each SIGKILL resume test: (1) ``kerasvk train ...`` in a subprocess, killed mid-epoch 2 of 2; (2) the same
command rerun (in-process, through ``kerasvk.cli.main``) resumes it; (3) the same command uninterrupted into
another folder. The final weights (model and optimizer variables) are equal bit for bit, and so are the
checkpoint's, history.json, training_log.csv, metrics.json apart from its timings, and the (tag, epoch) points of
TensorBoard's event files; attempts.json lists the two attempts. One run per kind of trainer state:

- lenet5 (classifier): one pass per epoch, augmentation and a seeded shuffle (data order and augmentation
  RNG restored), a cosine schedule (its position is the optimizer's step count, restored);
- dcgan: ``--steps-per-epoch`` (epochs cut one stream of batches), two optimizers and the model's own
  noise SeedGenerators (RNG state in the backup);
- yolo (detector): box targets through keras' box-aware flip augmentation inside tf.data, the model's
  warm-up + cosine recipe, AdamW, a checkpoint chosen by val_loss.

The other trainers (VAE, GPT, WaveNet, PixelCNN) are checked in-process, cheaper: the run dies of an
exception mid-epoch 2 instead of SIGKILL, the rerun resumes it, and the weights equal an uninterrupted run's.
So is ``--early-stopping``: a run killed while its patience is running out, resumed, stops at the same epoch with
the same (best) weights.
"""

import io as _io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kerasvk.cli import main

ROOT = Path(__file__).resolve().parents[1]

# two pyramid levels: the resumed state (BN statistics, AdamW, augmentation RNG, assignment) is the same for any
# levels, and the default P2-P5 graph nearly doubles the test's CPU time (107 s against 58 s with P4-P5, measured)
DETECTOR = ["--set", "backbone_kwargs={'width_multiplier': 0.25, 'blocks_per_stage': [1, 1, 1, 1]}",
            "--set", "neck_width=8", "--set", "head_width=8", "--set", "reg_max=8", "--set", "levels=['P4', 'P5']"]
RUNS = {
    "lenet5": ["train", "lenet5", "--data", "patterns:classes=5,count=60", "--epochs", "2", "--batch-size", "16",
               "--augment", "standard", "--schedule", "cosine", "--quiet"],  # 42 training images: 3 batches per epoch
    "dcgan": ["train", "dcgan", "--data", "digits", "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "16",
              "--set", "g_filters=[8,4]", "--set", "d_filters=[4,8]", "--set", "latent_dim=4", "--quiet"],
    # 17 training images of 64x64: 3 batches per epoch; the recipe's flip augmentation, warm-up 1 + cosine
    "yolo": ["train", "yolo", "--data", "shapes:count=24,size=64", "--epochs", "2", "--batch-size", "8", *DETECTOR,
             "--quiet"],
}
KILL_AFTER = {"lenet5": 4, "dcgan": 3, "yolo": 4}  # the first step after epoch 1 (lenet5, yolo: 3 steps, dcgan: 2)
CHECKPOINT = {"lenet5": "best.keras", "dcgan": "last.keras", "yolo": "best.keras"}


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.update(extra)
    return env


def _weights(path):
    """Every array of a .keras file's weights (model and optimizer variables), by its h5 path."""
    import h5py

    with zipfile.ZipFile(path) as z, h5py.File(_io.BytesIO(z.read("model.weights.h5")), "r") as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _timeless(metrics):
    """A report without its timings (``train_seconds``, ``inference_images_per_second``, ...)."""
    return {k: v for k, v in metrics.items() if "second" not in k}


def _tensorboard_points(run):
    """``[(train|validation, tag, step)]`` of every scalar in the run's TensorBoard event files, sorted."""
    import tensorflow as tf

    points = []
    for events in sorted((run / "logs").rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            points += [(events.parent.name, v.tag, event.step) for v in event.summary.value]
    return sorted(points)


def _attempts(run):
    return [a["resumed_after_epoch"] for a in json.loads((run / "attempts.json").read_text())["attempts"]]


def _assert_same_weights(path_a, path_b):
    a, b = _weights(path_a), _weights(path_b)
    assert sorted(a) == sorted(b) and any("optimizer" in k for k in a)
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differ, f"{path_a.name}: {len(differ)} of {len(a)} arrays differ, e.g. {differ[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(RUNS))
def test_sigkilled_run_resumes_bit_exact(model, tmp_path, capsys):
    argv = RUNS[model]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kerasvk.cli", *argv, "--out", str(killed)], stdout=log,
                                stderr=subprocess.STDOUT, env=_env(KERASVK_TEST_SIGKILL_AFTER_STEPS=str(KILL_AFTER[model])),
                                cwd=tmp_path)
        try:
            assert main([*argv, "--out", str(whole)]) == 0  # the reference, never interrupted (meanwhile)
        finally:
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    # killed in epoch 2: one epoch recorded and backed up, no model, no report
    assert json.loads((killed / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert len(next(iter(json.loads((killed / "history.json").read_text()).values()))) == 1
    assert not (killed / "model.keras").exists() and not (killed / "metrics.json").exists()

    assert main([*argv, "--out", str(killed)]) == 0  # the same command again: resumes after epoch 1
    capsys.readouterr()

    for name in ("model.keras", f"checkpoints/{CHECKPOINT[model]}"):
        _assert_same_weights(killed / name, whole / name)
    assert json.loads((killed / "history.json").read_text()) == json.loads((whole / "history.json").read_text())
    assert (killed / "training_log.csv").read_text() == (whole / "training_log.csv").read_text()
    resumed, reference = (json.loads((run / "metrics.json").read_text()) for run in (killed, whole))
    assert resumed["epochs_run"] == 2 and _timeless(resumed) == _timeless(reference)
    assert _attempts(killed) == [0, 1] and _attempts(whole) == [0]
    # train_seconds: epoch 1 of the killed attempt (to its backup) + the resumed attempt, not the latter alone
    seconds = [a["train_seconds"] for a in json.loads((killed / "attempts.json").read_text())["attempts"]]
    assert seconds[0] > 0 and resumed["train_seconds"] == pytest.approx(sum(seconds), abs=0.011)
    # TensorBoard: two event files per folder in the resumed run, but the same (tag, epoch) points, none twice
    points = _tensorboard_points(killed)
    assert points == _tensorboard_points(whole) and len(points) == len(set(points)) and points
    assert len(list((killed / "logs" / "train").glob("events.*"))) == 2
    assert not (killed / "backup").exists() and not list(killed.glob(".tmp-*"))


def test_an_unfinished_run_is_resumed_only_by_its_own_settings(tmp_path, capsys):
    """Another model or data into a folder with a pending backup is refused before anything is written
    (it restored the wrong backup: keras' "5 objects could not be loaded", and overwrote run.json)."""
    import keras

    from kerasvk.training import train

    class DieAfterEpoch1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise _Died()

    run = tmp_path / "run"
    kw = dict(epochs=2, batch_size=16, verbose=0, model_kwargs={"dense_units": 4})
    with pytest.raises(_Died):
        train("simple_cnn", "patterns:classes=5,count=40", out=run, callbacks=[DieAfterEpoch1()], **kw)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    argv = ["train", "simple_cnn", "--data", "patterns:classes=5,count=40", "--epochs", "2", "--batch-size", "16",
            "--set", "dense_units=8", "--out", str(run), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "holds an unfinished run (backup/ after epoch 1) made with other settings (model_kwargs:" in err
    assert "Rerun its own command to resume it" in err and "\n" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing written
    # a run started by an older kerasvk (its run.json lacks keys this version records): said so, not "other settings"
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k not in ("input_dtype", "precision")}))
    assert main([a.replace("dense_units=8", "dense_units=4") for a in argv]) == 2  # its own command
    err = capsys.readouterr().err.strip()
    assert "started by an older kerasvk: its run.json lacks input_dtype, precision" in err and "\n" not in err, err
    (run / "run.json").write_bytes(before[run / "run.json"])
    report = train("simple_cnn", "patterns:classes=5,count=40", out=run, **{**kw, "epochs": 3})  # more epochs: fine
    assert _attempts(run) == [0, 1] and report["epochs_run"] == 3 and "resumed_after_epoch" not in report


# ------------------------------------------------------------------- the other trainers, in-process
IN_PROCESS = {  # (model, data, options): the smallest runs that still have each trainer's state
    # sampling noise from the model's SeedGenerator, the sample-grid callback's own fixed noise
    "vae": ("vae", "digits", dict(image_size=(16, 16), model_kwargs={"filters": [4, 8], "dense_units": 16,
                                                                    "latent_dim": 2})),
    # text windows of one seeded stream, dropout (a SeedGenerator), AdamW
    "gpt": ("gpt", "TEXT", dict(seq_len=16, model_kwargs={"num_layers": 1, "dim": 16, "num_heads": 2, "dropout": 0.1})),
    # seeded audio crops, mu-law targets
    "wavenet": ("wavenet", "audio", dict(seq_len=64, batch_size=4, model_kwargs={
        "quantization_channels": 16, "residual_channels": 8, "skip_channels": 8, "max_dilation": 4, "num_stacks": 1})),
    # a classifier augmenting inside its train step (--augment-on device): the layers' SeedGenerators
    "augment_on_device": ("simple_cnn", "patterns:classes=5,count=40", dict(
        augment="standard", augment_on="device", model_kwargs={"dense_units": 4})),
    # quantised images
    "pixelcnn": ("pixelcnn", "digits", dict(model_kwargs={"input_shape": (8, 8, 1), "levels": 4, "filters": 8,
                                                          "num_blocks": 1, "first_kernel_size": 3})),
}


class _Died(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IN_PROCESS))
def test_other_trainers_resume_bit_exact(name, tmp_path, monkeypatch):
    """A VAE / autoregressive run that dies mid-epoch 2 of 2, rerun, ends with an uninterrupted run's weights.

    The report (held-out evaluation, samples) and the figures are stubbed out: they come after model.keras,
    and what is compared here is the training state (weights, optimizer, RNG, data position) and the record.
    """
    import keras

    from kerasvk import plots
    from kerasvk.training import tasks, train

    model, data, options = IN_PROCESS[name]
    if data == "TEXT":
        from kerasvk.data.text import pydoc_corpus

        (tmp_path / "doc.txt").write_text(pydoc_corpus()[:6000])
        data = f"file:{tmp_path / 'doc.txt'}"
    monkeypatch.setattr(tasks.GenerativeTask, "report", lambda self, *a: {})
    monkeypatch.setattr(tasks.AutoregressiveTask, "report", lambda self, *a: {})
    monkeypatch.setattr(plots, "history_curves", lambda *a, **k: None)

    class DieAfter(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == 3:  # the first step of epoch 2
                raise _Died()

    kw = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 16, "verbose": 0, **options}
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    with pytest.raises(_Died):
        train(model, data, out=killed, callbacks=[DieAfter()], **kw)
    assert json.loads((killed / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert not (killed / "model.keras").exists()
    report = train(model, data, out=killed, **kw)
    assert _attempts(killed) == [0, 1] and report["epochs_run"] == 2
    train(model, data, out=whole, **kw)
    _assert_same_weights(killed / "model.keras", whole / "model.keras")
    assert json.loads((killed / "history.json").read_text()) == json.loads((whole / "history.json").read_text())
    assert (killed / "training_log.csv").read_text() == (whole / "training_log.csv").read_text()


def test_early_stopping_resumes_its_patience_and_best_weights(tmp_path, monkeypatch):
    """``--early-stopping 2`` with val_loss 1.618, 1.600 (best), 1.604, 1.608: an uninterrupted run stops after
    epoch 4 with epoch 2's weights. Killed in epoch 4 (patience 1 of 2 used), the resumed run must stop there
    too, with epoch 2's weights from the backup; killed again after it stopped but before model.keras, the next
    rerun trains nothing. (Without the state in the backup the resumed run counted patience from zero and
    trained on to epoch 8.)"""
    import keras

    from kerasvk import plots
    from kerasvk.training import train

    monkeypatch.setattr(plots, "history_curves", lambda *a, **k: None)

    class DieAtStep(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == 10:  # 3 steps per epoch: the first step of epoch 4
                raise _Died()

    class DieAtTrainEnd(keras.callbacks.Callback):
        def on_train_end(self, logs=None):  # after the last backup (stopped), before model.keras
            raise _Died()

    kw = dict(epochs=8, batch_size=16, verbose=0, lr=0.03, optimizer="sgd", early_stopping=2,
              model_kwargs={"dense_units": 8, "filters": [4, 8]})
    data, killed, whole = "patterns:classes=5,count=60", tmp_path / "killed", tmp_path / "whole"
    train("simple_cnn", data, out=whole, **kw)
    assert json.loads((whole / "metrics.json").read_text())["epochs_run"] == 4  # stopped early: the premise
    with pytest.raises(_Died):
        train("simple_cnn", data, out=killed, callbacks=[DieAtStep()], **kw)
    state = json.loads((killed / "backup" / "training_metadata.json").read_text())
    assert state["epoch"] == 3 and state["callbacks"]["early_stopping"]["wait"] == 1
    assert state["callbacks"]["early_stopping"]["best_epoch"] == 1  # epoch 2 (0-based), its weights in the backup
    with pytest.raises(_Died):
        train("simple_cnn", data, out=killed, callbacks=[DieAtTrainEnd()], **kw)
    assert json.loads((killed / "backup" / "training_metadata.json").read_text())["stopped"] is True
    assert not (killed / "model.keras").exists()
    report = train("simple_cnn", data, out=killed, **kw)  # nothing left to train: restores the best weights
    assert report["epochs_run"] == 4 and _attempts(killed) == [0, 3, 4]
    _assert_same_weights(killed / "model.keras", whole / "model.keras")
    _assert_same_weights(killed / "checkpoints" / "best.keras", whole / "checkpoints" / "best.keras")
    assert json.loads((killed / "history.json").read_text()) == json.loads((whole / "history.json").read_text())
    assert _timeless(report) == _timeless(json.loads((whole / "metrics.json").read_text()))


# --------------------------------------------------------------------------------- kill during a save
SAVE_MODEL = textwrap.dedent("""
    import os, signal, sys
    from kerasvk import io

    path, new = sys.argv[1], open(sys.argv[2], "rb").read()
    class Model:  # writes a real .keras archive (made by keras in the parent) the way model.save streams it
        def save(self, tmp):
            with open(tmp, "wb") as f:
                f.write(new[: len(new) // 2])  # half of the new archive reaches the disk
                f.flush(); os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
    io.save_model(Model(), path)
""")

WRITE_JSON = textwrap.dedent("""
    import os, pathlib, signal, sys
    from kerasvk import io

    path = sys.argv[1]
    io.write_json({"epoch": 1, "loss": [0.5]}, path)  # the previous, complete file
    def write_text(self, text, encoding=None, errors=None, newline=None):
        with open(self, "w", encoding=encoding) as f:
            f.write(text[: len(text) // 2])  # half of the new JSON reaches the disk
            f.flush(); os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    pathlib.Path.write_text = write_text
    io.write_json({"epoch": 2, "loss": [0.5, 0.25], "padding": "x" * 10000}, path)
""")


EXPORT_DIR = textwrap.dedent("""
    import os, signal, sys
    from kerasvk import io

    base = sys.argv[1]
    with io.atomic_dir(os.path.join(base, "model", "1")) as tmp:  # the previous, complete version
        open(os.path.join(tmp, "saved_model.pb"), "wb").write(b"v1")
    with io.atomic_dir(os.path.join(base, "model", "2")) as tmp:  # killed halfway through version 2
        open(os.path.join(tmp, "saved_model.pb"), "wb").write(b"v2")
        os.makedirs(os.path.join(tmp, "variables"))
        os.kill(os.getpid(), signal.SIGKILL)
""")


def _killed(script, *args):
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=_env())
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return proc


def test_kill_during_model_save_keeps_the_previous_file(tmp_path):
    """``io.save_model`` killed halfway through the new archive: the previous model.keras still loads.

    The killed process imports no TensorFlow (fast): its model object streams the bytes of a real
    ``.keras`` archive that keras wrote here, and is SIGKILLed after half of them.
    """
    import keras

    from kerasvk import io
    from kerasvk.registry import load_model

    path = tmp_path / "run" / "model.keras"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.get_layer("d").set_weights([np.ones((3, 2), "float32"), np.ones(2, "float32")])
    io.save_model(model, path)  # the previous, complete file: every weight 1
    model.get_layer("d").set_weights([np.full((3, 2), 2, "float32"), np.full(2, 2, "float32")])
    model.save(tmp_path / "new.keras")  # what the killed save was writing
    _killed(SAVE_MODEL, path, str(tmp_path / "new.keras"))
    (partial,) = [p for p in path.parent.iterdir() if p != path]
    assert partial.name.startswith(".tmp-model-") and partial.stat().st_size < (tmp_path / "new.keras").stat().st_size
    with pytest.raises(ValueError, match="Cannot load"):
        load_model(partial)  # it really is a half archive: what a non-atomic save would have left in place
    loaded = load_model(path)  # the previous file, intact
    np.testing.assert_array_equal(loaded.get_layer("d").get_weights()[0], np.ones((3, 2), "float32"))
    assert io.remove_stale_temporaries(path.parent) == [partial] and list(path.parent.iterdir()) == [path]


def test_kill_during_json_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "history.json"
    _killed(WRITE_JSON, path)
    assert json.loads(path.read_text()) == {"epoch": 1, "loss": [0.5]}
    (partial,) = [p for p in tmp_path.iterdir() if p != path]
    assert partial.name.startswith(".tmp-history-")
    with pytest.raises(json.JSONDecodeError):
        json.loads(partial.read_text())  # half a JSON: what a non-atomic write would have left in place


def test_kill_during_export_leaves_no_half_version(tmp_path):
    """An export (``io.atomic_dir``) killed mid-way: TF Serving sees version 1 only, never a half version 2."""
    _killed(EXPORT_DIR, tmp_path)
    served, hidden = [], []
    for p in (tmp_path / "model").iterdir():
        (hidden if p.name.startswith(".") else served).append(p.name)
    assert served == ["1"] and len(hidden) == 1 and hidden[0].startswith(".tmp-2-")  # hidden: never served
    assert (tmp_path / "model" / "1" / "saved_model.pb").read_bytes() == b"v1"
    from kerasvk import io

    io.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["1"]


def test_resume_removes_stale_temporaries_and_never_backs_up_a_diverged_epoch(tmp_path, capsys):
    """A rerun cleans what killed writes left; divergence names epoch/step and the last finite checkpoint."""
    run = tmp_path / "div"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".tmp-history-abc.json").write_text("{")
    (run / "checkpoints" / ".tmp-best-abc.keras").write_bytes(b"PK")
    import keras

    from kerasvk.training import train
    from kerasvk.training.trainer import TrainingDiverged

    blow_up = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 1e30 if epoch == 1 else lr)  # epoch 2 diverges
    kw = dict(epochs=2, batch_size=16, verbose=0, model_kwargs={"dense_units": 8}, optimizer="sgd", lr=0.01)
    with pytest.raises(TrainingDiverged) as err:
        train("simple_cnn", "patterns:classes=5,count=60", out=run, callbacks=[blow_up], **kw)
    msg = str(err.value)
    assert "Training diverged at epoch 2, step 2: loss became nan" in msg
    assert f"the last finite checkpoint is kept: {run / 'checkpoints' / 'best.keras'} (epoch 1)" in msg
    assert "lower learning rate" in msg and "\n" not in msg
    assert not (run / "model.keras").exists() and not (run / "backup").exists()
    assert not list(run.glob(".tmp-*")) and not list((run / "checkpoints").glob(".tmp-*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["diverged"] and metrics["last_finite_epoch"] == 1
    # no metrics computed on the NaN model: the report says why there is none, nothing else
    assert set(metrics) == {"diverged", "reason", "last_finite_checkpoint", "last_finite_epoch", "train_seconds"}
    from kerasvk.registry import load_model

    best = load_model(run / "checkpoints" / "best.keras")
    assert all(np.isfinite(w).all() for w in best.get_weights())
    assert main(["evaluate", str(run)]) == 2  # nothing to evaluate, and it says why
    err = capsys.readouterr().err.strip()
    assert "has no model.keras: its training diverged (at epoch 2, step 2: loss became nan)" in err
    assert f"The last finite checkpoint is {run / 'checkpoints' / 'best.keras'} (epoch 1)" in err

    # diverged in its second step (the issue's `--lr 1e30 --optimizer sgd`): no checkpoint to keep, and it says so
    first = tmp_path / "first"
    with pytest.raises(TrainingDiverged) as err:
        train("simple_cnn", "patterns:classes=5,count=60", out=first, **{**kw, "lr": 1e30})
    assert "diverged at epoch 1, step 2: loss became nan" in str(err.value) and "no epoch finished with finite losses" in str(err.value)
    assert "lower learning rate (it was 1e+30)" in str(err.value)
    assert not (first / "model.keras").exists() and not (first / "checkpoints" / "best.keras").exists()
    assert json.loads((first / "metrics.json").read_text())["last_finite_checkpoint"] is None
