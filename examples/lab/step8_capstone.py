"""Step 8 - capstone: an intrusion-detection network on NSL-KDD that sends its uncertain flows to a person.

Everything goes through the triage application's public API (``nids_triage``): the network of steps 4-7
(two ReLU layers with dropout, He init, Adam, mini-batches, early stopping on a validation split) is trained
on KDDTrain+ to tell the 22 attack names apart; the task label (normal, DoS, Probe, R2L, U2R) gets the sum of
its attack names' probabilities. Every choice after training is made on a stratified validation split of
KDDTrain+ only, never on the test files:

    temperature   p = softmax(z / T), T minimising the validation NLL (kept only if the ECE does not worsen)
    ECE           sum over 15 confidence bins b of |B_b|/n * |accuracy(B_b) - mean confidence(B_b)|
    novelty       d(x) = (h(x) - mu_c)^T S^-1 (h(x) - mu_c) in the last hidden layer, c = predicted class;
                  threshold = the 98 % quantile of d on validation flows
    burst         b(x) = k ln(k / e_k) + t ln(t / e_t): k other flows of the scored file and t training flows in
                  x's cell of feature space (side 0.5 standard deviations), e_k, e_t their expected split if file
                  and training shared one rate; groups of >= 10 flows, flows predicted normal only; threshold =
                  98 % quantile on normal validation flows at several file sizes, at least z^2 / 2 = 2.11
    risk          r = max((1 - confidence) / (1 - t_conf), d / t_novelty, b / t_burst);  defer when r > 1,
                  t_conf chosen so that at most the review budget (14 %) of validation flows is deferred

Then KDDTest+ and KDDTest-21 (its hard records) are scored: accuracy of all flows, the share flagged for
review, the accuracy of the auto-decided and of the flagged flows, the reason for every deferral, how the 17
attack types never seen in training fare, and the risk-coverage trade-off against a ranking by softmax
confidence alone.

    BARENET_DATA=/path/to/data python examples/lab/step8_capstone.py [--members 2] [--epochs 10] [--seed 0]
                                                                      [--fast] [--plot-dir DIR]

NSL-KDD has no synthetic stand-in: without ``$BARENET_DATA/nsl-kdd`` the step says how to get the files and
exits without error.
"""
from __future__ import annotations

import time
from pathlib import Path

import labkit as lk
import numpy as np

from nids_triage import (
    REASONS,
    TEST_ONLY_ATTACKS,
    DataNotFoundError,
    TrainConfig,
    TriageModel,
    labels_for_task,
    load_nsl_kdd,
    risk_coverage,
)

LAB_CLAIM_SHARE = 0.14  # "about 14 % of flows were flagged for review"
REVIEW_BUDGET = 0.14
BUDGET = f"{100 * REVIEW_BUDGET:.0f} %"
REVIEW_SHARES = (0.0, 0.05, 0.10, 0.14, 0.20, 0.30)
FAST_TRAIN_ROWS = 3000
SPLITS = {"test+": "KDDTest+", "test-21": "KDDTest-21"}


def skip(why: str, tried=()) -> None:
    print(f"  SKIPPED: {why}.")
    if tried:
        print("  places tried:")
        for place in tried:
            print(f"    {place}")
    print("  This step needs the real NSL-KDD files; unlike the image steps it has no synthetic stand-in.")
    print("  To run it, put KDDTrain+.txt, KDDTest+.txt and KDDTest-21.txt (or .txt.gz) in <folder>/nsl-kdd/ and run")
    print("      BARENET_DATA=<folder> python examples/lab/step8_capstone.py")
    print("  The files are checked against the SHA-256 values pinned in nids_triage.datasets.SHA256;")
    print("  origin: https://www.unb.ca/cic/datasets/nsl.html (public mirrors: see docs/nids-triage.md).")


