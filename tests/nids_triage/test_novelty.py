"""MahalanobisNovelty on synthetic Gaussian classes: false-alarm rate, far-away points, exact distances."""
import numpy as np
import pytest

from nids_triage.novelty import MahalanobisNovelty


def clusters(rng, n, means, mix):
    """Points of len(means) classes sharing one (correlated) covariance."""
    y = rng.integers(0, len(means), n)
    return means[y] + rng.standard_normal((n, means.shape[1])) @ mix, y


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    d = 8
    means = rng.normal(0, 4, (3, d))
    mix = rng.normal(0, 1, (d, d)) / np.sqrt(d) + np.eye(d)
    return rng, means, mix


@pytest.mark.parametrize("rate", [0.02, 0.05])
def test_false_alarm_rate_on_in_distribution_and_far_points_flagged(data, rate):
    rng, means, mix = data
    X, y = clusters(rng, 20_000, means, mix)
    det = MahalanobisNovelty(false_alarm_rate=rate).fit(X, y, 3)
    X_val, y_val = clusters(rng, 20_000, means, mix)
    det.calibrate(det.score(X_val, y_val))
    X_test, y_test = clusters(rng, 20_000, means, mix)
    flagged = det.score(X_test, y_test) > det.threshold_
    assert flagged.mean() == pytest.approx(rate, abs=0.006)
    far = means[0] + 25.0 + rng.standard_normal((500, means.shape[1]))  # far from every class
    assert (det.score(far, np.zeros(500, int)) > det.threshold_).mean() > 0.99


def test_distances_match_brute_force(data):
    rng, means, mix = data
    X, y = clusters(rng, 2000, means, mix)
    det = MahalanobisNovelty().fit(X, y, 3)
    Z = rng.normal(0, 5, (50, X.shape[1]))
    d = det.distances(Z)
    for c in range(3):
        diff = Z - det.means_[c]
        expected = np.einsum("ij,jk,ik->i", diff, det.precision_, diff)
        np.testing.assert_allclose(d[:, c], expected, rtol=1e-8, atol=1e-6)
    np.testing.assert_allclose(det.score(Z, np.full(50, 2)), d[:, 2])


def test_dead_units_and_absent_classes(data):
    rng, means, mix = data
    X, y = clusters(rng, 1000, means, mix)
    X[:, 3] = 0.0  # a dead ReLU unit: zero variance
    det = MahalanobisNovelty().fit(X, y, 4)  # class 3 has no training flow
    d = det.distances(X[:10])
    assert np.isfinite(d[:, :3]).all() and np.isinf(d[:, 3]).all()


def test_round_trip_through_dict_and_arrays(data):
    rng, means, mix = data
    X, y = clusters(rng, 1000, means, mix)
    det = MahalanobisNovelty(false_alarm_rate=0.03).fit(X, y, 3)
    det.calibrate(det.score(X, y))
    again = MahalanobisNovelty.from_dict(det.to_dict(), det.arrays())
    assert again.threshold_ == det.threshold_ and again.false_alarm_rate == 0.03
    np.testing.assert_array_equal(again.score(X, y), det.score(X, y))


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1])
def test_invalid_false_alarm_rate(rate):
    with pytest.raises(ValueError):
        MahalanobisNovelty(false_alarm_rate=rate)
