"""DeferralPolicy on synthetic, calibrated scores: budgets and accuracy targets hold on fresh data."""
import numpy as np
import pytest

from nids_triage.policy import REASONS, DeferralPolicy, risk_coverage


def calibrated(rng, n, low=0.3):
    """Confidences and outcomes of a perfectly calibrated model: P(correct | confidence c) = c."""
    confidence = rng.uniform(low, 1.0, n)
    correct = rng.random(n) < confidence
    novelty = rng.chisquare(8, n)  # in-distribution novelty scores
    return confidence, correct, novelty


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("budget", [0.05, 0.14, 0.3])
def test_review_budget_is_honoured_on_validation_and_fresh_data(rng, budget):
    conf, correct, nov = calibrated(rng, 20_000)
    policy = DeferralPolicy(review_budget=budget).fit(conf, nov, correct, np.quantile(nov, 0.98))
    needs, _, _ = policy.decide(conf, nov)
    assert budget - 0.005 <= needs.mean() <= budget  # the largest threshold within budget
    conf2, correct2, nov2 = calibrated(rng, 20_000)
    needs2, _, _ = policy.decide(conf2, nov2)
    assert needs2.mean() <= budget  # never over budget: the per-run cap
    assert needs2.mean() == pytest.approx(budget, abs=0.01)
    # deferring the least confident flows raises the accuracy of the rest
    assert correct2[~needs2].mean() > correct2.mean()


def test_budget_cap_under_shift_keeps_the_riskiest(rng):
    conf, correct, nov = calibrated(rng, 10_000)
    policy = DeferralPolicy(review_budget=0.1).fit(conf, nov, correct, np.quantile(nov, 0.98))
    shifted = conf * 0.6  # a stream the model is much less sure about
    needs, reasons, risk = policy.decide(shifted, nov)
    assert needs.sum() == int(np.floor(0.1 * len(conf)))
    assert risk[needs].min() >= risk[~needs].max()  # exactly the riskiest were kept for review
    assert all(r for r, n in zip(reasons, needs, strict=True) if n)


def test_hard_reasons_are_always_deferred_even_beyond_budget(rng):
    conf, correct, nov = calibrated(rng, 1000)
    policy = DeferralPolicy(review_budget=0.05).fit(conf, nov, correct, np.quantile(nov, 0.98))
    invalid = np.zeros(1000, bool)
    invalid[:300] = True
    unseen = np.zeros(1000, bool)
    unseen[250:400] = True
    needs, reasons, _ = policy.decide(conf, nov, invalid_value=invalid, unseen_category=unseen)
    assert needs[:400].all()
    assert reasons[0] == ["invalid_value"]  # invalid wins over everything else
    assert reasons[260] == ["invalid_value"]  # both: reported as invalid only
    assert reasons[350] == ["unseen_category"]
    assert needs[400:].sum() <= int(0.05 * 1000)  # learned deferrals still within the budget


def test_target_accuracy_is_reached_on_fresh_calibrated_data(rng):
    conf, correct, nov = calibrated(rng, 40_000)
    policy = DeferralPolicy(target_accuracy=0.9).fit(conf, nov, correct, np.quantile(nov, 0.99))
    conf2, correct2, nov2 = calibrated(rng, 40_000)
    needs, _, _ = policy.decide(conf2, nov2)
    assert correct2[~needs].mean() >= 0.89
    # and no more than needed: confidence uniform on [0.3, 1] reaches 0.9 above t = 0.8, i.e. 5/7 deferred
    assert needs.mean() == pytest.approx(5 / 7 + 0.01 * 2 / 7, abs=0.02)


def test_reasons_name_the_signal_that_fired(rng):
    conf, correct, nov = calibrated(rng, 5000)
    policy = DeferralPolicy(review_budget=0.2).fit(conf, nov, correct, np.quantile(nov, 0.98))
    needs, reasons, risk = policy.decide(conf, nov)
    for i in np.flatnonzero(needs):
        assert set(reasons[i]) <= set(REASONS) and reasons[i]
        assert ("low_confidence" in reasons[i]) == (conf[i] < policy.confidence_threshold)
        assert ("novel" in reasons[i]) == (nov[i] > policy.novelty_threshold)
    assert not any(reasons[i] for i in np.flatnonzero(~needs))
    assert (risk[needs] > 1).all()


