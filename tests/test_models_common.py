"""Every registered model, built once at its registered tiny size (DESIGN convention 11): forward → finite →
(one model per family, but the detectors: one training step) → ``.keras`` round trip with ``safe_mode=True`` →
export as TF Serving will see it (issue 14): ``tf.saved_model.load`` → every signature runs on a real input
and on its warm-up request and matches the Keras model; the task's signatures and output names are the
documented ones (no ``output_N``); ``saved_model_cli show --all`` lists every signature; every folder and
file of the export is readable by other users.

Training all ~50 models would exceed the suite's 10-minute budget on a 2-core CPU, and the variants of a
family share their training code; the detectors are trained (a short fit whose every loss term must fall,
then .keras and export checks) by their own test files. The export path does not depend on training
(``tests/test_training_runner.py`` and ``test_cli.py`` export trained runs).
"""

import contextlib
import io
import os
import re
import stat

import pytest

import kerasvk
from kerasvk.export import check_export, export_model
from kerasvk.registry import get_spec
from tests.helpers import check_model, example_batch

CLASSIFIER_SIGNATURES = {"serving_default", "serving_uint8", "serving_bytes"}
CLASSIFIER_OUTPUTS = {"probabilities", "class_id", "score", "class_name", "top_k_scores", "top_k_ids", "top_k_classes"}
DETECTION_OUTPUTS = {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}
# the signatures of each family beside the classifiers' (issue 14: VAE encode/decode/sample/anomaly_score,
# GAN generate(noise)/sample(n, seed), autoregressive generate, detectors serving_default)
FAMILY_SIGNATURES = {
    "vae": {"serving_default", "encode", "decode", "sample", "anomaly_score"},
    "gan": {"serving_default", "generate", "sample"},
    "gpt": {"serving_default", "generate"},
    "pixelcnn": {"serving_default", "generate"},
    "wavenet": {"serving_default", "generate"},
    "yolo": {"serving_default"},
    "ssd": {"serving_default"},
    "faster_rcnn": {"serving_default"},
    "mask_rcnn": {"serving_default"},
}

_FIRST_OF_FAMILY = {}
for _n in kerasvk.list_models():
    _FIRST_OF_FAMILY.setdefault(get_spec(_n).family, _n)
# The family member that gets the training step where the first one's test build is needlessly large:
# ``efficientnet`` (the φ builder) has no width/depth knobs, so its test build is the whole B0 (16 MBConv
# blocks: ~2 min of CPU to train a step); ``efficientnet_b0``'s tiny build runs the same
# ``efficientnet_family`` code (MBConv, SE, drop-connect, head) in a fraction of it.
_FIRST_OF_FAMILY["efficientnet"] = "efficientnet_b0"
_TRAIN = {n for n in _FIRST_OF_FAMILY.values() if get_spec(n).task != "detection"}
MADE_UP = re.compile(r"output_\d+|keras_tensor(_\d+)?|input_layer(_\d+)?|args_\d+")


def saved_model_cli_show_all(path) -> str:
    """What ``saved_model_cli show --dir PATH --all`` prints, run through the tool's own parser and ``show``
    in this process (the real binary in a subprocess is ``test_serving_rest.py``'s; importing TensorFlow
    once per model would cost ~3 s each)."""
    from absl import flags
    from tensorflow.python.tools import saved_model_cli

    argv = ["saved_model_cli", "show", "--dir", str(path), "--all"]
    flags.FLAGS.unparse_flags()
    flags.FLAGS(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        saved_model_cli.create_parser().parse_args(argv[1:]).func()
    return out.getvalue()


@pytest.mark.parametrize("name", kerasvk.list_models())
def test_registered_model_roundtrips_and_exports(name, tmp_path):
    spec = get_spec(name)
    model = check_model(name, tmp_path, train=name in _TRAIN)
    x, _ = example_batch(spec, model, batch_size=2)
    path = export_model(model, base=tmp_path, name=name)

    # every signature: its warm-up request and a real input (the batch as Keras takes it, as uint8 pixels,
    # as PNG bytes, ...) through the SavedModel and through the same function on the Keras model; floats
    # within 1e-5 + 1e-4·|Keras|, integers and strings equal; the plain forward pass against model(x)
    report = check_export(path, model=model, inputs=x)
    signatures = set(report["signatures"])
    assert set(report["warmup"]) == signatures and set(report["keras"]) == signatures
    if report["max_abs_diff"] is not None:
        assert report["max_abs_diff"] <= 1e-5

    if spec.task == "classification":
        assert signatures == CLASSIFIER_SIGNATURES
        for sig in signatures:
            assert set(report["signatures"][sig]["outputs"]) == CLASSIFIER_OUTPUTS
        assert report["signatures"]["serving_bytes"]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [-1]}}
        assert report["signatures"]["serving_uint8"]["inputs"]["images"]["dtype"] == "uint8"
        assert report["signatures"]["serving_default"]["inputs"]["images"]["dtype"] == "float32"
    else:
        assert signatures == FAMILY_SIGNATURES[spec.family]
    if spec.task == "detection":  # uint8 images of any size in, the TF Object Detection API's outputs out
        default = report["signatures"]["serving_default"]
        assert default["inputs"] == {"images": {"dtype": "uint8", "shape": [-1, -1, -1, 3]}}
        assert DETECTION_OUTPUTS <= set(default["outputs"])
        assert ("detection_masks" in default["outputs"]) == (spec.family == "mask_rcnn")
    for sig, io_ in report["signatures"].items():
        for n in [*io_["inputs"], *io_["outputs"]]:
            assert not MADE_UP.fullmatch(n), f"{name}: signature {sig} has a made-up name {n!r}"

    shown = saved_model_cli_show_all(path)
    for sig, io_ in report["signatures"].items():
        assert f"signature_def['{sig}']" in shown
        for n in [*io_["inputs"], *io_["outputs"]]:
            assert f"['{n}']" in shown

    # TF Serving usually runs as another user: every folder 0755-like, every file 0644-like
    for root, dirs, files in os.walk(path):
        assert stat.S_IMODE(os.stat(root).st_mode) & 0o055 == 0o055, root
        for f in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode) & 0o044 == 0o044, f