def load_data(seed: int, fast: bool):
    """(train table, {split: test table}, a description of the training rows) or None with a message."""
    root = lk.data_dir()
    if root is None:
        skip("BARENET_DATA is not set")
        return None
    try:
        train = load_nsl_kdd("train", root, download=False)
        tests = {split: load_nsl_kdd(split, root, download=False) for split in SPLITS}
    except DataNotFoundError as exc:
        skip(f"no usable NSL-KDD files under {root / 'nsl-kdd'}",
             [line.strip() for line in str(exc).splitlines() if line.startswith("  - ")])
        return None
    what = f"all {len(train):,} flows"
    if fast:  # a seeded random slice: every run with the same seed trains on the same rows
        rows = np.sort(np.random.default_rng(seed).choice(len(train), FAST_TRAIN_ROWS, replace=False))
        train = train.subset(rows)
        what = f"a random {len(train):,} of its flows (--fast)"
    return train, tests, what


def share(mask) -> float:
    mask = np.asarray(mask, dtype=bool)
    return float(mask.mean()) if mask.size else float("nan")


def pct(x) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:.1f} %"


def evaluate(model, table):
    """Score one labelled file and gather everything the step prints and plots."""
    scored = model.score(table)
    truth = model.true_labels(table)
    valid = scored.labels != ""
    correct = (scored.labels == truth) & valid
    flagged = np.asarray(scored.needs_review, dtype=bool)
    unseen = np.isin(table.attack, sorted(TEST_ONLY_ATTACKS))
    confidence = np.where(valid, scored.confidence, 0.0)
    reasons = {r: sum(r in rs for rs in scored.reasons) for r in REASONS}
    only_novel = np.array([rs == ["novel"] for rs in scored.reasons], dtype=bool)
    return {
        "n": len(table), "scored": scored, "correct": correct, "flagged": flagged, "confidence": confidence,
        "accuracy": share(correct), "flag_share": share(flagged),
        "auto_accuracy": share(correct[~flagged]), "flag_accuracy": share(correct[flagged]),
        "reasons": reasons, "only_novel": only_novel,
        "over_risk": share(np.asarray(scored.risk) > 1.0),  # would be deferred without the per-file budget cap
        "hard": share([bool({"invalid_value", "unseen_category"} & set(rs)) for rs in scored.reasons]),
        "unseen": unseen,
        # the rankings compared in the risk-coverage table (riskiest first)
        "rank": {"confidence only": 1.0 - confidence,
                 "novelty only": np.asarray(scored.novelty, dtype=np.float64),
                 "burst only": np.asarray(scored.burst, dtype=np.float64),
                 "risk = max(all)": np.asarray(scored.risk, dtype=np.float64)},
    }


def category_counts(table) -> dict:
    cats = labels_for_task(table.attack, "5class")
    return {c: int((cats == c).sum()) for c in ("normal", "DoS", "Probe", "R2L", "U2R")}


def main(argv=None):
    parser = lk.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=None,
                        help="ensemble members (default 2; 1 with --fast; the application's default is 5)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="maximum epochs per member (default 10; 2 with --fast)")
    args = parser.parse_args(argv)
    members = args.members or (1 if args.fast else 2)
    epochs = args.epochs or (2 if args.fast else 10)

    lk.heading("Step 8 - Capstone: intrusion triage on NSL-KDD")
    loaded = load_data(args.seed, args.fast)
    if loaded is None:
        return
    train_table, tests, what = loaded
    describe_data(train_table, tests, what, args.fast)
    model, config, train_seconds = train_model(train_table, args.seed, members, epochs)
    describe_training(model, config, len(train_table), train_seconds)
    describe_calibration(model, config)
    results = {split: evaluate(model, table) for split, table in tests.items()}
    report_test_files(results)
    report_reasons(results)
    report_unseen_types(results)
    report_risk_coverage(results)

    if args.plot_dir:
        plot(model, results, args.plot_dir)


