import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow 2.21's oneDNN Conv2DBackpropFilter corrupts the heap for a 1x1 stride-2 VALID convolution
# with <= 8 input and <= 16 output channels on AVX-512 CPUs (an AMD EPYC here; reproduced with the single
# raw op, see README "Known issues"): the resnet shortcut of the tiny test backbones (width 0.125, 8 -> 16)
# segfaulted YOLO's training tests. TF's own kernels do not, at the same speed on this suite; set before
# TensorFlow is first imported (subprocesses the tests start inherit it).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402  (every test uses it: imported once here, before the heap is frozen)
import pytest  # noqa: E402

# Importing TensorFlow and Keras leaves ~10^6 long-lived objects on the heap, and a full garbage
# collection walks them all: clear_session's gc.collect() below took ~0.4 s of CPU per test (3 min over
# the suite). Frozen after the import, they are skipped (0.04 s), and the tests' own garbage is still freed.
gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts from a cleared Keras session and a fixed seed.

    clear_session's full collection walks every live object. Some survive their test for good (the FuncGraphs
    of traced train steps stay reachable: ~5,000 objects per model trained, found with objgraph), so over a
    worker's ~300 tests the walk grew to ~0.85 s per test: 460 s of the suite's 1,100 s of CPU were test
    set-ups, measured. Frozen after the collection, what has survived until now is skipped by later ones, which walk
    only the newer objects; what the previous test left as garbage is still freed first.
    """
    keras.backend.clear_session()
    gc.freeze()
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Every test runs offline: any keras download (``keras.utils.get_file``, which keras.applications
    uses for weights and datasets) fails the test instead of reaching the network."""
    import keras.src.utils.file_utils as file_utils

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to download {args or kwargs}")

    monkeypatch.setattr(keras.utils, "get_file", refuse)
    monkeypatch.setattr(file_utils, "get_file", refuse)



# Scheduling over the two xdist workers. Each test is its own unit of work, handed to whichever worker
# is free (as ``--dist load``), except in the modules with module-scoped fixtures (a trained run, an
# export, a table of bad files): those go to one worker whole, so the fixture is made once, not once per
# worker. (``--dist loadgroup`` with ``xdist_group`` marks would do this, but does not group anything
# under pytest 9 with pytest-xdist 3.8.) Whole-module units start first (xdist's scope reordering);
# then the single tests in collection order, the longest modules first (``START_FIRST``), so neither
# worker is left with a long test at the end: the suite's wall time is the busier worker's.
KEEP_TOGETHER = {
    "test_bad_inputs.py",
    "test_detection_task.py",
    "test_faster_rcnn.py",
    "test_litert.py",
    "test_mask_rcnn.py",
    "test_serving_rest.py",
    "test_shapes_data.py",
    "test_ssd.py",
    "test_trainer.py",
    "test_training_runner.py",
}
START_FIRST = (
    "test_yolo.py",
    "test_resume.py",
    "test_recipes_generative.py",
    "test_models_common.py",
    "test_zoo.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModuleFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module = nodeid.split("::", 1)[0]
            return module if module.rsplit("/", 1)[-1] in KEEP_TOGETHER else nodeid

        def remove_node(self, node):
            """A crashed worker's test is reported as failed once, not handed to the next worker.

            ``LoadScopeScheduling`` puts the crashed test back in the queue with the rest of its unit: it
            crashed the replacement worker too, and the run then waited forever for the lost units (a
            native crash in one test hung the whole suite instead of failing it).
            """
            crashed = next((nodeid for unit in self.assigned_work.get(node, {}).values()
                            for nodeid, done in unit.items() if not done), None)
            if crashed is None:
                return super().remove_node(node)
            workload = self.assigned_work[node]
            for scope, unit in list(workload.items()):
                unit.pop(crashed, None)
                if not any(not done for done in unit.values()):
                    del workload[scope]  # nothing left to run in it: an empty unit would never report back
            super().remove_node(node)  # requeues what is left of the crashed worker's units
            return crashed

    return ModuleFixtureScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Reorder whole modules (a module's tests stay together, so its module fixtures are set up once)."""
    rank = {name: i for i, name in enumerate(START_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: pytest's order otherwise


@pytest.fixture
def _keep_op_determinism():
    """``--jit-compile`` switches TF's (process-wide) op determinism off: put it back as it was."""
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    yield
    if before:
        tf_config.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()
