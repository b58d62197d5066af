"""Distribution: ``--strategy mirrored|multiworker|tpu`` train the same weights as one device (issue 15).

The trainings run in subprocesses (``tests/distributed_worker.py``): logical CPU devices must be
configured before TensorFlow initialises its devices, and a multi-worker cluster is several processes.
Every case uses SGD, so a loss that is not divided by the replica count (keras sums the replicas'
gradients) moves the weights twice as far and fails the comparison; dropout is off (its masks are
per replica).
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT = 300  # seconds for a whole subprocess group (the CI machine's two cores are shared)
ATOL = 1e-5  # float32 sums in another order: observed differences are <= 4e-6


def _env(**extra):
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **extra}


def _run_group(commands, envs):
    """Start every command, wait for all (bounded), always kill what is left; return their outputs."""
    procs = []
    try:
        for cmd, env in zip(commands, envs):
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        deadline = time.monotonic() + TIMEOUT
        outputs = []
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
            except subprocess.TimeoutExpired:
                pytest.fail(f"a distributed training process ran past {TIMEOUT} s: {' '.join(map(str, p.args))}")
        failed = [f"{' '.join(map(str, p.args))} exited {p.returncode}:\n{out[-3000:]}"
                  for p, out in zip(procs, outputs) if p.returncode != 0]
        assert not failed, "\n\n".join(failed)
        return outputs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _weights(path):
    with np.load(path) as f:
        return [f[k] for k in f.files]


def _max_diff(a, b):
    assert len(a) == len(b), f"{len(a)} vs {len(b)} weights"
    assert all(x.shape == y.shape for x, y in zip(a, b))
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_mirrored_two_devices_train_the_weights_of_one(tmp_path):
    """MirroredStrategy over 2 logical CPUs = one device at the same global batch: a classifier and the VAE
    (own ``compute_loss``, ε drawn per replica from the global draw); per-replica batches with the linear
    learning-rate rule = the global run; a global batch the replicas cannot split: one CLI line, exit 2."""
    _run_group([[sys.executable, str(WORKER), "mirrored2", str(tmp_path), "classifier,vae,classifier_per_replica"]],
               [_env()])
    for case in ("classifier", "vae"):
        one, two = _weights(tmp_path / f"{case}-default-0.npz"), _weights(tmp_path / f"{case}-mirrored2-0.npz")
        assert _max_diff(one, two) <= ATOL, case
        assert _max_diff(one, _weights(tmp_path / f"{case}-default-0.npz")) == 0.0
    # --batch-scaling per-replica: batch 4 on each of 2 replicas at lr 0.025 x 2 = batch 8 at lr 0.05 on one
    assert _max_diff(_weights(tmp_path / "classifier-default-0.npz"),
                     _weights(tmp_path / "classifier_per_replica-mirrored2-0.npz")) <= ATOL
    run = json.loads((tmp_path / "run-classifier_per_replica-mirrored2-0" / "run.json").read_text())
    assert (run["replicas"], run["batch_size"], run["per_replica_batch_size"], run["lr"]) == (2, 8, 4, 0.05)
    cli = json.loads((tmp_path / "cli_batch.json").read_text())
    assert cli["code"] == 2 and not cli["wrote"]
    assert cli["stderr"].count("\n") == 1 and "Traceback" not in cli["stderr"]
    assert "batch_size 5 (the global batch) must be a multiple of the 2 replicas" in cli["stderr"]
    assert "use 4 or 6" in cli["stderr"]


def test_multiworker_fit_two_processes_match_one(tmp_path):
    """MultiWorkerMirroredStrategy, 2 worker processes on 127.0.0.1 (keras' fit fails there without
    ``kerasvk.training.strategy.prepare_fit``): a classifier and the GAN (own ``train_step``, two optimizers)
    end with the same weights on both workers, equal to a one-process run; only the chief writes its run."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    envs = [_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}), TMPDIR=str(scratch))
            for i in range(2)]
    # each worker also trains one one-process reference afterwards (no third process)
    commands = [[sys.executable, str(WORKER), "multiworker", str(tmp_path), "classifier,gan", ref]
                for ref in ("classifier", "gan")]
    _run_group(commands, envs)
    for i, case in enumerate(("classifier", "gan")):
        w0, w1 = _weights(tmp_path / f"{case}-multiworker-0.npz"), _weights(tmp_path / f"{case}-multiworker-1.npz")
        assert _max_diff(w0, w1) <= 1e-6, f"{case}: the workers diverged"
        assert _max_diff(w0, _weights(tmp_path / f"{case}-default-{i}.npz")) <= ATOL, f"{case}: differs from one process"
        chief = tmp_path / f"run-{case}-multiworker-0"
        assert {"run.json", "model.keras", "metrics.json", "history.json"} <= {p.name for p in chief.iterdir()}
        assert json.loads((chief / "run.json").read_text())["replicas"] == 2
        assert not (tmp_path / f"run-{case}-multiworker-1").exists(), "a non-chief worker wrote its --out"
    assert not list(scratch.iterdir()), "a worker left its temporary run folder behind"