def describe_data(train_table, tests, what, fast):
    """The files: sizes, category mix, and the attack types only the test files hold."""
    print("  data: NSL-KDD from $BARENET_DATA/nsl-kdd: 41 features per flow (38 numeric, 3 categorical) and its "
          "attack name")
    print(f"  training on {Path(train_table.source).name}: {what}")
    print("  testing on " + ", ".join(f"{Path(t.source).name} ({len(t):,} flows)" for t in tests.values()))
    rows = []
    for name, table in [("KDDTrain+" + (" slice" if fast else ""), train_table)] + \
                       [(SPLITS[s], t) for s, t in tests.items()]:
        counts = category_counts(table)
        n_unseen = int(np.isin(table.attack, sorted(TEST_ONLY_ATTACKS)).sum())
        rows.append([name, f"{len(table):,}"] + [pct(v / len(table)) for v in counts.values()]
                    + [f"{len(set(table.attack.tolist())) - 1}", f"{n_unseen:,}"])
    lk.table(["file", "flows", "normal", "DoS", "Probe", "R2L", "U2R", "attack types", "never-seen types"], rows)
    lk.note(f"the test files are not a fresh sample of the training distribution: R2L is rare in training and "
            f"common in test, and {len(TEST_ONLY_ATTACKS)} attack types appear only in test. A network cannot "
            "be right about what it never saw, so it has to know when to ask")


def train_model(train_table, seed, members, epochs):
    """Train the 5-class triage model through the application's API; print the network it built."""
    config = TrainConfig(review_budget=REVIEW_BUDGET, seed=seed, members=members, epochs=epochs)
    lk.heading("The network (one ensemble member)", "-")
    print(f"  TriageModel.train(KDDTrain+, '5class', TrainConfig(review_budget={REVIEW_BUDGET}, seed={seed}, "
          f"members={members}, epochs={epochs}))")
    tic = time.perf_counter()
    model = TriageModel.train(train_table, "5class", config)
    train_seconds = time.perf_counter() - tic
    net = model.network
    encoder = model.encoder
    print(f"  inputs: the 41 features encoded to {len(encoder.feature_names_)} columns (log1p on counts, standardised "
          "with the")
    print("          training part's means and stds; one-hot protocol_type, service, flag)")
    print(f"  outputs: one logit per attack name seen in the training part ({len(net.classes_)}, normal included); "
          "the task's")
    print("           probability of a category is the sum of its attack names' probabilities")
    for line in net.summary(print_fn=lambda _: None).splitlines():
        print("  " + line.rstrip())
    lk.note(f"this lab trains {members} member{'s' if members > 1 else ''} to stay around a minute on 2 cores; "
            "the application's default "
            f"is a {TrainConfig().members}-member ensemble (TrainConfig().members) whose averaged logits vary less "
            "from seed to seed")
    return model, config, train_seconds


def describe_training(model, config, n_flows, train_seconds):
    """The validation split and every member's training history."""
    lk.heading("Training on KDDTrain+ (a validation split of it decides everything)", "-")
    report = model.report
    n_val = report["n_validation"]
    print(f"  split stratified by attack name, {100 * config.validation_fraction:.0f} % held out: "
          f"{n_flows - n_val:,} train, {n_val:,} validation flows")
    print(f"  Adam lr {config.learning_rate:g}, batch {config.batch_size}, dropout {config.dropout}, balanced class "
          f"weights, early stopping on the validation loss (patience {config.patience})")
    rows = []
    for i, member in enumerate(model.networks):
        h = member.history_
        best = int(np.argmin(h["val_loss"]))
        rows.append([str(i), str(len(h)), h.stop_reason, f"{h['loss'][-1]:.4f}", f"{h['val_loss'][best]:.4f}",
                     str(best + 1), f"{h['val_accuracy'][best]:.4f}"])
    lk.table(["member", "epochs", "stopped", "train loss", "best val loss", "at epoch", "val acc (names)"], rows)
    print(f"  training and calibration took {lk.seconds(train_seconds)}")


