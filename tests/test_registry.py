import subprocess
import sys

import pytest

import kerasvk
from kerasvk.registry import TASKS, get_spec


def test_import_is_light():
    code = "import sys, kerasvk; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_list_models_and_tasks():
    names = kerasvk.list_models()
    assert names == sorted(names)
    for required in ("lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "simple_cnn"):
        assert required in names
    cls = kerasvk.list_models("classification")
    assert set(cls) <= set(names) and "lenet5" in cls
    for n in names:
        assert get_spec(n).task in TASKS
    with pytest.raises(ValueError, match="Allowed tasks"):
        kerasvk.list_models("segmentation")


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"Unknown model name 'vgg61'.*Did you mean: .*vgg16"):
        kerasvk.build("vgg61")


def test_unknown_builder_argument():
    with pytest.raises(ValueError, match="does not take argument"):
        kerasvk.build("lenet5", widht=3)


def test_model_info():
    info = kerasvk.model_info("lenet5")
    assert info["task"] == "classification"
    assert info["family"] == "lenet"
    assert info["default_input_shape"] == (32, 32, 1)
    assert info["parameters"] == 61_706


def test_register_rejects_unknown_task():
    with pytest.raises(ValueError, match="Allowed tasks"):
        kerasvk.register("x", task="nope", family="x")


def test_builder_name_keyword_passes_through():
    assert kerasvk.build("lenet5", name="my_lenet").name == "my_lenet"


def test_load_model_in_fresh_process_finds_custom_classes(tmp_path):
    model = kerasvk.build("vae", **get_spec("vae").test_kwargs)
    path = tmp_path / "vae.keras"
    model.save(path)
    # Importing every model module draws no random numbers (a module-level keras initializer does: it
    # takes its fixed seed from Python's generator), so after set_random_seed the first build in a process
    # starts from the same weights as every later one.
    code = (
        "import sys, random, numpy as np, keras; keras.utils.set_random_seed(0); "
        "state = lambda: (random.getstate(), np.random.get_state()[1].tobytes()); before = state(); "
        "import kerasvk, kerasvk.registry as r; r._load_all(); print('rng-untouched', state() == before); "
        "m = kerasvk.load_model(sys.argv[1]); print(type(m).__name__, m.count_params())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rng-untouched True" in out.stdout, out.stdout
    assert out.stdout.split()[-2:] == [type(model).__name__, str(model.count_params())]
    with pytest.raises(FileNotFoundError, match="No model file"):
        kerasvk.load_model(tmp_path / "missing.keras")
    (tmp_path / "bad.keras").write_bytes(b"junk")
    with pytest.raises(ValueError, match="Cannot load"):
        kerasvk.load_model(tmp_path / "bad.keras")


def test_subclass_model_registers_with_its_base_arguments():
    """``variant(MaskRCNN, ...)`` lists FasterRCNN's arguments too (merged through ``**kwargs``), with
    the subclass's own defaults, and rejects a keyword neither class takes."""
    import inspect

    from kerasvk.registry import get_spec

    base = inspect.signature(get_spec("faster_rcnn").builder).parameters
    sub = inspect.signature(get_spec("mask_rcnn").builder).parameters
    assert set(base) < set(sub) and {"mask_roi_size", "mask_filters", "mask_convs", "mask_threshold"} <= set(sub)
    assert sub["max_detections"].default == 50 != base["max_detections"].default
    assert sub["name"].default == "mask_rcnn" and list(sub)[-1] == "name"
    assert not any(p.kind is p.VAR_KEYWORD for p in sub.values())
    with pytest.raises(TypeError, match="nosuch"):
        get_spec("mask_rcnn").builder(nosuch=1)
