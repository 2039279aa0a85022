"""``nids-triage demo``: the capstone end to end on NSL-KDD.

For each seed: train the 5-class model (review budget 0.14 by default), calibrate and pick the threshold
on validation; recalibrate the same networks for the binary task (``TriageModel.for_task``); evaluate both on KDDTest+
and KDDTest-21. With the first seed's 5-class
model it then scores KDDTest+ like ``nids-triage score`` (scored CSV + review queue), lets a simulated
analyst close some queued flows with their true attack names, and writes the HTML reports. The printed
summary gives mean ± sample standard deviation over the seeds.

Files in --out-dir: model-5class.npz, model-binary.npz, metrics-<task>-<split>.json (first seed),
report-test+.html, report-test-21.html, scored-test+.csv, reviews.db, summary.json (every seed's numbers).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli import CliError
from .commands import evaluate_model, score_to_queue, write_json, write_text
from .config import TrainConfig
from .datasets import load_nsl_kdd
from .evaluation import aggregate
from .model import TriageModel
from .report import render_report
from .review_queue import ReviewQueue

TASKS = ("5class", "binary")
SPLITS = ("test+", "test-21")
SPLIT_NAMES = {"test+": "KDDTest+", "test-21": "KDDTest-21"}
KEYS = ("accuracy", "macro_f1", "review_share", "auto_accuracy", "review_accuracy", "unseen_caught", "ece",
        "over_threshold_share", "over_threshold_auto_accuracy")
VAL_KEYS = ("ece_before", "ece_after", "nll_before", "nll_after", "temperature")


def run(args) -> int:
    start = time.perf_counter()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = 1 if args.fast else max(1, int(args.seeds))
    data = {s: load_nsl_kdd(s, data_dir=args.data_dir, download=not args.no_download)
            for s in ("train", *SPLITS)}
    runs, first = [], {}
    for seed in _progress(range(seeds), "seeds"):
        config = TrainConfig(review_budget=args.review_budget, seed=seed, epochs=3 if args.fast else 10)
        t0 = time.perf_counter()
        models = {"5class": TriageModel.train(data["train"], "5class", config)}
        models["binary"] = models["5class"].for_task(data["train"], "binary")
        seconds = time.perf_counter() - t0
        for task in TASKS:
            model = models[task]
            record = {"seed": seed, "task": task, "train_seconds": seconds,
                      "validation": _flat_validation(model.report)}
            for split in SPLITS:
                m = evaluate_model(model, data[split], split, model_path=out / f"model-{task}.npz")
                record[split] = {**{k: m[k] for k in KEYS if k in m},
                                 "unseen_caught": m["unseen_attacks"]["share_flagged_or_reviewed"],
                                 "unseen_count": m["unseen_attacks"]["count"], "n_flows": m["n_flows"],
                                 "over_threshold_share": m["threshold_only"]["review_share"],
                                 "over_threshold_auto_accuracy": m["threshold_only"]["auto_accuracy"]}
                if seed == 0:
                    first[(task, split)] = m
                    write_json(out / f"metrics-{task}-{split}.json", m)
            if seed == 0:
                model.save(out / f"model-{task}.npz")
                first[task] = model
            runs.append(record)

    model = first["5class"]
    for split in SPLITS:
        write_text(out / f"report-{split}.html", render_report(first[("5class", split)], model.report.get("history")))
    queue = _fill_queue(model, data["test+"], out, args.label_reviews)
    summary = _summarise(runs, seeds, args.review_budget, queue, time.perf_counter() - start)
    write_json(out / "summary.json", {"seeds": seeds, "review_budget": args.review_budget, "runs": runs,
                                      "aggregate": summary["aggregate"], "queue": queue})
    print(summary["text"])
    print(f"files in {out}/: model-5class.npz, model-binary.npz, report-test+.html, report-test-21.html, "
          "metrics-*.json, scored-test+.csv, reviews.db, summary.json")
    print(f"next: nids-triage review list --queue {out / 'reviews.db'} --status new\n"
          f"      nids-triage retrain --model {out / 'model-5class.npz'} --with-reviews --out {out / 'retrained.npz'}")
    return 0


def _fill_queue(model, table, out, n_label) -> dict:
    """Score KDDTest+ like `nids-triage score` (from its file, as a user would), then close ``n_label`` queued
    flows with their true names."""
    if not Path(table.source).is_file():  # downloaded but not cached (read-only cache): there is no file to score
        raise CliError(f"{table.source}: KDDTest+ is not a local file (the download could not be cached), so the "
                       "demo cannot score it like `nids-triage score`; set BARENET_DATA or make the cache writable")
    queue_path = out / "reviews.db"
    scored_table, scored, added = score_to_queue(model, table.source, out / "scored-test+.csv", queue_path)
    truth = dict(zip(scored_table.line.tolist(), scored_table.attack.tolist(), strict=True))
    labelled = 0
    with ReviewQueue(queue_path) as q:
        for item in q.list(status="new", limit=max(0, n_label)):
            if item.line in truth and item.source_file == str(Path(scored_table.source).resolve()):
                q.label(item.id, truth[item.line], note="demo: true NSL-KDD label")
                labelled += 1
        counts = q.counts()
    return {"flows_scored": len(scored), "needs_review": int(scored.needs_review.sum()), "added": added,
            "labelled_now": labelled, "counts": counts}


def _flat_validation(report) -> dict:
    b, a = report["calibration_before"], report["calibration_after"]
    return {"ece_before": b["ece"], "ece_after": a["ece"], "nll_before": b["nll"], "nll_after": a["nll"],
            "temperature": report["temperature"]}


def _summarise(runs, seeds, budget, queue, seconds) -> dict:
    agg = {}
    for task in TASKS:
        mine = [r for r in runs if r["task"] == task]
        agg[task] = {split: aggregate([r[split] for r in mine], KEYS) for split in SPLITS}
        agg[task]["validation"] = aggregate([r["validation"] for r in mine], VAL_KEYS)
        agg[task]["train_seconds"] = aggregate(mine, ("train_seconds",))["train_seconds"]  # both tasks
    spread = f"{seeds} seeds, mean ± sd" if seeds > 1 else "1 seed"
    lines = [f"nids-triage demo on NSL-KDD: review budget {budget:g}, {spread}", ""]
    for task in TASKS:
        lines += _task_block(task, agg[task], runs)
    q = queue
    lines += [f"review queue: {q['needs_review']:,} of {q['flows_scored']:,} KDDTest+ flows need an analyst; "
              f"{q['added']:,} newly queued (identical flows share an item), {q['labelled_now']} closed now with "
              "their true names as an analyst would "
              f"(queue: {', '.join(f'{k} {v:,}' for k, v in q['counts'].items())})",
              f"training + calibration per seed (5-class, then binary on the same networks): "
              f"{_pm(agg['5class']['train_seconds'], digits=1)} s; total wall time {seconds:.1f} s"]
    return {"text": "\n".join(lines), "aggregate": agg}


def _task_block(task, agg, runs) -> list:
    n = {s: next(r[s] for r in runs if r["task"] == task) for s in SPLITS}
    head = "".join(f"{SPLIT_NAMES[s] + ' (' + format(n[s]['n_flows'], ',') + ')':>26}" for s in SPLITS)
    name = "5-class task (normal/DoS/Probe/R2L/U2R)" if task == "5class" else "binary task (normal/attack)"
    lines = [f"{name:<40}{head}"]
    rows = (("accuracy, all flows", "accuracy", True), ("macro-F1", "macro_f1", False),
            ("share sent to review", "review_share", True), ("accuracy, auto-decided", "auto_accuracy", True),
            ("accuracy, flagged flows (model's guess)", "review_accuracy", True),
            ("unseen attacks caught", "unseen_caught", True), ("ECE (calibrated)", "ece", False),
            ("no cap: share over a threshold", "over_threshold_share", True),
            ("no cap: accuracy of the rest", "over_threshold_auto_accuracy", True))
    for label, key, percent in rows:
        cells = "".join(f"{_pm(agg[s][key], percent):>26}" for s in SPLITS)
        lines.append(f"  {label:<38}{cells}")
    unseen = n["test+"]["unseen_count"]
    v = agg["validation"]
    lines += [f"  (unseen attacks: {unseen:,} KDDTest+ flows of 17 attack types absent from training; caught = "
              "flagged as attack or sent to review;",
              "   no cap = every flow over a validation threshold sent to review, without the budget's per-run cap)",
              f"  calibration on validation: ECE {_pm(v['ece_before'])} -> {_pm(v['ece_after'])}, "
              f"NLL {_pm(v['nll_before'])} -> {_pm(v['nll_after'])}, T = {_pm(v['temperature'], digits=2)}", ""]
    return lines


def _pm(stat, percent=False, digits=None) -> str:
    if stat is None:
        return "n/a"
    scale = 100.0 if percent else 1.0
    d = digits if digits is not None else (1 if percent else 3)
    text = f"{scale * stat['mean']:.{d}f}"
    if len(stat["values"]) > 1:
        text += f" ± {scale * stat['std']:.{d}f}"
    return text + (" %" if percent else "")


def _progress(items, desc):
    if not sys.stderr.isatty():
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="model", leave=False)