def describe_calibration(model, config):
    """Temperature scaling and the three thresholds, all chosen on the validation split."""
    report = model.report
    lk.heading("Calibration on the validation split", "-")
    before, after = report["calibration_before"], report["calibration_after"]
    fitted = after.get("fitted_temperature", model.temperature)
    lk.table(["", "T", "NLL", "ECE (15 bins)"],
             [["before (T = 1)", "1", f"{before['nll']:.4f}", f"{before['ece']:.4f}"],
              ["after", f"{model.temperature:.4f}", f"{after['nll']:.4f}", f"{after['ece']:.4f}"]])
    if model.temperature == 1.0 and fitted != 1.0:
        lk.note(f"the NLL-optimal T = {fitted:.4f} made the validation ECE worse, so T = 1 was kept")
    else:
        lk.note(f"T {'> 1 softens' if model.temperature > 1 else '< 1 sharpens'} the probabilities: the raw network "
                f"was {'over' if model.temperature > 1 else 'under'}-confident on validation")
    policy = model.policy
    print(f"  deferral policy for a {BUDGET} review budget, chosen on validation:")
    print(f"      novelty threshold    t_novelty = {policy.novelty_threshold:.2f}   "
          f"(the {100 * (1 - config.novelty_false_alarm):.0f} % quantile of d on validation)")
    print(f"      burst threshold      t_burst   = {policy.burst_threshold:.2f}   "
          f"(the {100 * (1 - config.burst_false_alarm):.0f} % quantile of b on normal validation flows, or z^2 / 2)")
    print(f"      confidence threshold t_conf    = {policy.confidence_threshold:.4f}   "
          f"(the largest that keeps validation deferrals <= {BUDGET})")
    print(f"  validation: accuracy {report['validation_accuracy']:.4f}, {pct(report['validation_review_share'])} "
          f"flagged, accuracy of the auto-decided flows {report['validation_auto_accuracy']:.4f}")


def report_test_files(results):
    """Accuracy of all, auto-decided and flagged flows on each test file."""
    lk.heading("On the test files (never used for a choice)", "-")
    names = [SPLITS[s] for s in results]
    lk.table(["", *names], [
        ["flows", *[f"{r['n']:,}" for r in results.values()]],
        ["accuracy, all flows", *[f"{r['accuracy']:.4f}" for r in results.values()]],
        ["flagged for review", *[f"{r['flagged'].sum():,} = {pct(r['flag_share'])}" for r in results.values()]],
        ["accuracy, auto-decided", *[f"{r['auto_accuracy']:.4f}" for r in results.values()]],
        ["accuracy, flagged (model's guess)", *[f"{r['flag_accuracy']:.4f}" for r in results.values()]],
        ["risk > 1 (before the budget cap)", *[pct(r["over_risk"]) for r in results.values()]],
    ])
    main_r = results["test+"]
    print(f"\n  lab claim : about {100 * LAB_CLAIM_SHARE:.0f} % of flows flagged for human review")
    print(f"  measured  : {pct(main_r['flag_share'])} of KDDTest+ flagged ({pct(results['test-21']['flag_share'])} "
          f"of KDDTest-21); on KDDTest+ accuracy {main_r['auto_accuracy']:.4f}")
    print(f"              on the auto-decided flows vs {main_r['flag_accuracy']:.4f} on the flagged ones "
          f"(all flows: {main_r['accuracy']:.4f})")
    lk.note(f"the share itself is no discovery: the {BUDGET} budget was set on validation and is enforced per file "
            "(when more flows exceed risk 1, only the riskiest budget's worth is deferred; hard reasons always are). "
            "What the budget buys is the gap between the two accuracies")
    capped = [SPLITS[s] for s, r in results.items() if r["over_risk"] > r["flag_share"]]
    if capped:
        lk.note(f"on {' and '.join(capped)} more flows exceed risk 1 than the budget allows (the test files are "
                "shifted away from the training distribution), so the cap auto-decides some flows below t_conf: "
                "the budget holds the workload, not the accuracy")


