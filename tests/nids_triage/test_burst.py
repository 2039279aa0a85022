"""BurstDetector: the statistic on hand-built runs, the group floor, false alarms on in-distribution runs of every
size, a planted campaign found, invalid and huge rows handled, and the round trip through its saved form."""
import math
import warnings

import numpy as np
import pytest

from nids_triage.burst import BurstDetector


def traffic(rng, n, d=6, kinds=400):
    """Flows of ``kinds`` recurring kinds (a few near-identical flows each), like ordinary traffic."""
    centres = rng.normal(0.0, 3.0, (kinds, d))
    weights = rng.dirichlet(np.ones(kinds))
    return more_traffic(rng, n, centres, weights), centres, weights


def more_traffic(rng, n, centres, weights):
    """More flows drawn like ``traffic``'s (the same kinds, the same mix)."""
    kind = rng.choice(len(weights), n, p=weights)
    return (centres[kind] + rng.normal(0.0, 0.02, (n, centres.shape[1]))).astype(np.float32)


def test_statistic_on_a_hand_built_run():
    train = np.array([[0.1, 0.1]] * 6 + [[2.1, 0.1]] * 2, dtype=np.float32)  # 6 flows in one cell, 2 in another
    det = BurstDetector(cell=1.0, min_flows=2).fit(train)
    assert det.n_train_ == 8 and len(det.cells_) == 2 and sorted(det.counts_) == [2, 6]
    run = np.array([[0.2, 0.3]] * 3 + [[5.5, 5.5]] * 4 + [[2.5, 0.5]], dtype=np.float32)  # n = 8
    burst = det.score(run)
    n1, N = len(run) - 1, 8
    assert 2 / n1 < 6 / N and np.all(burst[:3] == 0.0)  # the busy training cell is rarer in the run: no burst
    q = n1 / (n1 + N)  # the run's share of run and training flows together
    k, t = 3.0, 0.0  # the cell training never saw: 3 other flows each
    assert burst[3:7] == pytest.approx(k * math.log(k / ((k + t) * q)))  # + t ln(t / e_t) = 0 for t = 0
    assert burst[3] == pytest.approx(3 * math.log(1 + N / n1))
    assert burst[7] == 0.0  # alone in its cell: k = 0
    # both counts matter: 4 of 8 run flows against 2 of 8 training flows in one cell
    k, t = 3.0, 2.0
    run2 = np.array([[2.2, 0.2]] * 4 + [[9.5, 9.5]] * 4, dtype=np.float32)
    expected = k * math.log(k / ((k + t) * q)) + t * math.log(t / ((k + t) * (1 - q)))
    assert det.score(run2)[0] == pytest.approx(expected)


def test_only_groups_of_min_flows_count():
    det = BurstDetector(cell=1.0, min_flows=10).fit(np.zeros((50, 2), dtype=np.float32))
    filler = np.arange(200, dtype=np.float32)[:, None] * np.array([[3.0, 0.0]], dtype=np.float32) + 10
    for size, flagged in ((9, False), (10, True)):
        run = np.vstack([filler, np.full((size, 2), -5.5, dtype=np.float32)])  # a group in an unseen cell
        burst = det.score(run)
        assert bool(np.all(burst[-size:] > 0)) is flagged and np.all(burst[:-size] == 0)
    assert np.all(det.score(np.full((9, 2), -5.5, dtype=np.float32)) == 0)  # a run smaller than a group


def test_rows_in_one_cell_share_a_hash_and_distinct_cells_do_not():
    rng = np.random.default_rng(0)
    det = BurstDetector(cell=0.5).fit(rng.normal(size=(10, 4)))
    grid = np.stack(np.meshgrid(*[np.arange(-6, 6)] * 4, indexing="ij"), axis=-1).reshape(-1, 4) * 0.5 + 0.25
    hashes = det.cell_hashes(grid)
    assert len(np.unique(hashes)) == len(grid)  # 20,736 distinct cells, no collision
    np.testing.assert_array_equal(det.cell_hashes(grid + 0.2), hashes)  # moved inside their cells
    with pytest.raises(ValueError, match="expects 4 encoded features"):
        det.cell_hashes(grid[:, :3])


def test_false_alarm_rate_stays_near_its_level_for_several_run_sizes_and_a_campaign_is_found():
    rng = np.random.default_rng(1)
    X_train, centres, weights = traffic(rng, 20_000)
    det = BurstDetector(cell=0.5, false_alarm_rate=0.02).fit(X_train)
    det.calibrate(more_traffic(np.random.default_rng(2), 5_000, centres, weights))
    for size in (200, 2_000, 10_000):  # validation was one run of 5,000
        shares = [(det.score(more_traffic(np.random.default_rng(100 + seed), size, centres, weights))
                   > det.threshold_).mean() for seed in range(5)]
        assert np.mean(shares) <= 0.03, (size, shares)
    # a campaign: 150 near-identical flows of a kind training never had, inside a run of 5,000 ordinary ones
    r = np.random.default_rng(7)
    ordinary = more_traffic(r, 4_850, centres, weights)
    campaign = np.full((150, centres.shape[1]), 20.1) + r.normal(0, 0.02, (150, centres.shape[1]))
    run = np.vstack([ordinary, campaign])
    burst = det.score(run)
    assert np.all(burst[-150:] > 100 * det.threshold_)
    assert (burst[:-150] > det.threshold_).mean() <= 0.03


