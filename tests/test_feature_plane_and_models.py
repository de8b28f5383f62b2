import math

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from camri_utils import CAMRILoss, NormalizedSoftmaxLoss, WeightedCrossEntropy  # noqa: E402
from camri_utils import feature_plane as fp  # noqa: E402
from camri_utils import models, plots  # noqa: E402
from tests import reference as ref  # noqa: E402


def test_class_weights_2d_are_evenly_spread():
    w = fp.class_weights_2d(3, norms=2.0)
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), 2.0)
    np.testing.assert_allclose(w[:, 0], [2.0, 0.0], atol=1e-12)
    cos_12 = w[:, 0] @ w[:, 1] / 4.0
    assert cos_12 == pytest.approx(math.cos(2 * math.pi / 3))


def test_loss_on_plane_matches_reference_for_logit_and_margin_losses():
    w = fp.class_weights_2d(3)
    values, z1, z2 = fp.loss_on_plane(WeightedCrossEntropy([2.0, 1.0, 1.0]), w, label=0, limit=3, n=21)
    points = np.stack([z1.ravel(), z2.ravel()], 1)
    labels = np.zeros(len(points), int)
    np.testing.assert_allclose(values.ravel(), ref.weighted_ce(points @ w, labels, [2, 1, 1]), rtol=1e-5, atol=1e-6)

    values, *_ = fp.loss_on_plane(CAMRILoss(3, 0, 0.5, 8.0), w, label=0, limit=3, n=21)
    cos = fp.logits_on_plane(points, w, cosine=True)
    np.testing.assert_allclose(values.ravel(), ref.camri_per_sample(cos, labels, 3, [0], [0.5], 8.0), rtol=1e-5, atol=1e-5)
    # A margin loss depends on the angle only: doubling z changes nothing (away from the origin).
    far, *_ = fp.loss_on_plane(NormalizedSoftmaxLoss(8.0), w, 0, limit=6, n=21)
    near, *_ = fp.loss_on_plane(NormalizedSoftmaxLoss(8.0), w, 0, limit=3, n=21)
    mask = (np.abs(z1) + np.abs(z2)) > 0
    np.testing.assert_allclose(far[mask], near[mask], rtol=1e-5)
    with pytest.raises(ValueError, match="label"):
        fp.loss_on_plane(NormalizedSoftmaxLoss(8.0), w, 3)


def test_mlp_builders_and_feature_model():
    for head in ("cosine", "dense"):
        model = models.mlp(64, 10, head=head)
        assert model.output_shape == (None, 10)
        feats = models.feature_model(model)(np.zeros((3, 64), np.float32))
        assert tuple(feats.shape) == (3, 2)
    with pytest.raises(ValueError, match="'cosine' or 'dense'"):
        models.mlp(4, 3, head="softmax")
    with pytest.raises(ValueError, match="no layer named 'feature'"):
        models.feature_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)]))


def test_figures_draw():
    w = fp.class_weights_2d(3)
    values, z1, z2 = fp.loss_on_plane(CAMRILoss(3, 0, 0.5, 8.0), w, 0, n=31)
    fig, (a, b) = plt.subplots(1, 2)
    plots.draw_loss_on_plane(a, values, z1, z2, w, target=0, title="t", colorbar=True)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(50, 2))
    plots.draw_polar_features(b, feats, rng.integers(0, 3, 50), w, important=0)
    assert len(b.lines) == 3 and max(line.get_linewidth() for line in b.lines) > 3
    plt.close(fig)
    with pytest.raises(ValueError, match="2-D features"):
        plots.draw_polar_features(b, np.zeros((3, 3)), [0, 1, 2], np.zeros((3, 3)))