def report_reasons(results):
    """How many flows each deferral reason sent to review."""
    names = [SPLITS[s] for s in results]
    lk.heading("Why flows were deferred (a flow may carry several reasons)", "-")
    lk.table(["reason", *names], [[reason, *[f"{r['reasons'][reason]:,}" for r in results.values()]]
                                  for reason in REASONS])
    lk.note("unseen_category: a service/flag never seen in training, always deferred; novel: d above t_novelty "
            "or b above t_burst; "
            "low_confidence: calibrated confidence below t_conf; disagreement needs Monte-Carlo dropout "
            "(score(mc_samples=N)), not used here")
    for split, r in results.items():
        n_only = int(r["only_novel"].sum())
        lk.note(f"{SPLITS[split]}: {n_only:,} flagged flows carry 'novel' alone (confident, but far from their "
                "class in the hidden space or one of a burst)"
                + (f"; the model's guess was right on {pct(share(r['correct'][r['only_novel']]))} of them"
                   if n_only else ""))


def report_unseen_types(results):
    """The attack types training never had: reviewed, flagged as attack, or missed."""
    names = [SPLITS[s] for s in results]
    lk.heading(f"The {len(TEST_ONLY_ATTACKS)} attack types never seen in training", "-")
    rows = []
    for r in results.values():
        u, pred_attack = r["unseen"], r["scored"].labels != "normal"
        rows.append([f"{u.sum():,}", pct(share(r["flagged"][u])), pct(share(pred_attack[u] & ~r["flagged"][u])),
                     pct(share(r["flagged"][u] | pred_attack[u])), pct(share(~r["flagged"][u] & ~pred_attack[u])),
                     pct(share(r["correct"][u]))])
    lk.table(["file", "flows", "sent to review", "auto-flagged as attack", "caught (either)",
              "missed (auto 'normal')", "category right"], [[n, *row] for n, row in zip(names, rows)])


def report_risk_coverage(results):
    """Auto-decided accuracy against the share reviewed, for each ranking of the flows."""
    main_r = results["test+"]
    lk.heading("Risk-coverage: accuracy of the auto-decided flows when the riskiest share goes to review", "-")
    curves = {split: {k: risk_coverage(v, r["correct"], REVIEW_SHARES)["auto_accuracy"] for k, v in r["rank"].items()}
              for split, r in results.items()}
    rankings = list(main_r["rank"])
    short = {"confidence only": "conf", "novelty only": "novelty", "burst only": "burst", "risk = max(all)": "risk"}
    headers = ["reviewed"] + [f"{SPLITS[s][3:]} {short[k]}" for s in results for k in rankings]
    rows = [[pct(s)] + [f"{curves[split][k][i]:.4f}" for split in results for k in rankings]
            for i, s in enumerate(REVIEW_SHARES)]
    lk.table(headers, rows)
    lk.note("conf: flows ranked by 1 - calibrated confidence (softmax only); novelty: by the Mahalanobis distance d; "
            "burst: by b (0 for flows predicted as attacks); risk: by max of the three scaled signals, what the "
            "application uses")
    i14 = REVIEW_SHARES.index(REVIEW_BUDGET)
    for split, r in results.items():
        c = curves[split]
        k = round(REVIEW_BUDGET * r["n"])
        top = {name: np.argsort(-rank, kind="stable")[:k] for name, rank in r["rank"].items()}
        unseen_in_top = {name: r["unseen"][idx].sum() / max(r["unseen"].sum(), 1) for name, idx in top.items()}
        gain = c["risk = max(all)"][i14] - c["confidence only"][i14]
        lk.note(f"{SPLITS[split]}, {BUDGET} reviewed: auto accuracy {c['confidence only'][i14]:.4f} ranked by "
                f"confidence alone, {c['risk = max(all)'][i14]:.4f} by the combined risk ({gain:+.4f}); the reviewed "
                f"flows hold {pct(unseen_in_top['confidence only'])} of the never-seen-type flows ranked by "
                f"confidence, {pct(unseen_in_top['risk = max(all)'])} ranked by the combined risk")
    gains = [curves[s]["risk = max(all)"][i14] - curves[s]["confidence only"][i14] for s in results]
    n_novel = main_r["reasons"]["novel"]
    also_low = sum({"novel", "low_confidence"} <= set(rs) for rs in main_r["scored"].reasons)
    if not n_novel:
        overlap = "no flow of KDDTest+ was flagged 'novel'"
    else:
        overlap = (f"{also_low:,} of the {n_novel:,} flows flagged 'novel' on KDDTest+ are also low in confidence, "
                   + ("so the rankings pick mostly the same flows" if also_low >= 0.5 * n_novel
                      else "so novelty and bursts change which flows are reviewed"))
    if max(abs(g) for g in gains) < 0.005:
        verdict = "measured here, novelty and bursts add little to softmax confidence at this budget"
    elif min(gains) > 0:
        verdict = ("measured here, adding novelty and bursts to softmax confidence raises the accuracy of the "
                   "auto-decided flows")
    elif max(gains) < 0:
        verdict = ("measured here, adding novelty and bursts to softmax confidence lowers the accuracy of the "
                   "auto-decided flows")
    else:
        verdict = "measured here, adding novelty and bursts helps on one test file and hurts on the other"
    worse = [name for name in ("novelty only", "burst only")
             if all(curves[s][name][i14] < curves[s]["confidence only"][i14] for s in results)]
    lk.note(f"{verdict}: {overlap}"
            + (f"; {' and '.join(short[w] for w in worse)} alone rank{'s' if len(worse) == 1 else ''} worse than "
               "confidence alone" if worse else ""))
    if any(r["hard"] > 0 for r in results.values()):
        lk.note("the operating point differs from the 14 % row: flows with an unseen category or an invalid value "
                "are deferred whatever their risk")


