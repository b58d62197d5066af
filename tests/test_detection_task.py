"""The detection task through the one trainer: train → metrics.json (COCO) → evaluate → export → predict."""

import json

import numpy as np
import pytest

from kerasvk.models.detection.base import DETECTION_OUTPUTS

TINY = {"backbone_kwargs": {"width_multiplier": 0.125, "blocks_per_stage": [1, 1, 1, 1]},
        "neck_width": 8, "head_width": 8, "reg_max": 8}


@pytest.fixture(scope="module")
def yolo_run(tmp_path_factory):
    from kerasvk.training import train

    out = tmp_path_factory.mktemp("det") / "run"
    report = train("yolo", "shapes:count=24,size=64", epochs=1, batch_size=8, out=out, verbose=0,
                   schedule="constant", warmup=0, model_kwargs=TINY)
    return out, report


def test_train_writes_a_coco_report_and_detection_plot(yolo_run):
    out, report = yolo_run
    for key in ("mAP", "mAP_50", "mAP_75", "mAP_small", "per_class_AP", "test_loss", "inference_images_per_second"):
        assert key in report
    assert 0.0 <= report["mAP_50"] <= 1.0 and report["num_images"] >= 4
    assert set(report["per_class_AP"]) == {"circle", "square", "triangle", "cross"}
    assert json.loads((out / "metrics.json").read_text())["mAP"] == report["mAP"]
    assert (out / "plots" / "detections.png").stat().st_size > 1000
    assert json.loads((out / "run.json").read_text())["class_names"] == ["circle", "square", "triangle", "cross"]


def test_evaluate_export_and_predict_the_run(yolo_run, tmp_path, capsys):
    import tensorflow as tf

    from kerasvk.cli import main
    from kerasvk.training import evaluate_run, export_run, load_run_model

    out, report = yolo_run
    again = evaluate_run(out, write=False)
    assert again["mAP"] == pytest.approx(report["mAP"]) and again["num_ground_truth"] == report["num_ground_truth"]
    assert main(["evaluate", str(out)]) == 0
    assert "mAP@[.5:.95]" in capsys.readouterr().out
    path = export_run(out, base=tmp_path / "sm")
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert set(DETECTION_OUTPUTS) <= set(fn.structured_outputs)
    model, _ = load_run_model(out)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 100, 80, 3)).astype("uint8")  # any size
    served = fn(images=tf.constant(pixels))
    resized = tf.image.resize(tf.cast(pixels, tf.float32), (64, 64)).numpy() / 255.0
    ref = model.detect(resized)
    np.testing.assert_array_equal(served["num_detections"].numpy(), ref["num_detections"])
    png = tmp_path / "a.png"
    png.write_bytes(tf.io.encode_png(tf.constant(pixels[0])).numpy())
    assert main(["predict", str(out), str(png)]) == 0
    assert "a.png:" in capsys.readouterr().out


def test_bad_detection_inputs_are_clear():
    from kerasvk.training import train

    with pytest.raises(ValueError, match="shapes"):
        train("yolo", "digits", epochs=1)
    with pytest.raises(ValueError, match="flip"):
        train("yolo", "shapes:count=8", epochs=1, augment="strong")
    with pytest.raises(ValueError, match="does not take label_smoothing"):
        train("yolo", "shapes:count=8", epochs=1, label_smoothing=0.1)
