"""One process of the distribution tests (tests/test_distribution.py); not a test module itself.

``python tests/distributed_worker.py STRATEGY RESULTS CASE[,CASE...] [REFERENCE_CASE]`` trains each case
with ``kerasvk.training.train`` into ``RESULTS/run-CASE-STRATEGY-TASK`` and saves every weight of each
trained model to ``RESULTS/CASE-STRATEGY-TASK.npz`` (``model.weights`` order; saved by every process,
chief or not). ``TASK`` is this process's ``TF_CONFIG`` task index (0 without one). ``STRATEGY``:

* ``multiworker``: ``TF_CONFIG`` comes from the environment; afterwards the process also trains
  ``REFERENCE_CASE`` (if given) without a strategy, as ``CASE-default-TASK`` (two workers: each trains one
  reference while the other does too, instead of a third process).
* ``multiworker-shared``: the same, but every worker is given the same ``--out``,
  ``RESULTS/run-CASE-multiworker`` (a run folder on storage all workers share: a resumable multi-worker run).
* ``mirrored2``: a ``MirroredStrategy`` over two logical CPU devices (configured here, before TensorFlow
  initialises its devices); each case but ``classifier_per_replica`` is also trained without a strategy in
  the same process, and
  ``kerasvk train --strategy mirrored --batch-size 5`` (two CPU replicas) is run through the CLI: its exit
  code and stderr go to ``RESULTS/cli_batch.json``.

Cases use SGD (for the GAN both networks): a loss not divided by the replica count would move the
weights twice as far, where Adam would hide it.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

CASES = {
    "classifier": dict(model="simple_cnn", epochs=2, batch_size=8, optimizer="sgd", lr=0.05,
                       model_kwargs={"filters": (4,), "dense_units": 8, "dropout": 0.0}),
    "gan": dict(model="dcgan", epochs=1, batch_size=8, optimizer="sgd", lr=0.05,
                model_kwargs={"latent_dim": 4, "g_filters": (8, 4), "d_filters": (4, 8), "seed": 3}),
    "vae": dict(model="vae", epochs=1, batch_size=8, optimizer="sgd", lr=0.01, model_kwargs={"latent_dim": 2}),
}
# the classifier with --batch-scaling per-replica: 4 per replica, lr x replicas (on two replicas = "classifier")
CASES["classifier_per_replica"] = {**CASES["classifier"], "batch_size": 4, "lr": 0.025, "batch_scaling": "per-replica"}


def arrays(n=48, seed=0):
    """Tiny 8×8 grey images in [0, 1], two classes a small CNN tells apart (bright left / right half)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.uniform(0, 0.3, (n, 8, 8, 1)).astype("float32")
    x[y == 0, :, :4] += 0.6
    x[y == 1, :, 4:] += 0.6
    return x, y.astype("int64")


def run(case, strategy, label, results, task, shared=False):
    import keras

    from kerasvk.training import train

    weights_path = os.path.join(results, f"{case}-{label}-{task}.npz")

    class SaveWeights(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            np.savez(weights_path, *[np.asarray(w) for w in self.model.weights])

    keras.backend.clear_session()
    kw = dict(CASES[case])
    name = kw.pop("model")
    out = os.path.join(results, f"run-{case}-{label}" if shared else f"run-{case}-{label}-{task}")
    train(name, arrays(), out=out, seed=0, strategy=strategy,
          callbacks=[SaveWeights()], verbose=0, val_split=0.25, test_split=0.25, **kw)


def cli_batch_check(results):
    """``kerasvk train --strategy mirrored --batch-size 5`` on two CPU replicas: exit code and stderr."""
    import contextlib
    import io
    import json

    from kerasvk import cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = cli.main(["train", "simple_cnn", "--data", "patterns:classes=2,count=20", "--epochs", "1",
                             "--batch-size", "5", "--strategy", "mirrored", "--set", "dense_units=4", "--quiet",
                             "--out", os.path.join(results, "run-cli")])
        except SystemExit as e:
            code = e.code
    with open(os.path.join(results, "cli_batch.json"), "w") as f:
        json.dump({"code": code, "stderr": err.getvalue(), "wrote": os.path.exists(os.path.join(results, "run-cli"))}, f)


def main(argv):
    strategy, results, cases, *reference = argv
    import json

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    shared = strategy == "multiworker-shared"
    if strategy.startswith("multiworker"):  # joined before any TensorFlow op runs (collectives start with it)
        from kerasvk.training.strategy import resolve_strategy

        strategy = resolve_strategy("multiworker")
        assert resolve_strategy("multiworker") is strategy  # one per process: both cases train under it
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"] if "TF_CONFIG" in os.environ else 0
    if strategy == "mirrored2":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        for case in cases.split(","):
            run(case, strategy, "mirrored2", results, task)
            if case in ("classifier", "gan", "vae"):
                run(case, None, "default", results, task)
        cli_batch_check(results)
        return
    for case in cases.split(","):
        run(case, strategy, "multiworker", results, task, shared=shared)
    for case in reference:
        run(case, None, "default", results, task)


if __name__ == "__main__":
    main(sys.argv[1:])