def plot(model, results, plot_dir):
    plt = lk.pyplot()
    r = results["test+"]
    t_conf = model.policy.confidence_threshold
    bins = np.linspace(0.2, 1.0, 33)  # five classes: the top probability is at least 1/5
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (title, mask) in zip(axes, (("auto-decided", ~r["flagged"]), ("flagged for review", r["flagged"]))):
        conf = np.clip(r["confidence"][mask], bins[0], bins[-1])
        ok = r["correct"][mask]
        ax.hist([conf[ok], conf[~ok]], bins=bins, stacked=True, color=["tab:green", "tab:red"],
                label=[f"correct ({ok.sum():,})", f"wrong ({(~ok).sum():,})"])
        ax.axvline(t_conf, color="k", ls="--", lw=1, label=f"t_conf = {t_conf:.3f}")
        ax.set(title=f"KDDTest+: {title} ({mask.sum():,} flows)", xlabel="calibrated confidence", yscale="log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("flows (log scale)")
    lk.save_figure(fig, plot_dir, "step8_confidence.png")

    shares = np.linspace(0.0, 0.5, 51)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    styles = {"risk = max(all)": "-", "confidence only": "--", "novelty only": ":", "burst only": "-."}
    for ax, (split, res) in zip(axes, results.items()):
        for name, ls in styles.items():
            acc = risk_coverage(res["rank"][name], res["correct"], shares)["auto_accuracy"]
            ax.plot(shares, acc, ls=ls, color="tab:blue" if name.startswith("risk") else "tab:gray", label=name)
        ax.plot([res["flag_share"]], [res["auto_accuracy"]], "o", color="tab:red",
                label=f"operating point ({pct(res['flag_share'])})")
        ax.axvline(REVIEW_BUDGET, color="k", lw=0.8, alpha=0.5)
        ax.set(title={"test+": "KDDTest+", "test-21": "KDDTest-21"}[split], xlabel="share of flows reviewed",
               ylabel="accuracy of auto-decided flows")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    val = model.report["risk_coverage"]
    axes[0].plot(val["review_share"], val["auto_accuracy"], color="tab:orange", lw=1, label="validation (risk)")
    axes[0].legend(fontsize=7)
    lk.save_figure(fig, plot_dir, "step8_risk_coverage.png")


if __name__ == "__main__":
    main()
