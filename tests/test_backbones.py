"""Backbones: named pyramid outputs P2..P5 of the zoo families (keras-hub's ``Backbone.pyramid_outputs``).

The expected layers and channel counts below were read off the architectures (the last block at each
stride; the classifier-only 1×1 expansion convs excluded) and are checked against the keras.applications
twins' layer names and shapes. Nothing is downloaded: "imagenet" twins are stubbed with random weights, and
conftest's autouse fixture makes keras.utils.get_file raise, so an accidental download fails the test.
"""

import subprocess
import sys

import numpy as np
import pytest

import kerasvk
from kerasvk.registry import get_spec

# name -> {level: (layer name, channels)} at the default width; 128×128 inputs (CIFAR ResNets: 32×32)
PYRAMIDS = {
    "resnet18": {"P2": ("conv2_block2_out", 64), "P3": ("conv3_block2_out", 128),
                 "P4": ("conv4_block2_out", 256), "P5": ("conv5_block2_out", 512)},
    "resnet34": {"P2": ("conv2_block3_out", 64), "P3": ("conv3_block4_out", 128),
                 "P4": ("conv4_block6_out", 256), "P5": ("conv5_block3_out", 512)},
    "resnet50": {"P2": ("conv2_block3_out", 256), "P3": ("conv3_block4_out", 512),
                 "P4": ("conv4_block6_out", 1024), "P5": ("conv5_block3_out", 2048)},
    "resnet101": {"P2": ("conv2_block3_out", 256), "P3": ("conv3_block4_out", 512),
                  "P4": ("conv4_block23_out", 1024), "P5": ("conv5_block3_out", 2048)},
    "resnet152": {"P2": ("conv2_block3_out", 256), "P3": ("conv3_block8_out", 512),
                  "P4": ("conv4_block36_out", 1024), "P5": ("conv5_block3_out", 2048)},
    # CIFAR ResNets run at strides 1, 2, 4: only P2
    "resnet20": {"P2": ("conv4_block3_out", 64)},
    "resnet56": {"P2": ("conv4_block9_out", 64)},
    "mobilenet_v1": {"P2": ("conv_pw_3_relu", 128), "P3": ("conv_pw_5_relu", 256),
                     "P4": ("conv_pw_11_relu", 512), "P5": ("conv_pw_13_relu", 1024)},
    "mobilenet_v2": {"P2": ("block_2_add", 24), "P3": ("block_5_add", 32),
                     "P4": ("block_12_add", 96), "P5": ("block_16_project_BN", 320)},
    "mobilenet_v3_small": {"P2": ("expanded_conv_project_bn", 16), "P3": ("expanded_conv_2_add", 24),
                           "P4": ("expanded_conv_7_add", 48), "P5": ("expanded_conv_10_add", 96)},
    "mobilenet_v3_large": {"P2": ("expanded_conv_2_add", 24), "P3": ("expanded_conv_5_add", 40),
                           "P4": ("expanded_conv_11_add", 112), "P5": ("expanded_conv_14_add", 160)},
    "efficientnet_b0": {"P2": ("block2b_add", 24), "P3": ("block3b_add", 40),
                        "P4": ("block5c_add", 112), "P5": ("block7a_project_bn", 320)},
    "efficientnet_b1": {"P2": ("block2c_add", 24), "P3": ("block3c_add", 40),
                        "P4": ("block5d_add", 112), "P5": ("block7b_add", 320)},
    "efficientnet_b2": {"P2": ("block2c_add", 24), "P3": ("block3c_add", 48),
                        "P4": ("block5d_add", 120), "P5": ("block7b_add", 352)},
    "efficientnet_b3": {"P2": ("block2c_add", 32), "P3": ("block3c_add", 48),
                        "P4": ("block5e_add", 136), "P5": ("block7b_add", 384)},
    "efficientnet_b4": {"P2": ("block2d_add", 32), "P3": ("block3d_add", 56),
                        "P4": ("block5f_add", 160), "P5": ("block7b_add", 448)},
    "efficientnet_b5": {"P2": ("block2e_add", 40), "P3": ("block3e_add", 64),
                        "P4": ("block5g_add", 176), "P5": ("block7c_add", 512)},
    "efficientnet_b6": {"P2": ("block2f_add", 40), "P3": ("block3f_add", 72),
                        "P4": ("block5h_add", 200), "P5": ("block7c_add", 576)},
    "efficientnet_b7": {"P2": ("block2g_add", 48), "P3": ("block3g_add", 80),
                        "P4": ("block5j_add", 224), "P5": ("block7d_add", 640)},
    "vgg16": {"P2": ("block2_pool", 128), "P3": ("block3_pool", 256),
              "P4": ("block4_pool", 512), "P5": ("block5_pool", 512)},
    "vgg19": {"P2": ("block2_pool", 128), "P3": ("block3_pool", 256),
              "P4": ("block4_pool", 512), "P5": ("block5_pool", 512)},
    # dense-block outputs before each transition (keras-hub's DenseNet): 64 + 32·layers, halved by transitions
    "densenet121": {"P2": ("conv2_block6_concat", 256), "P3": ("conv3_block12_concat", 512),
                    "P4": ("conv4_block24_concat", 1024), "P5": ("conv5_block16_concat", 1024)},
}
STRIDES = {"P2": 4, "P3": 8, "P4": 16, "P5": 32}


