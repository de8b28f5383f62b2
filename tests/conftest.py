import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def float32_policy():
    """Restore the global dtype policy after a test that changes it."""
    before = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(before)