def _run_killed_group(commands, envs, grace=15.0):
    """Start every command (each SIGKILLs itself after the same step); once one has ended, the others get
    ``grace`` seconds to end too (a peer left waiting in a collective is killed). Returns the exit codes."""
    procs = []
    try:
        for cmd, env in zip(commands, envs):
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + TIMEOUT
        while all(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                pytest.fail(f"no distributed training process ended within {TIMEOUT} s")
            time.sleep(0.2)
        end = time.monotonic() + grace
        while any(p.poll() is None for p in procs) and time.monotonic() < end:
            time.sleep(0.2)
        return [p.returncode for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _cluster_envs(scratch, **extra):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    scratch.mkdir()
    return [_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                 TMPDIR=str(scratch), **extra) for i in range(2)]


def test_multiworker_killed_run_resumes_from_the_chiefs_backup(tmp_path):
    """A 2-worker run with a shared --out, killed during epoch 2 (after the chief's backup of epoch 1), rerun
    with the same command: both workers restore the chief's backup and skip to the same batch, and the run
    ends with the weights of an uninterrupted one-process run (so of an uninterrupted 2-worker run too)."""
    from kerasvk.training.callbacks import KILL_ENV

    command = [sys.executable, str(WORKER), "multiworker-shared", str(tmp_path), "classifier"]
    # 24 training images, batch 8: 3 steps an epoch; both workers SIGKILL themselves after step 4
    codes = _run_killed_group([command, command], _cluster_envs(tmp_path / "tmp-killed", **{KILL_ENV: "4"}))
    assert codes[0] != 0, "the chief was not killed"
    run = tmp_path / "run-classifier-multiworker"
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    scratch = tmp_path / "tmp"
    _run_group([command, [*command, "classifier"]], _cluster_envs(scratch))  # worker 1 also trains the reference
    attempts = json.loads((run / "attempts.json").read_text())["attempts"]
    assert [a["resumed_after_epoch"] for a in attempts] == [0, 1], attempts
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 2
    assert not (run / "backup").exists(), "the finished run kept its backup"
    w0, w1 = _weights(tmp_path / "classifier-multiworker-0.npz"), _weights(tmp_path / "classifier-multiworker-1.npz")
    assert _max_diff(w0, w1) <= 1e-6, "the resumed workers diverged"
    assert _max_diff(w0, _weights(tmp_path / "classifier-default-1.npz")) <= ATOL, "differs from one process"
    assert not list(scratch.iterdir()), "a worker left its temporary run folder behind"


def test_multiworker_workers_that_see_different_backups_refuse_to_start(tmp_path, monkeypatch):
    """Where a worker cannot see the chief's backup (no shared --out) every worker gets the same rows from the
    all-gather, so every one raises the same error, naming the cause and the fix, before anything is written."""
    from kerasvk.training import strategy, trainer

    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 1, "weights": "epoch0001.weights.h5"}')
    chief = trainer.backup_fingerprint(run)
    assert chief[0] == 1 and chief[1] > 0 and trainer.backup_fingerprint(tmp_path / "none") == (0, 0)
    monkeypatch.setattr(strategy, "worker_names", lambda dist: ["worker 0", "worker 1"])
    monkeypatch.setattr(strategy, "is_chief", lambda dist: False)
    for other, seen in [((0, 0), "worker 1: none"), ((1, 7), "worker 1: another backup after epoch 1")]:
        monkeypatch.setattr(strategy, "gather_from_workers", lambda dist, values: [(0, *chief), (0, *other)])
        with pytest.raises(ValueError) as e:
            trainer.resume_from_chief(None, run, tmp_path / "worker", {})
        message = str(e.value)
        assert message.startswith(f"The workers see different backups at {run / 'backup'} (worker 0: the same "
                                  "backup after epoch 1; "), message
        assert seen in message and "--out must be a folder on a filesystem every worker sees at the same path" in message
        assert f"delete {run / 'backup'}" in message and not (tmp_path / "worker").exists()
    # a worker that refused (e.g. the chief's check_resumable): every other worker stops too
    monkeypatch.setattr(strategy, "gather_from_workers", lambda dist, values: [(1, 0, 0), (0, *chief)])
    with pytest.raises(ValueError, match="worker 0 refused to start this run .*nothing was trained on any worker"):
        trainer.resume_from_chief(None, run, tmp_path / "worker", {})


