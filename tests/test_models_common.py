"""Every registered model: build tiny → forward → finite → train a step → .keras and SavedModel round trips."""

import pytest

import kerasvk
from tests.helpers import check_model


@pytest.mark.parametrize("name", kerasvk.list_models())
def test_registered_model_roundtrips(name, tmp_path):
    check_model(name, tmp_path)
