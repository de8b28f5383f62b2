import keras
import numpy as np
import pytest

from camri_utils import CosineHead
from camri_utils.layers import l2_normalize, unit_vectors


def test_cosines_match_numpy(rng):
    head = CosineHead(5)
    x = rng.normal(size=(7, 3)).astype(np.float32)
    out = keras.ops.convert_to_numpy(head(x))
    w = head.kernel.numpy().astype(np.float64)
    expected = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    assert out.shape == (7, 5)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # Scaling a feature or a class weight changes nothing: only angles count.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head(10.0 * x)), out, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head.normalized_kernel()),
                               w / np.linalg.norm(w, axis=0, keepdims=True), atol=1e-6)


def test_zero_feature_gives_zero_cosines():
    head = CosineHead(3)
    out = keras.ops.convert_to_numpy(head(np.zeros((2, 4), np.float32)))
    np.testing.assert_array_equal(out, 0.0)


def test_feature_along_a_class_weight_has_cosine_one():
    head = CosineHead(3)
    head.build((None, 4))
    w = head.kernel.numpy()
    out = keras.ops.convert_to_numpy(head(3.0 * w[:, 1][None, :]))
    assert out[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert np.all(out <= 1.0)


def test_head_serializes_and_rejects_bad_config():
    head = CosineHead(4, kernel_regularizer="l2")
    clone = CosineHead.from_config(head.get_config())
    assert clone.n_classes == 4 and clone.get_config() == head.get_config()
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        CosineHead(1)
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        CosineHead(2.5)
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        CosineHead(True)


def test_l2_normalize_and_its_numpy_twin_agree(rng):
    x = rng.normal(size=(6, 5)) * np.array([[1e-9], [1e-3], [1.0], [1e3], [0.0], [5.0]])
    expected = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)  # the documented formula
    np.testing.assert_allclose(unit_vectors(x), expected, rtol=1e-12)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(l2_normalize(x.astype(np.float32))), expected,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(unit_vectors(x, axis=0), axis=0), 1.0)
    np.testing.assert_array_equal(unit_vectors(np.zeros((2, 3))), 0.0)