# ----------------------------------------------------------------------------------------- bad input
TF_CONFIGS = [
    (None, "needs the TF_CONFIG environment variable, which is not set"),
    ("", "needs the TF_CONFIG environment variable"),
    ("{cluster: 1", "TF_CONFIG is not valid JSON"),
    ('["worker"]', "needs a 'cluster' object and a 'task' object"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "jobs must be among chief, worker"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "lists no machines"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "not a 'host:port' address"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', r"task.index must be an integer in \[0, 2\)"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "task.type must be one of the cluster's jobs"),
]


@pytest.mark.parametrize("text, match", TF_CONFIGS)
def test_bad_tf_config_is_named_before_anything_starts(monkeypatch, text, match):
    import re

    from kerasvk.training.strategy import parse_tf_config

    if text is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError) as e:
        parse_tf_config()
    assert re.search(match, str(e.value)), str(e.value)
    assert '"task": {"type": "worker", "index": 0}' in str(e.value)  # what is expected, by example


@pytest.mark.parametrize("tf_config, match", [
    (None, "--strategy multiworker needs the TF_CONFIG environment variable"),
    ('{"cluster": {"worker": ["127.0.0.1:x"]}, "task": {"type": "worker", "index": 0}}', "not a 'host:port' address"),
])
def test_cli_multiworker_without_good_tf_config_one_line_exit_2(tmp_path, monkeypatch, capsys, tf_config, match):
    from kerasvk import cli

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    out = tmp_path / "run"
    code = cli.main(["train", "simple_cnn", "--data", "patterns:classes=2,count=20", "--epochs", "1", "--quiet",
                     "--strategy", "multiworker", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and match in err and "Traceback" not in err, err
    assert not out.exists()


def test_batch_and_learning_rate_rules():
    from kerasvk.training.strategy import BATCH_SCALING, batch_sizes, check_strategy, lr_factor

    assert batch_sizes(8, 2) == (8, 4) and batch_sizes(8, 1) == (8, 8)
    assert batch_sizes(5, 2, "per-replica") == (10, 5) and lr_factor(2, "per-replica") == 2.0 and lr_factor(2) == 1.0
    with pytest.raises(ValueError, match="batch_size 6 .* multiple of the 4 replicas it is split over: use 4 or 8"):
        batch_sizes(6, 4)
    with pytest.raises(ValueError, match="batch_size 3 .* multiple of the 4 replicas .*: use 4, or"):
        batch_sizes(3, 4)
    with pytest.raises(ValueError, match=f"Unknown batch_scaling 'local'. Allowed: {', '.join(BATCH_SCALING)}"):
        check_strategy("mirrored", "local")
    with pytest.raises(ValueError, match="Unknown strategy 'gpu'. Allowed: default, mirrored, multiworker, tpu"):
        check_strategy("gpu")


def test_tpu_strategy_without_a_tpu_says_so(monkeypatch):
    from kerasvk.training.strategy import resolve_strategy

    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError, match="--strategy tpu needs a TPU, and this machine has none"):
        resolve_strategy("tpu")
