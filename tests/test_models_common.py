"""Every registered model: build tiny → forward → finite → .keras round trip; one model per family (but the
detectors, see below) also trains a step (the variants of a family share that code path, and training all ~50 models alone would
exceed the suite's 10-minute budget on a 2-core CPU). The SavedModel of every model, every signature
compared with Keras, is tests/test_export_every_model.py's (it replaced the per-family export here)."""

import pytest

import kerasvk
from kerasvk.registry import get_spec
from tests.helpers import check_model

_FIRST_OF_FAMILY = {}
for _n in kerasvk.list_models():
    _FIRST_OF_FAMILY.setdefault(get_spec(_n).family, _n)
# The family member that gets the full check where the first one's test build is needlessly large:
# ``efficientnet`` (the φ builder) has no width/depth knobs, so its test build is the whole B0 (16 MBConv
# blocks: ~2 min of CPU to train a step and export); ``efficientnet_b0``'s tiny build runs the same
# ``efficientnet_family`` code (MBConv, SE, drop-connect, head, serving signatures) in a fraction of it.
_FIRST_OF_FAMILY["efficientnet"] = "efficientnet_b0"
# Detectors are trained (a short fit whose every loss term must fall, then .keras and export checks) by
# their own test files (test_yolo/ssd/faster_rcnn/mask_rcnn): a second one-step fit here only re-traced
# their loss graphs (~40 s of CPU on a quiet machine for the four).
_FULL = {n for n in _FIRST_OF_FAMILY.values() if get_spec(n).task != "detection"}


@pytest.mark.parametrize("name", kerasvk.list_models())
def test_registered_model_roundtrips(name, tmp_path):
    full = name in _FULL
    check_model(name, tmp_path, train=full)
