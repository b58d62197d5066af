import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts from a cleared Keras session and a fixed seed."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield
