"""Which signal should pick the flows a person reviews? Candidate deferral signals measured side by side.

The triage model defers a flow when  risk = max((1 - confidence) / (1 - t_conf), novelty / t_nov,
burst / t_burst)  > 1, with the thresholds set on a validation split of KDDTrain+, and at scoring time sends at
most the budget's share of a run's flows (the riskiest of those over 1) to review; flows with a hard reason
(unseen category, invalid value) go to review on top. With confidence and novelty alone that reached 87 %
accuracy on the auto-decided flows of KDDTest+ at a 14 % budget (5 categories), short of 90 %. This script
records what was tried for the second signal, each thresholded on validation exactly like the novelty signal
(its 98 % quantile) and combined the same way:

    mahalanobis   (h(x) - mu_c)^T S^-1 (h(x) - mu_c) in the networks' last hidden layers (the tool's novelty)
    nn_input      squared distance to the nearest training flow, in the encoded input space (122 features):
                  a flow the networks map onto a known class can still be unlike every training flow
    nn_class      the same, to the nearest training flow of the predicted attack name
    run_density   how over-represented a flow's neighbourhood is in the scored run itself:
                  (other run flows within r / run size) / ((training flows within r + 1) / training size),
                  with squared distance r^2 = 0.05 (r ~ 0.22 in standardised units: near-identical flows).
                  Needs no labels; it targets bursts of near-identical new flows (a campaign)
    burst         the tool's burst statistic (nids_triage/burst.py): the same idea with cell counts instead of
                  training flows and a log-likelihood ratio instead of a ratio, for the flows called normal against
                  the normal training flows, groups of >= 10 only; thresholded by the tool (t_burst)

For each it prints the AUROC of the signal for "the prediction is wrong", the auto-decided accuracy when that
signal alone decides (risk = signal / its threshold, the same cap), and with the confidence risk (the max of
the confidence risk and this signal's risk); then the tool itself (all three of its signals).

Last, a change to the predictions rather than to the signal: the class priors re-estimated on the scored run by
EM (Saerens, Latinne & Decaestecker, 2002), for KDDTest+ whose mix of attacks is far from KDDTrain+'s. With
p_val(c) the networks' mean attack-name probability on validation (their implied prior: they were trained with
balanced class weights), iterate  q(c|x) ~ p(c|x) pi(c) / p_val(c),  pi(c) = mean over the run of q(c|x);
then the tool's rule (confidence from q, the same thresholds and novelty). It assumes only the priors moved
(p(x|c) unchanged), which the test file's new attack types break.

    BARENET_DATA=../shared/data python examples/triage_signals.py [--seed 0] [--budget 0.14]

Takes ~2 minutes on 2 cores (the nearest-neighbour searches are brute force, in float64 blocks).
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

import barenet as bn
from nids_triage import TrainConfig, TriageModel, load_nsl_kdd
from nids_triage.model import training_split
from nids_triage.policy import cap_to_budget

FALSE_ALARM = 0.02  # as the tool's novelty threshold: 2 % of validation flows exceed it
RADIUS_SQ = 0.05  # squared distance in standardised feature space: near-identical flows


def neighbour_stats(queries, reference, ref_labels, query_labels, radius_sq, block=500):
    """Per query row: nearest squared distance to a reference row, the same to a row of its label, and the
    number of reference rows within squared distance ``radius_sq``. In float64: with float32, |q|^2 - 2 q.r + |r|^2
    of an unusual (large-norm) row loses ~0.05 to rounding, as much as the radius itself."""
    queries = np.asarray(queries, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    nearest = np.empty(len(queries))
    nearest_same = np.full(len(queries), np.inf)
    within = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), block):
        q = queries[start:start + block]
        d = ref_sq[None, :] - 2.0 * (q @ reference.T)  # |q - r|^2 = |q|^2 - 2 q.r + |r|^2
        d += np.einsum("ij,ij->i", q, q)[:, None]
        np.maximum(d, 0.0, out=d)
        nearest[start:start + block] = d.min(axis=1)
        within[start:start + block] = (d <= radius_sq).sum(axis=1)
        if ref_labels is not None:
            for label in np.unique(query_labels[start:start + block]):
                rows = np.flatnonzero(query_labels[start:start + block] == label)
                cols = ref_labels == label
                if cols.any():
                    nearest_same[start + rows] = d[np.ix_(rows, np.flatnonzero(cols))].min(axis=1)
    return nearest, nearest_same, within


def auroc(score, positive):
    """Probability that a random wrong prediction scores above a random right one (ties count half)."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]  # average rank within ties
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auto_accuracy(risk, correct, hard, budget):
    """Accuracy of the auto-decided flows under the tool's rule (``DeferralPolicy.decide``): flows with risk > 1
    are deferred, at most ceil(budget * n) of them (the riskiest), and flows with a hard reason on top."""
    deferred = cap_to_budget((risk > 1.0) & ~hard, risk, budget) | hard
    return float(correct[~deferred].mean())


