"""Training on several devices or machines: ``--strategy default|mirrored|multiworker|tpu``.

``train(..., strategy=...)`` takes one of :data:`STRATEGIES` or a ``tf.distribute.Strategy`` (used as is).

=============== ==============================================================================================
``default``     no strategy: one device (what keras picks)
``mirrored``    ``tf.distribute.MirroredStrategy``: every GPU of this machine (without GPUs its logical CPU devices,
                one unless ``tf.config.set_logical_device_configuration`` made more);
                on the JAX backend ``keras.distribution.DataParallel()`` over every JAX device
``multiworker`` ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines named in ``TF_CONFIG`` (each
                machine runs the same command with its own ``task.index``); checked before anything starts
``tpu``         ``tf.distribute.TPUStrategy`` on the attached TPU (``TPU_NAME`` or a local TPU VM); a clear
                error where there is none
=============== ==============================================================================================

The rules every strategy follows (README, "Training on several GPUs or machines"):

* **Batch.** ``batch_size`` is the *global* batch (keras' convention): the data pipeline batches it and the
  strategy splits each batch evenly over the replicas, so it must be a multiple of the replica count
  (``ValueError`` otherwise, naming the nearest valid sizes). One device or eight, the same command computes
  the same updates (the distribution tests check the weights). ``batch_scaling="per-replica"``
  (``--batch-scaling per-replica``) instead reads ``batch_size`` as the batch of *each* replica: the global
  batch is ``batch_size × replicas``.
* **Learning rate.** It follows the global batch (linear scaling rule, Goyal et al. 2017, "Accurate, large
  minibatch SGD"): with ``batch_scaling="global"`` the global batch does not change with the replica count,
  so neither does the rate; with ``"per-replica"`` the global batch grows ``replicas``-fold and so does
  every learning rate (``lr``, the schedule's peak, a GAN's two rates). ``run.json`` records the rate used.
* **Data.** Every pipeline gets ``AutoShardPolicy.DATA`` set explicitly: kerasvk's data are in memory or
  generated (no files to shard by), so each worker builds the same dataset and keeps its replicas' slices
  of every global batch — the batches a one-process run would see, split.
* **Files.** Only the chief (``task.type == "chief"``, else worker 0) writes the run folder (run.json,
  checkpoints, backup, history, plots, model.keras, metrics.json). The other workers run the same steps —
  saving reads variables that all workers must read together — into a temporary folder that is removed
  when ``train`` returns or fails. A killed multi-worker run resumes when ``--out`` is on storage every worker
  sees at the same path (TensorFlow's model for ``BackupAndRestore``): the workers first check, through one
  all-gather (:func:`gather_from_workers`), that they all read the same backup there, and each non-chief
  worker copies it into its own folder (``kerasvk.training.trainer.resume_from_chief``). Workers that see
  different backups (no shared storage) all stop with one error naming the fix, before anything is trained.
  On the JAX backend a multi-process run still starts over (no such check there).
* **Losses.** A model's ``compute_loss``/``train_step`` returns the per-replica mean loss divided by the
  replica count (:func:`kerasvk.layers.replicas.scale_loss`, keras' own convention): gradients are summed
  over replicas, so the update is that of the global batch's mean loss.

The upstream gap (keras-team/keras#20585, tensorflow/tensorflow#72388): Keras 3's ``model.fit`` fails under
``MultiWorkerMirroredStrategy`` with more than one worker, ``ValueError: Attempt to convert a value
(PerReplica:{...}) ... to a Tensor``. Two places in ``keras/src/backend/tensorflow/trainer.py`` handle the
multi-worker case wrongly: ``_maybe_symbolic_build`` reduces the first *distributed* batch (a structure of
``PerReplica``) with ``strategy.reduce(...)``, which for ``CollectiveAllReduceStrategy`` tries to convert the
whole structure to one tensor (the error above); and once past it, ``reduce_per_replica`` reduces every
step output with ``strategy.reduce("MEAN", v, axis=0)`` in multi-worker mode, which also reduces *along*
axis 0 of each value, so a scalar loss fails ("Invalid reduction dimension 0 for input with 0
dimensions"). :func:`prepare_fit` (applied by ``train``) gives the model, on that instance only, a
symbolic build from the dataset's ``element_spec`` (shapes are all it needs; this also keeps keras from
opening an extra iterator that shifts a seeded shuffle under *every* strategy) and, multi-worker,
train/test functions that run the step through ``strategy.run`` and reduce each output across replicas
with ``strategy.reduce(MEAN, v, axis=None)``. Everything else is keras' own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
BATCH_SCALING = ("global", "per-replica")
TF_CONFIG_JOBS = ("chief", "worker")
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


# ------------------------------------------------------------------------------------ checks (no TensorFlow)
def parse_tf_config(text=None) -> dict:
    """The ``TF_CONFIG`` environment variable, validated: ``{"cluster": {job: [host:port, ...]}, "task": ...}``.

    ``ValueError`` naming what is expected for a missing, non-JSON or malformed value (unknown job names,
    addresses that are not ``host:port``, a task index outside its job's list, ...), so a bad cluster
    description fails here and not deep inside TensorFlow's gRPC set-up.
    """
    if text is None:
        text = os.environ.get("TF_CONFIG")
    what = ("TF_CONFIG must be a JSON object naming the cluster and this machine's place in it, the same "
            f"cluster on every machine and its own task on each, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'")
    if text is None or not str(text).strip():
        raise ValueError(f"--strategy multiworker needs the TF_CONFIG environment variable, which is not set (or empty). {what}.")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}). {what}.") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not isinstance(config.get("task"), dict):
        raise ValueError(f"TF_CONFIG needs a 'cluster' object and a 'task' object. Received: {text!r}. {what}.")
    cluster, task = config["cluster"], config["task"]
    unknown = sorted(set(cluster) - set(TF_CONFIG_JOBS))
    if unknown:
        raise ValueError(f"TF_CONFIG cluster jobs must be among {', '.join(TF_CONFIG_JOBS)} (multiworker has no "
                         f"parameter servers or evaluators). Received: {unknown}. {what}.")
    if not cluster.get("worker") and not cluster.get("chief"):
        raise ValueError(f"TF_CONFIG cluster lists no machines: give 'worker' (and optionally one 'chief') as lists "
                         f"of host:port. {what}.")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f"TF_CONFIG cluster.{job} must be a non-empty list of 'host:port' strings. "
                             f"Received: {addresses!r}. {what}.")
        for address in addresses:
            host, _, port = str(address).rpartition(":") if isinstance(address, str) else ("", "", "")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"TF_CONFIG cluster.{job} has {address!r}, not a 'host:port' address (port 1-65535). {what}.")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG may name one chief. Received: {cluster['chief']}. {what}.")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise ValueError(f"TF_CONFIG task.type must be one of the cluster's jobs ({', '.join(cluster)}). "
                         f"Received: {kind!r}. {what}.")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(f"TF_CONFIG task.index must be an integer in [0, {len(cluster[kind])}) (this machine's place "
                         f"in cluster.{kind}). Received: {index!r}. {what}.")
    return config


def is_chief_config(config) -> bool:
    """The chief writes the run folder: ``task.type == "chief"``, or worker 0 of a cluster without one."""
    kind, index = config["task"]["type"], config["task"]["index"]
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in config["cluster"])


def is_chief_process(strategy) -> bool:
    """Whether this process writes files for ``--strategy`` (a recipe's own figures and reports after
    ``train``): always, except a non-chief process of a ``multiworker`` cluster (``TF_CONFIG``)."""
    return strategy != "multiworker" or is_chief_config(parse_tf_config())


def check_strategy(strategy, batch_scaling="global") -> None:
    """Cheap checks before anything is loaded, built or written (``TF_CONFIG`` for ``multiworker``)."""
    if batch_scaling not in BATCH_SCALING:
        raise ValueError(f"Unknown batch_scaling {batch_scaling!r}. Allowed: {', '.join(BATCH_SCALING)}.")
    if _is_strategy_object(strategy):
        return
    if strategy not in (None, *STRATEGIES):
        raise ValueError(f"Unknown strategy {strategy!r}. Allowed: {', '.join(STRATEGIES)} or a tf.distribute.Strategy.")
    if strategy == "multiworker":
        parse_tf_config()


def _is_strategy_object(strategy) -> bool:
    return not isinstance(strategy, str) and hasattr(strategy, "scope") and (
        hasattr(strategy, "num_replicas_in_sync") or hasattr(strategy, "device_mesh"))


def add_strategy_arguments(parser) -> None:
    """``--strategy`` and ``--batch-scaling`` on an argparse parser (``kerasvk train`` and every recipe)."""
    parser.add_argument("--strategy", choices=STRATEGIES, default=None,
                        help="default: one device | mirrored: this machine's GPUs | multiworker: the machines in "
                             "TF_CONFIG (run the same command on each) | tpu: the attached TPU")
    parser.add_argument("--batch-scaling", choices=BATCH_SCALING, default="global",
                        help="global: --batch-size is the global batch, split over the replicas (default; same "
                             "numbers on any number of devices) | per-replica: each replica's batch, learning "
                             "rate x replicas")


# ------------------------------------------------------------------------------------ making the strategy
def resolve_strategy(strategy):
    """None/"default" → None; a name → its strategy (see the module docstring); a Strategy object as is.

    On the JAX backend ``mirrored`` is ``keras.distribution.DataParallel`` over every device and
    ``multiworker`` first joins the processes of ``TF_CONFIG`` (``keras.distribution.initialize``, the
    first address is the coordinator). ``tpu`` and a ``tf.distribute`` object need TensorFlow.
    """
    check_strategy(strategy)
    if strategy in (None, "default"):
        return None
    if _is_strategy_object(strategy):
        return strategy
    import keras

    if keras.backend.backend() == "jax":
        return _jax_distribution(strategy)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"--strategy {strategy} needs the tensorflow or jax backend. Received: KERAS_BACKEND={keras.backend.backend()}")
    import tensorflow as tf

    if strategy == "mirrored":  # every GPU; without one, every logical CPU device (one unless configured)
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy(None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")])
    if strategy == "multiworker":
        return _multi_worker_strategy(parse_tf_config())
    return _tpu_strategy()


_MULTI_WORKER = {}  # one per process: collective ops are set up once, a second strategy mismatches its keys


def _multi_worker_strategy(config):
    """The process's ``MultiWorkerMirroredStrategy`` for this cluster (made on first use, then reused)."""
    import tensorflow as tf

    key = json.dumps(config, sort_keys=True)
    if key not in _MULTI_WORKER:
        if _MULTI_WORKER:
            raise ValueError("This process already joined another TF_CONFIG cluster; a process can join one. "
                             "Start a new process for another cluster.")
        _MULTI_WORKER[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _MULTI_WORKER[key]


def _tpu_strategy():
    import tensorflow as tf

    name = os.environ.get("TPU_NAME") or ("local" if tf.config.list_physical_devices("TPU") else None)
    if name is None:
        raise ValueError("--strategy tpu needs a TPU, and this machine has none (no TPU device, TPU_NAME unset). "
                         "Allowed here: default, mirrored (GPUs of this machine) or multiworker (TF_CONFIG).")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise ValueError(f"--strategy tpu could not reach the TPU {name!r}: {str(e).splitlines()[0]}") from None
    return tf.distribute.TPUStrategy(resolver)


def _jax_distribution(strategy):
    import keras

    if strategy == "tpu":
        import jax

        if not any(d.platform == "tpu" for d in jax.devices()):
            raise ValueError("--strategy tpu needs a TPU, and JAX sees none here. Allowed: default, mirrored, multiworker.")
    if strategy == "multiworker":
        config = parse_tf_config()
        addresses = [*config["cluster"].get("chief", []), *config["cluster"].get("worker", [])]
        me = (0 if config["task"]["type"] == "chief" else len(config["cluster"].get("chief", [])) + config["task"]["index"])
        keras.distribution.initialize(addresses[0], num_processes=len(addresses), process_id=me)
    return keras.distribution.DataParallel()


def num_replicas(dist) -> int:
    """Replicas a global batch is split over (1 without a strategy)."""
    if dist is None:
        return 1
    if hasattr(dist, "num_replicas_in_sync"):
        return int(dist.num_replicas_in_sync)
    return int(dist.device_mesh.devices.size)  # keras.distribution.DataParallel


def is_multi_worker(dist) -> bool:
    """A ``MultiWorkerMirroredStrategy`` spanning more than one process (where keras' fit needs the fix)."""
    if dist is None or not hasattr(dist, "extended"):
        return False
    import tensorflow as tf

    return isinstance(dist, tf.distribute.MultiWorkerMirroredStrategy) and bool(dist.extended._in_multi_worker_mode())


def is_chief(dist) -> bool:
    """Whether this process writes the run folder (always, except on a non-chief multi-worker process)."""
    if is_multi_worker(dist):
        resolver = dist.cluster_resolver
        kind, index = resolver.task_type, resolver.task_id
        jobs = resolver.cluster_spec().as_dict()
        return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in jobs)
    if dist is not None and not hasattr(dist, "extended"):  # keras.distribution on JAX
        import jax

        return jax.process_index() == 0
    return True


def is_multi_process(dist) -> bool:
    """Training spans several processes: a multi-worker ``MultiWorkerMirroredStrategy``, or a
    ``keras.distribution`` over several JAX processes."""
    if is_multi_worker(dist):
        return True
    if dist is not None and not hasattr(dist, "extended"):
        import jax

        return jax.process_count() > 1
    return False


def worker_names(dist) -> list[str]:
    """The workers of a multi-worker strategy in the order of :func:`gather_from_workers`: the chief (if the
    cluster has one), then ``worker 0``, ``worker 1``, ..."""
    jobs = dist.cluster_resolver.cluster_spec().as_dict()
    workers = [f"worker {i}" for i in range(len(jobs.get("worker", [])))]
    return ["chief", *workers] if jobs.get("chief") else workers


def gather_from_workers(dist, values) -> list[tuple[int, ...]]:
    """``values`` (integers) of every worker of a multi-worker strategy, one tuple per worker in
    :func:`worker_names` order, through one all-gather collective: every worker gets the same list.

    Every worker must call it at the same point (it waits for all of them), as with any collective.
    """
    import numpy as np
    import tensorflow as tf

    resolver = dist.cluster_resolver
    chiefs = len(resolver.cluster_spec().as_dict().get("chief", []))
    me = 0 if resolver.task_type == "chief" else chiefs + int(resolver.task_id)
    row = [me, *(int(v) for v in values)]
    per_replica = dist.experimental_distribute_values_from_function(lambda _: tf.constant([row], tf.int64))
    table = np.asarray(dist.gather(per_replica, axis=0))  # one row per replica, this worker's among them
    rows = {int(r[0]): tuple(int(v) for v in r[1:]) for r in table}
    return [rows[i] for i in sorted(rows)]


def batch_sizes(batch_size, replicas, batch_scaling="global") -> tuple[int, int]:
    """``(global batch, per-replica batch)`` of ``batch_size`` under ``batch_scaling`` (module docstring)."""
    if batch_scaling == "per-replica":
        return int(batch_size) * replicas, int(batch_size)
    if batch_size % replicas:
        lower, upper = (batch_size // replicas) * replicas, (batch_size // replicas + 1) * replicas
        near = " or ".join(str(b) for b in (lower, upper) if b > 0)
        raise ValueError(
            f"batch_size {batch_size} (the global batch) must be a multiple of the {replicas} replicas it is split "
            f"over: use {near}, or --batch-scaling per-replica to give each replica {batch_size}."
        )
    return int(batch_size), int(batch_size) // replicas


def lr_factor(replicas, batch_scaling="global") -> float:
    """How much the learning rates grow: linear in the global batch, so ``replicas`` with per-replica batches."""
    return float(replicas) if batch_scaling == "per-replica" else 1.0


def scale_model_learning_rates(model, factor) -> None:
    """Multiply the (constant) learning rate of each optimizer a model compiled itself (a GAN's two)."""
    if factor == 1.0:
        return
    seen = set()
    for name in ("optimizer", "d_optimizer", "g_optimizer"):
        opt = getattr(model, name, None)
        if opt is None or id(opt) in seen:
            continue
        seen.add(id(opt))
        lr = opt.learning_rate
        if callable(getattr(opt, "_learning_rate", None)) and not hasattr(opt._learning_rate, "assign"):
            raise ValueError(f"{model.name}'s {name} has a learning-rate schedule: give --lr to scale it per replica.")
        opt.learning_rate = float(lr) * factor


# ------------------------------------------------------------------------------------ data and files
def shard_by_data(dataset):
    """``dataset`` with ``AutoShardPolicy.DATA`` set explicitly (in-memory/generated data: no files to shard)."""
    if dataset is None or not hasattr(dataset, "with_options"):
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


@contextmanager
def writer_folder(out, dist):
    """``out`` on the chief; on any other worker a temporary folder, removed when the block ends."""
    if is_chief(dist):
        yield Path(out)
        return
    tmp = tempfile.mkdtemp(prefix="kerasvk-worker-")
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------ fit under a strategy
def prepare_fit(model, data_spec) -> None:
    """Make ``model.fit``/``evaluate`` under a strategy see the batches one device would, and work multi-worker.

    Call it after ``compile`` (which resets keras' train/test functions). It changes this model instance
    only. Two things, both in ``keras/src/backend/tensorflow/trainer.py``:

    * Under any strategy keras' ``fit`` first opens an iterator of the training data only to build the
      model from its first batch (``_maybe_symbolic_build``), then opens it again: a seeded
      ``shuffle(reshuffle_each_iteration=True)`` then gives the run its *second* order, not the order a
      one-device run trains on. Here the build uses ``data_spec`` (the dataset's ``element_spec``: shapes
      are all it needs) and leaves the data alone. Under ``MultiWorkerMirroredStrategy`` keras' version
      also fails outright: it reduces the distributed batch with ``strategy.reduce``, which for collective
      strategies converts the ``PerReplica`` structure to a tensor (keras-team/keras#20585).
    * Multi-worker only: keras reduces every step output with ``strategy.reduce("MEAN", v, axis=0)``,
      which also reduces along axis 0 of each value, so a scalar loss fails. The train/test functions here
      run the step through ``strategy.run`` and reduce each output with ``strategy.reduce(MEAN, v,
      axis=None)``, the mean over replicas.
    """
    import types

    import tensorflow as tf

    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None or not hasattr(strategy, "extended"):
        return

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        with strategy.scope():
            self._symbolic_build(data_batch=data_spec if data_batch is None else data_batch)

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)
    if not is_multi_worker(strategy):
        return

    def make_function(step_function):
        def reduce(value):
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

        @tf.autograph.experimental.do_not_convert
        def one_step_on_data(data):
            return tf.nest.map_structure(reduce, strategy.run(step_function, args=(data,)))

        if not model.run_eagerly:
            one_step_on_data = tf.function(one_step_on_data, reduce_retracing=True, jit_compile=model.jit_compile)

        def function(iterator):
            outputs = None
            for _, data in zip(range(model.steps_per_execution), iterator):
                outputs = one_step_on_data(data)
            if outputs is None:
                raise StopIteration  # keras' epoch iterator ends the epoch (or evaluation) here
            return outputs

        return function

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            self.train_function = make_function(self.train_step)
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is None or force:
            self.test_function = make_function(self.test_step)
        return self.test_function

    model.make_train_function = types.MethodType(make_train_function, model)
    model.make_test_function = types.MethodType(make_test_function, model)
    model.train_function = model.test_function = None


# ------------------------------------------------------------------------------------ recipes with their own fit
def strategy_scope(dist):
    """``dist.scope()`` (a ``tf.distribute.Strategy`` or a ``keras.distribution``), or no scope for ``None``."""
    return dist.scope() if dist is not None else nullcontext()


def array_spec(*arrays):
    """The ``element_spec`` a batched dataset of these arrays would have (for :func:`prepare_fit` when ``fit``
    takes NumPy arrays)."""
    import tensorflow as tf

    specs = tuple(tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in arrays)
    return specs[0] if len(specs) == 1 else specs


class RecipeParser(argparse.ArgumentParser):
    """A recipe's argument parser: a bad option or value is one line ``PROG: error: ...`` and exit code 2
    (argparse's own ``error`` prints the whole usage first), as ``kerasvk``'s commands do."""

    def error(self, message):
        recipe_error(self, message)


def recipe_error(parser, error):
    """A recipe's refused option or value: one line ``PROG: error: ...`` on stderr and exit code 2 (no usage,
    no traceback)."""
    print(f"{parser.prog}: error: {str(error).splitlines()[0]}", file=sys.stderr)
    raise SystemExit(2) from None


@dataclass
class RecipeStrategy:
    """``--strategy`` for a recipe that builds, compiles and fits its own models (see :func:`recipe_strategy`)."""

    name: str
    dist: object
    replicas: int
    batch_scaling: str

    @property
    def chief(self) -> bool:
        """Whether this process writes the recipe's files (always, except a non-chief multi-worker process)."""
        return is_chief(self.dist)

    @property
    def lr_factor(self) -> float:
        return lr_factor(self.replicas, self.batch_scaling)

    def batch(self, batch_size) -> int:
        """The global batch for ``batch_size`` (``ValueError`` where it does not split over the replicas)."""
        return batch_sizes(batch_size, self.replicas, self.batch_scaling)[0]

    def scope(self):
        """Build and compile models inside this block."""
        return strategy_scope(self.dist)

    def shard(self, dataset):
        """``dataset`` with ``AutoShardPolicy.DATA`` under a strategy (in-memory data), else as is."""
        return shard_by_data(dataset) if self.dist is not None else dataset

    def prepare(self, model, data=None):
        """:func:`prepare_fit` after ``compile`` (a no-op without a strategy); ``data``: the training dataset,
        its ``element_spec`` or :func:`array_spec` of the arrays ``fit`` gets."""
        if self.dist is not None:
            prepare_fit(model, getattr(data, "element_spec", data))
        return model


NO_STRATEGY = RecipeStrategy("default", None, 1, "global")  # a recipe's functions called without --strategy


def check_recipe_strategy(parser, args, *, allowed=STRATEGIES, why="", scaling=BATCH_SCALING):
    """The cheap checks of :func:`recipe_strategy` (nothing made; ``TF_CONFIG`` read for ``multiworker``),
    for a recipe that hands ``args.strategy`` to ``train``: one line and exit code 2 when refused.
    Returns the strategy's name."""
    name = args.strategy or "default"
    try:
        allowed = ("default", *(s for s in allowed if s != "default"))
        if name not in allowed:
            raise ValueError(f"--strategy {name} is not supported by this recipe{' (' + why + ')' if why else ''}. "
                             f"Allowed: {', '.join(allowed)}.")
        if args.batch_scaling not in scaling:
            raise ValueError(f"--batch-scaling {args.batch_scaling} is not supported by this recipe (its learning "
                             f"rates are fixed). Allowed: {', '.join(scaling)}.")
        check_strategy(name, args.batch_scaling)
    except ValueError as e:
        recipe_error(parser, e)
    return name


def recipe_strategy(parser, args, *, allowed=STRATEGIES, batches=(), why="", scaling=BATCH_SCALING):
    """Resolve ``args.strategy``/``args.batch_scaling`` (from :func:`add_strategy_arguments`) for a recipe.

    ``allowed``: the strategies this recipe supports (``default`` always is; ``why`` says why others are
    not); ``scaling``: the ``--batch-scaling`` values it supports; ``batches``: the recipe's batch sizes,
    checked against the replica count before anything is loaded. A refused choice or a bad batch prints one
    line (``PROG: error: ...``) and exits with code 2. Build and compile in ``.scope()``, call
    ``.prepare(model, train_data)`` after each ``compile``, write files only ``if .chief``.
    """
    name = check_recipe_strategy(parser, args, allowed=allowed, why=why, scaling=scaling)
    try:
        dist = resolve_strategy(name)
        rs = RecipeStrategy(name, dist, num_replicas(dist), args.batch_scaling)
        for b in batches:
            rs.batch(b)
    except ValueError as e:
        recipe_error(parser, e)
    return rs
