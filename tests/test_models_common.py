"""Every registered model: build tiny → forward → finite → .keras round trip; one model per family also
trains a step and round-trips through a SavedModel (the variants of a family share that code path, and
the full check on all ~50 models alone would exceed the suite's 10-minute budget on a 2-core CPU)."""

import pytest

import kerasvk
from kerasvk.registry import get_spec
from tests.helpers import check_model

_FIRST_OF_FAMILY = {}
for _n in kerasvk.list_models():
    _FIRST_OF_FAMILY.setdefault(get_spec(_n).family, _n)
_FULL = set(_FIRST_OF_FAMILY.values())


_HEAVY = set(kerasvk.list_models("detection"))  # a detector's full check traces its loss graph: minutes on 2 cores


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.heavy) if n in _HEAVY else n for n in kerasvk.list_models()]
)
def test_registered_model_roundtrips(name, tmp_path):
    full = name in _FULL
    check_model(name, tmp_path, train=full, export=full)
