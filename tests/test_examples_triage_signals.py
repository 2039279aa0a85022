"""examples/triage_signals.py: its measuring helpers are right on small cases (the full run takes a minute)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "triage_signals.py"


def _module():
    spec = importlib.util.spec_from_file_location("triage_signals", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_auroc_counts_pairs_and_half_ties():
    ts = _module()
    positive = np.array([True, True, False, False])
    assert ts.auroc(np.array([0.9, 0.8, 0.2, 0.1]), positive) == 1.0
    assert ts.auroc(np.array([0.1, 0.2, 0.8, 0.9]), positive) == 0.0
    # pairs (pos, neg): (.9,.5) win, (.9,.3) win, (.5,.5) tie, (.5,.3) win -> 3.5 / 4
    assert ts.auroc(np.array([0.9, 0.5, 0.5, 0.3]), positive) == 0.875


def test_auto_accuracy_follows_the_tools_rule():
    ts = _module()
    correct = np.array([True, True, True, False, False, True, True, True, True, True])
    risk = np.array([0.1, 0.2, 1.3, 1.9, 1.8, 0.0, 0.1, 0.2, 0.3, 0.4])
    none_hard = np.zeros(10, bool)
    # three flows over 1, two places (ceil(0.2 * 10)): the two riskiest, both errors, go to review
    assert ts.auto_accuracy(risk, correct, none_hard, 0.2) == 1.0
    # a big budget defers only flows over 1: the rest stay auto-decided however the budget allows more
    assert ts.auto_accuracy(risk, correct, none_hard, 0.5) == 1.0
    assert ts.auto_accuracy(np.full(10, 0.5), correct, none_hard, 0.5) == 0.8
    hard = np.zeros(10, bool)
    hard[0] = True  # a hard reason goes to review on top of the budget's two places
    assert ts.auto_accuracy(risk, correct, hard, 0.2) == 1.0
    hard[:] = False
    hard[3] = True  # the hard row is one of the errors: the budget's places go to the next riskiest
    assert ts.auto_accuracy(risk, correct, hard, 0.2) == 1.0


def test_neighbour_stats_match_a_direct_computation():
    ts = _module()
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((50, 3))
    queries = np.vstack([ref[:5] + 0.01, rng.standard_normal((20, 3)).astype(np.float32)]).astype(np.float64)
    ref_labels = np.array(["a", "b"] * 25)
    query_labels = np.array(["a"] * 25)
    nearest, nearest_same, within = ts.neighbour_stats(queries, ref, ref_labels, query_labels, 0.5, block=7)
    d = ((queries[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(nearest, d.min(axis=1), atol=1e-9)
    np.testing.assert_allclose(nearest_same, d[:, ref_labels == "a"].min(axis=1), atol=1e-9)
    np.testing.assert_array_equal(within, (d <= 0.5).sum(axis=1))


def test_adapt_priors_recovers_a_shifted_prior():
    # two classes, calibrated posteriors from known likelihoods: validation has priors (0.5, 0.5), the run
    # (0.9, 0.1). EM on the run's posteriors alone must find 0.9 / 0.1 and move the posteriors with it.
    ts = _module()
    rng = np.random.default_rng(0)

    def posteriors(n, prior):
        y = (rng.random(n) >= prior[0]).astype(int)
        x = rng.normal(np.where(y == 0, -1.0, 1.0), 1.0)
        like = np.stack([np.exp(-(x + 1) ** 2 / 2), np.exp(-(x - 1) ** 2 / 2)], axis=1)
        return like / like.sum(axis=1, keepdims=True), y  # the posterior under equal priors

    p_val, _ = posteriors(20_000, (0.5, 0.5))
    p_run, y_run = posteriors(20_000, (0.9, 0.1))
    q, pi = ts.adapt_priors(p_run, p_val)
    assert abs(pi[0] - 0.9) < 0.02
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert (q.argmax(axis=1) == y_run).mean() > (p_run.argmax(axis=1) == y_run).mean()