def _size(name):
    return 32 if name in ("resnet20", "resnet56") else 128


# the deepest graphs take 3-8 s each to build on a 2-core CPU; they run with the slow tests
_SLOW = {"resnet152", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in sorted(PYRAMIDS)]
)
def test_pyramid_layers_strides_and_channels(name):
    expected = PYRAMIDS[name]
    assert get_spec(name).pyramid_levels == tuple(expected)
    size = _size(name)
    bb = kerasvk.backbone(name, input_shape=(size, size, 3), levels=tuple(expected))
    assert bb.pyramid_outputs == {level: layer for level, (layer, _) in expected.items()}
    shapes = {level: tuple(t.shape) for level, t in bb.output.items()}
    assert shapes == {
        level: (None, size // STRIDES[level], size // STRIDES[level], ch)
        for level, (_, ch) in expected.items()
    }


def test_default_levels_are_p3_p4_p5_and_the_output_is_a_dict():
    bb = kerasvk.backbone("resnet18", input_shape=(128, 128, 3), width_multiplier=0.25)
    out = bb(np.zeros((2, 128, 128, 3), "float32"))
    assert sorted(out) == ["P3", "P4", "P5"]
    shapes = [tuple(out[k].shape) for k in ("P3", "P4", "P5")]
    assert shapes == [(2, 16, 16, 32), (2, 8, 8, 64), (2, 4, 4, 128)]


# the twins' include_top=False graphs have the same layer at each level, with the same shape
_TWIN_CHECKS = ["resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
                "densenet121", "vgg16"]


@pytest.mark.parametrize("name", _TWIN_CHECKS)
def test_pyramid_layers_exist_in_the_keras_applications_twin(name):
    twin_class = get_spec(name).weights_loader.constructor()
    twin = twin_class(weights=None, include_top=False, input_shape=(128, 128, 3))
    for level, (layer, ch) in PYRAMIDS[name].items():
        s = 128 // STRIDES[level]
        assert tuple(twin.get_layer(layer).output.shape) == (None, s, s, ch), (level, layer)


# tiny widths (the registered test sizes) keep these fast; layer names do not depend on width
@pytest.mark.parametrize("name", ["resnet50", "resnet20", "mobilenet_v2", "mobilenet_v3_small",
                                  "efficientnet_b0", "densenet121", "vgg16"])
def test_backbone_is_the_classifier_without_its_head(name):
    """Every backbone layer is the classifier's layer of the same name and weight shapes, so weights
    (imagenet or a fine-tuned classifier's) apply unchanged; copied over, the backbone computes exactly
    the classifier's intermediate feature maps."""
    import keras

    kw = dict(get_spec(name).test_kwargs)
    levels = get_spec(name).pyramid_levels
    clf = kerasvk.build(name, num_classes=10, **kw)
    bb = kerasvk.backbone(name, levels=levels, **kw)
    assert clf.pyramid_outputs == bb.pyramid_outputs
    clf_layers = {layer.name: layer for layer in clf.layers}
    for layer in bb.layers:
        assert layer.name in clf_layers
        ref = clf_layers[layer.name]
        assert [tuple(w.shape) for w in layer.weights] == [tuple(w.shape) for w in ref.weights], layer.name
        layer.set_weights(ref.get_weights())
    probe = keras.Model(clf.input, {lvl: clf.get_layer(n).output for lvl, n in bb.pyramid_outputs.items()})
    x = np.random.default_rng(0).uniform(0, 1, (2, *clf.input_shape[1:])).astype("float32")
    ours, ref = bb(x), probe(x)
    for level in levels:
        np.testing.assert_array_equal(np.asarray(ours[level]), np.asarray(ref[level]))


def test_imagenet_weights_pass_through(monkeypatch):
    """``backbone(name, weights="imagenet")`` loads the twin's include_top=False weights (the twin is
    stubbed to random weights: nothing is downloaded) and gives the twin's feature maps."""
    import keras

    original = keras.applications.MobileNetV2

    def offline_twin(weights=None, **kw):
        assert weights == "imagenet" and kw["include_top"] is False
        keras.utils.set_random_seed(5)
        return original(weights=None, **kw)

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline_twin)
    bb = kerasvk.backbone("mobilenet_v2", input_shape=(64, 64, 3), weights="imagenet")
    keras.utils.set_random_seed(5)
    twin = original(weights=None, include_top=False, input_shape=(64, 64, 3))
    x = np.random.default_rng(1).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    out = bb(x)
    for level, layer in bb.pyramid_outputs.items():
        ref = keras.Model(twin.input, twin.get_layer(layer).output)(x)
        np.testing.assert_allclose(np.asarray(out[level]), np.asarray(ref), atol=1e-5)


