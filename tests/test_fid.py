"""FID and Inception Score: exact cases, closed forms, numerical safety, clear errors."""

import numpy as np
import pytest

from kerasvk.evaluation.generative import (
    ClassifierFeatures,
    fid,
    frechet_distance,
    inception_score,
    trace_sqrt_product,
)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 16))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_matches_closed_form_for_gaussians():
    rng = np.random.default_rng(1)
    d = 4
    mu1, mu2 = np.zeros(d), np.array([1.0, -1.0, 0.5, 0.0])
    s1, s2 = np.diag([1.0, 2.0, 0.5, 1.0]), np.diag([4.0, 0.5, 0.5, 1.0])
    # diagonal covariances commute: Tr((Σ1Σ2)^½) = Σ sqrt(a_i b_i), so the distance is
    # ‖μ1−μ2‖² + Σ (√a_i − √b_i)²  — an independent closed form
    closed = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(np.diag(s1)) - np.sqrt(np.diag(s2))) ** 2))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-10)
    a = rng.multivariate_normal(mu1, s1, size=50_000)
    b = rng.multivariate_normal(mu2, s2, size=50_000)
    assert fid(a, b) == pytest.approx(closed, rel=0.03)


def test_trace_sqrt_matches_scipy_for_non_commuting_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T
    assert not np.allclose(s1 @ s2, s2 @ s1)
    ref = np.trace(linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-8)


def test_fid_is_finite_for_rank_deficient_covariances():
    rng = np.random.default_rng(3)
    a = np.zeros((300, 8))
    a[:, :2] = rng.normal(size=(300, 2))  # rank-2 covariance in 8 dims
    b = a + rng.normal(scale=1e-3, size=a.shape)
    v = fid(a, b)
    assert np.isfinite(v) and 0.0 <= v < 1e-3


def test_fid_warns_with_fewer_samples_than_dims_and_rejects_mismatch():
    rng = np.random.default_rng(4)
    with pytest.warns(UserWarning, match="singular"):
        v = fid(rng.normal(size=(10, 32)), rng.normal(size=(10, 32)))
    assert np.isfinite(v)
    with pytest.raises(ValueError, match="differ in size"):
        fid(rng.normal(size=(50, 8)), rng.normal(size=(50, 9)))
    with pytest.raises(ValueError, match="feature_extractor"):
        fid(rng.normal(size=(5, 8, 8, 1)), rng.normal(size=(5, 8, 8, 1)))
    with pytest.raises(ValueError, match="at least 2"):
        fid(rng.normal(size=(1, 4)), rng.normal(size=(5, 4)))


@pytest.mark.parametrize("k", [2, 5, 10])
def test_inception_score_of_evenly_spread_one_hots_is_k(k):
    probs = np.eye(k)[np.arange(20 * k) % k]
    mean, std = inception_score(probs)
    assert mean == pytest.approx(k, rel=1e-9) and std == 0.0
    mean, std = inception_score(probs, splits=4)
    assert mean == pytest.approx(k, rel=1e-9)


def test_inception_score_of_identical_predictions_is_one():
    p = np.tile([0.7, 0.2, 0.1], (50, 1))
    assert inception_score(p)[0] == pytest.approx(1.0, abs=1e-12)
    assert inception_score(np.eye(4)[np.zeros(30, int)])[0] == pytest.approx(1.0, abs=1e-12)
    # uniform predictions: no confidence → 1 as well; a mixture sits strictly between 1 and K
    assert inception_score(np.full((40, 4), 0.25))[0] == pytest.approx(1.0)
    mixed = 0.5 * np.eye(4)[np.arange(40) % 4] + 0.125
    assert 1.0 < inception_score(mixed)[0] < 4.0


def test_inception_score_rejects_logits():
    with pytest.raises(ValueError, match="softmax"):
        inception_score(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.full((4, 2), 0.5), splits=5)


def test_classifier_features_use_the_predictions_input():
    import kerasvk

    clf = kerasvk.build("lenet5", input_shape=(32, 32, 1), num_classes=10)
    ext = ClassifierFeatures(clf, name="FID-digits")
    x = np.random.default_rng(0).uniform(0, 1, (5, 32, 32, 1)).astype("float32")
    feats, probs = ext(x)
    assert feats.shape == (5, 84) and probs.shape == (5, 10) and feats.dtype == np.float64
    np.testing.assert_allclose(probs, np.asarray(clf(x)), atol=1e-6)
    with pytest.warns(UserWarning, match="5 samples for 84-dimensional"):
        assert fid(x, x, ext) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="shape"):
        ext(x[:, :16, :16])


def test_feature_classifier_is_trained_in_training_not_evaluation():
    """evaluation only scores; the classifier behind FID-digits is trained by kerasvk.training."""
    import kerasvk.evaluation.generative as generative
    from kerasvk.training.feature_classifier import train_feature_classifier

    assert not hasattr(generative, "train_feature_classifier")
    ext, acc = train_feature_classifier("digits", image_size=(32, 32), epochs=1, batch_size=128)
    assert isinstance(ext, ClassifierFeatures) and ext.name == "FID-digits"
    assert 0.0 <= acc <= 1.0
    feats, probs = ext(np.zeros((3, 32, 32, 1), "float32"))
    assert feats.shape == (3, 84) and probs.shape == (3, 10)


@pytest.mark.slow
def test_inception_extractor_shapes_without_weights():
    from kerasvk.evaluation.generative import InceptionFeatures

    ext = InceptionFeatures(weights=None, batch_size=2)
    feats, probs = ext(np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype("float32"))
    assert feats.shape == (2, 2048) and probs.shape == (2, 1000)