def test_order_of_the_run_does_not_matter_and_invalid_rows_are_not_counted():
    rng = np.random.default_rng(4)
    X_train, centres, weights = traffic(rng, 5_000)
    det = BurstDetector().fit(X_train)
    run = np.vstack([X_train[:300], np.full((30, X_train.shape[1]), 9.0)])
    burst = det.score(run)
    assert np.all(burst[-30:] > 0)
    perm = rng.permutation(len(run))
    np.testing.assert_array_equal(det.score(run[perm]), burst[perm])
    valid = np.ones(len(run), bool)
    valid[-30:-12] = False  # 18 of the 30 identical flows are invalid rows: not counted, scored 0
    masked = det.score(run, valid)
    assert np.all(masked[-30:-12] == 0.0)
    assert 0.0 < masked[-1] < burst[-1]  # a group of 12 is left
    valid[-12:-3] = False
    assert np.all(det.score(run, valid)[-3:] == 0.0)  # 3 left: fewer than min_flows
    assert det.score(run[:1]).tolist() == [0.0]  # a run of one has no others


def test_huge_values_hash_without_overflow_and_calibration_uses_the_ordinary_flows():
    rng = np.random.default_rng(6)
    X_train, centres, weights = traffic(rng, 5_000)
    det = BurstDetector().fit(X_train)
    run = np.vstack([X_train[:100], np.full((15, X_train.shape[1]), 1e30, dtype=np.float32)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        burst = det.score(run)
    assert np.all(burst[-15:] > 0) and len(set(det.cell_hashes(run[-15:]).tolist())) == 1
    # validation with a planted campaign among the flows that are not ordinary: it does not raise the threshold
    X_val = np.vstack([more_traffic(rng, 3_000, centres, weights), np.full((200, X_train.shape[1]), 30.0)])
    ordinary = np.arange(len(X_val)) < 3_000
    low = det.calibrate(X_val, ordinary)
    high = det.calibrate(X_val, np.ones(len(X_val), bool))
    assert low >= det.large_run_bound() == pytest.approx(2.054**2 / 2, rel=1e-3)  # z(0.98) = 2.054
    assert high > low  # the campaign's flows make the top 2 % when they are counted


def test_round_trip_and_damaged_arrays_refused():
    rng = np.random.default_rng(5)
    X_train, _, _ = traffic(rng, 3_000)
    det = BurstDetector(cell=0.5, false_alarm_rate=0.05).fit(X_train)
    det.calibrate(X_train[:1000])
    again = BurstDetector.from_dict(det.to_dict(), det.arrays())
    run = np.vstack([X_train[:500], np.full((30, X_train.shape[1]), -7.0)])
    np.testing.assert_array_equal(again.score(run), det.score(run))
    assert again.threshold_ == det.threshold_ and again.to_dict() == det.to_dict()
    arrays = det.arrays()
    with pytest.raises(ValueError, match="do not fit together"):
        BurstDetector.from_dict(det.to_dict(), {**arrays, "burst.counts": arrays["burst.counts"][:-1]})
    with pytest.raises(ValueError, match="sorted and distinct"):
        BurstDetector.from_dict(det.to_dict(), {**arrays, "burst.cells": arrays["burst.cells"][::-1],
                                                "burst.counts": arrays["burst.counts"][::-1]})
    with pytest.raises(ValueError, match="must be odd"):
        BurstDetector.from_dict(det.to_dict(), {**arrays, "burst.multipliers": arrays["burst.multipliers"] + 1})
    with pytest.raises(ValueError, match="threshold"):
        BurstDetector.from_dict({**det.to_dict(), "threshold": float("nan")}, arrays)
    with pytest.raises(ValueError, match="cell size"):
        BurstDetector(cell=0.0)
    with pytest.raises(ValueError, match="min_flows"):
        BurstDetector(min_flows=1)


def test_calibration_scores_only_the_member_flows_and_survives_a_rare_normal_class():
    rng = np.random.default_rng(8)
    X_train, centres, weights = traffic(rng, 5_000)
    det = BurstDetector().fit(X_train)
    X_val = np.vstack([more_traffic(rng, 3_000, centres, weights), np.full((200, X_train.shape[1]), 30.0)])
    members = np.arange(len(X_val)) < 3_000  # the campaign's flows are not in the file (e.g. called attacks)
    everyone = np.ones(len(X_val), bool)
    assert det.calibrate(X_val, everyone, members) < det.calibrate(X_val, everyone, everyone)
    rare = np.zeros(len(X_val), bool)
    rare[0] = True  # one ordinary flow: most random files hold none, and that must not fail
    assert det.calibrate(X_val, rare) >= det.large_run_bound()
    with pytest.raises(ValueError, match=r"false_alarm_rate must be in \(0, 0.5\)"):
        BurstDetector(false_alarm_rate=0.5)