def test_bad_backbone_requests_raise_value_errors_naming_what_is_allowed():
    with pytest.raises(ValueError, match=r"levels must be .*P2, P3, P4, P5.*Received: levels=\('P3', 'P6'\)"):
        kerasvk.backbone("resnet50", levels=("P3", "P6"))
    only_p2 = r"resnet20: levels must be distinct pyramid levels of this model: P2 "
    with pytest.raises(ValueError, match=only_p2):
        kerasvk.backbone("resnet20")  # default P3..P5: the CIFAR ResNet only reaches stride 4
    with pytest.raises(ValueError, match="levels must be distinct"):
        kerasvk.backbone("resnet50", levels=("P3", "P3"))
    with pytest.raises(ValueError, match="levels must be distinct"):
        kerasvk.backbone("resnet50", levels=())
    no_backbone = r"has no backbone.*Models with a backbone: densenet121.*resnet50"
    for name in ("lenet5", "vit_base_16"):
        with pytest.raises(ValueError, match=no_backbone):
            kerasvk.backbone(name)
    with pytest.raises(ValueError, match="does not take include_top, num_classes"):
        kerasvk.backbone("resnet50", include_top=True, num_classes=10)
    with pytest.raises(ValueError, match="Unknown model name 'resnet5'"):
        kerasvk.backbone("resnet5")
    with pytest.raises(ValueError, match="need 3 input channels"):
        kerasvk.backbone("resnet50", input_shape=(64, 64, 1), weights="imagenet")
    assert kerasvk.model_info("resnet20", input_shape=(16, 16, 3))["pyramid_levels"] == ["P2"]


def test_classifier_head_rejects_unknown_head_kinds():
    import keras

    from kerasvk.models.classification.base import classifier_head

    with pytest.raises(ValueError, match="head must be one of avg, dense, conv, token"):
        classifier_head(
            keras.Input((4, 4, 8)), num_classes=3, include_top=True, pooling=None,
            classifier_activation="softmax", head="mlp",
        )


def test_registry_imports_no_model_module():
    """The registry is the bottom layer: importing it loads no model module (nor keras/TensorFlow);
    models are discovered by package name on first use."""
    code = (
        "import sys, kerasvk.registry; "
        "print([m for m in sys.modules if m.startswith('kerasvk.models') or m in ('keras', 'tensorflow')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