def adapt_priors(p_run, p_validation, iterations=100):
    """EM estimate of the run's class priors (Saerens et al., 2002): the posteriors re-weighted by pi / prior."""
    prior = p_validation.mean(axis=0)
    pi = prior.copy()
    for _ in range(iterations):
        q = p_run * (pi / prior)
        q /= q.sum(axis=1, keepdims=True)
        pi = q.mean(axis=0)
    return q, pi


def parse_and_train(description, argv=None):
    """The start the triage experiments share (this script, triage_ceiling.py, triage_feedback.py): --seed,
    --budget and --data-dir, KDDTrain+ and KDDTest+ loaded, the demo's 5-class model trained on KDDTrain+.
    Returns (args, train table, KDDTest+ table, config, model, start time)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=0.14)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    train, test = load_nsl_kdd("train", args.data_dir), load_nsl_kdd("test+", args.data_dir)
    config = TrainConfig(seed=args.seed, review_budget=args.budget)
    model = TriageModel.train(train, "5class", config)
    print(f"trained 5-class model, seed {args.seed} ({time.perf_counter() - tic:.0f} s)")
    return args, train, test, config, model, tic


def main(argv=None):
    args, train, test, config, model, tic = parse_and_train(__doc__.splitlines()[0], argv)
    part, val, names_part, _ = training_split(train, config)
    X_part = model.encoder.transform(part).X

    signals, outcome, scored_by, encoded_by = {}, {}, {}, {}
    for split, table in (("validation", val), ("KDDTest+", test)):
        encoded = model.encoder.transform(table)
        scored = model.score(table)
        fine_pred = np.asarray(model.network.classes_)[model.logits(encoded.X).argmax(axis=1)]
        nearest, nearest_same, within_train = neighbour_stats(encoded.X, X_part, names_part, fine_pred, RADIUS_SQ)
        _, _, within_run = neighbour_stats(encoded.X, encoded.X, None, None, RADIUS_SQ)
        density = ((within_run - 1) / len(encoded.X)) / ((within_train + 1) / len(X_part))
        signals[split] = {"confidence": 1.0 - np.nan_to_num(scored.confidence, nan=0.0),
                          "mahalanobis": scored.novelty, "nn_input": nearest, "nn_class": nearest_same,
                          "run_density": density, "burst": scored.burst}
        scored_by[split] = scored
        encoded_by[split] = encoded
        outcome[split] = (scored.labels == model.true_labels(table),
                          encoded.unseen_category | encoded.invalid_value | table.bad)
        print(f"signals for {split} ({time.perf_counter() - tic:.0f} s)")

    val_sig, test_sig = signals["validation"], signals["KDDTest+"]
    correct, hard = outcome["KDDTest+"]
    tool_scored, test_X = scored_by["KDDTest+"], encoded_by["KDDTest+"].X
    usable = ~(encoded_by["KDDTest+"].invalid_value | test.bad)  # rows the burst may count (as the tool's score)
    tool_risk = tool_scored.risk
    # the confidence threshold the tool fitted on validation, as a risk scale: r_c = (1 - conf) / (1 - t_conf)
    t_conf = model.policy.confidence_threshold
    r_conf = test_sig["confidence"] / max(1.0 - t_conf, 1e-12)
    print(f"\nKDDTest+, 5 categories: accuracy {correct.mean():.4f}; budget {args.budget:.0%}; "
          f"signals thresholded at their {1 - FALSE_ALARM:.0%} validation quantile\n")
    print("| signal | AUROC for errors | auto-decided accuracy, signal alone | with confidence, max rule |")
    print("| --- | --- | --- | --- |")
    for name, values in test_sig.items():
        if name == "confidence":  # the tool's own confidence threshold
            alone = combined = auto_accuracy(r_conf, correct, hard, args.budget)
        else:
            threshold = (model.policy.burst_threshold if name == "burst"  # the tool's (burst.py, calibrate)
                         else float(np.quantile(val_sig[name], 1.0 - FALSE_ALARM)))
            r_signal = values / max(threshold, 1e-12)
            alone = auto_accuracy(r_signal, correct, hard, args.budget)
            combined = auto_accuracy(np.maximum(r_conf, r_signal), correct, hard, args.budget)
        print(f"| {name} | {auroc(values, ~correct):.3f} | {alone:.4f} | {combined:.4f} |")
    print(f"\nthe tool (confidence, mahalanobis and burst, max rule): auto-decided accuracy "
          f"{auto_accuracy(tool_risk, correct, hard, args.budget):.4f}")
    left = ~correct & ~tool_scored.needs_review
    burst_over = np.asarray(tool_scored.burst) > model.policy.burst_threshold
    pairs = Counter(zip(test.attack[left].tolist(), tool_scored.labels[left].tolist())).most_common(8)
    print("its auto-decided errors, most common (attack name -> predicted): "
          + ", ".join(f"{name} -> {label} {n:,}" for (name, label), n in pairs))
    capped, places = left & (tool_risk > 1.0), int(np.ceil(args.budget * len(left)))
    print(f"  {capped.sum():,} of those {left.sum():,} errors were over a threshold (risk > 1) but lost to the "
          f"budget's cap ({(tool_risk > 1.0).sum():,} flows over a threshold for {places:,} places); over the burst "
          "threshold among them: "
          + ", ".join(f"{name} {int((capped & burst_over & (test.attack == name)).sum()):,}"
                      for name in ("mailbomb", "guess_passwd")))
    # the burst's file is the flows called normal: how many of them share a cell with each campaign flow left
    in_file = usable & (tool_scored.labels == "normal")
    cells, per_cell = np.unique(model.burst.cell_hashes(test_X[in_file]), return_counts=True)
    for name in ("mailbomb", "guess_passwd"):
        rows = left & (test.attack == name) & (tool_scored.labels == "normal")
        where = np.searchsorted(cells, model.burst.cell_hashes(test_X[rows]))
        small = per_cell[where] < model.burst.min_flows
        print(f"  {name} called normal and auto-decided: {rows.sum():,} flows in {len(np.unique(where)):,} cells; "
              f"{int(small.sum()):,} of them in cells the file's normal-called flows fill with fewer than "
              f"{model.burst.min_flows}")
    # the priors re-estimated on the run (EM), then the tool's rule on the re-weighted probabilities
    fine_val = bn.calibrated_proba(model.logits(encoded_by["validation"].X), model.temperature)
    fine_test = bn.calibrated_proba(model.logits(test_X), model.temperature)
    adapted, _ = adapt_priors(fine_test, fine_val)
    task_proba = adapted @ bn.group_matrix(model.groups, len(model.classes))
    truth = np.searchsorted(model.classes, model.true_labels(test))
    adapted_correct = task_proba.argmax(axis=1) == truth
    confidence = task_proba.max(axis=1)
    r_adapted = (1.0 - confidence) / max(1.0 - t_conf, 1e-12)
    alone = auto_accuracy(r_adapted, adapted_correct, hard, args.budget)
    adapted_burst = model.burst.score(test_X, valid=usable & (np.asarray(model.classes)[task_proba.argmax(axis=1)]
                                                              == "normal"))
    combined = auto_accuracy(model.policy.risk(confidence, test_sig["mahalanobis"], adapted_burst), adapted_correct,
                             hard, args.budget)
    print(f"\npriors re-estimated on the run (EM): accuracy {adapted_correct.mean():.4f}; auto-decided accuracy, "
          f"confidence alone {alone:.4f}, with mahalanobis and burst (the tool's rule) {combined:.4f}")
    errors = ~correct
    print(f"\n({errors.sum():,} errors among {len(correct):,} flows; reviewing exactly the errors would leave "
          f"{auto_accuracy(2.0 * errors, correct, hard, args.budget):.4f}; "
          f"{time.perf_counter() - tic:.0f} s in all)")


if __name__ == "__main__":
    main()