@pytest.mark.parametrize("goal", [{"target_accuracy": 0.8}, {"review_budget": 0.14}])
def test_disagreement_is_a_reason(rng, goal):
    conf, correct, nov = calibrated(rng, 1000)
    policy = DeferralPolicy(**goal).fit(conf, nov, correct, np.inf)
    dis = np.zeros(1000)
    dis[np.argmax(conf)] = 1.0  # the most confident flow, but every MC sample disagrees
    needs, reasons, risk = policy.decide(conf, nov, disagreement=dis)
    # disagreement raises the risk too, so it also survives the budget's per-run cap
    assert needs[np.argmax(conf)] and reasons[np.argmax(conf)] == ["disagreement"]
    assert risk[np.argmax(conf)] == pytest.approx(1.0 / policy.disagreement_threshold)


def test_round_trip_gives_identical_decisions(rng):
    conf, correct, nov = calibrated(rng, 2000)
    policy = DeferralPolicy(review_budget=0.14).fit(conf, nov, correct, 12.0)
    again = DeferralPolicy.from_dict(policy.to_dict())
    a, b = policy.decide(conf, nov), again.decide(conf, nov)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1] and np.array_equal(a[2], b[2])


@pytest.mark.parametrize("kwargs", [{}, {"review_budget": 0.1, "target_accuracy": 0.9},
                                    {"review_budget": 1.0}, {"target_accuracy": 0.0}])
def test_invalid_goals_are_refused(kwargs):
    with pytest.raises(ValueError):
        DeferralPolicy(**kwargs)


def test_risk_coverage_endpoints(rng):
    conf, correct, _ = calibrated(rng, 10_000)
    curve = risk_coverage(1 - conf, correct)
    assert curve["review_share"][0] == 0.0
    assert curve["auto_accuracy"][0] == pytest.approx(correct.mean())
    assert curve["auto_accuracy"][-1] > curve["auto_accuracy"][0]  # calibrated: deferring risk pays


def test_a_small_run_still_defers_a_risky_flow(rng):
    conf, correct, nov = calibrated(rng, 2000)
    policy = DeferralPolicy(review_budget=0.14).fit(conf, nov, correct, 12.0)
    # one flow far below the confidence threshold and far beyond the novelty threshold, scored alone:
    # floor(0.14 * 1) = 0 would auto-decide it; the cap rounds up, so it goes to review
    needs, reasons, risk = policy.decide(np.array([0.2]), np.array([1e6]))
    assert needs[0] and "novel" in reasons[0] and risk[0] > 1
    # and a run of 100 such flows with a 14 % budget defers exactly 14
    needs, _, _ = policy.decide(np.full(100, 0.2), np.linspace(1e3, 1e6, 100))
    assert needs.sum() == 14 and needs[-14:].all()  # the 14 most novel


def test_a_burst_is_a_novel_reason_that_competes_for_the_budget(rng):
    conf, correct, nov = calibrated(rng, 5000)
    burst_val = np.zeros(5000)
    burst_val[:100] = 50.0  # 2 % of validation flows over the burst threshold: they count as deferred there
    policy = DeferralPolicy(review_budget=0.14).fit(conf, nov, correct, np.quantile(nov, 0.98), burst=burst_val,
                                                    burst_threshold=10.0)
    needs, reasons, risk = policy.decide(conf, nov, burst=burst_val)
    assert needs.mean() <= 0.14 and needs[:100].all()
    without = DeferralPolicy(review_budget=0.14).fit(conf, nov, correct, np.quantile(nov, 0.98))
    assert policy.confidence_threshold < without.confidence_threshold  # fewer places left for confidence
    conf2, _, nov2 = calibrated(rng, 1000)
    burst = np.zeros(1000)
    campaign = np.argsort(conf2)[-50:]  # the 50 most confident flows, in a burst
    burst[campaign] = 1000.0
    needs, reasons, risk = policy.decide(conf2, nov2, burst=burst)
    assert needs[campaign].all()  # the riskiest under the cap: 1000 / 10 = risk 100
    assert risk[campaign] == pytest.approx(100.0)
    assert all("novel" in reasons[i] for i in campaign)
    assert all("novel" not in reasons[i] or nov2[i] > policy.novelty_threshold
               for i in np.flatnonzero(needs) if burst[i] == 0)


def test_a_policy_saved_before_the_burst_signal_ignores_it(rng):
    conf, correct, nov = calibrated(rng, 2000)
    policy = DeferralPolicy(review_budget=0.14).fit(conf, nov, correct, 12.0)
    old = {k: v for k, v in policy.to_dict().items() if k != "burst_threshold"}  # a version-1 model file's policy
    again = DeferralPolicy.from_dict(old)
    assert again.burst_threshold is None
    a = again.decide(conf, nov, burst=np.full(2000, 1e9))
    b = policy.decide(conf, nov)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1] and np.array_equal(a[2], b[2])
