"""Bodies of the ``nids-triage`` commands (parsing lives in cli.py). These functions do the file I/O."""
from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
from pathlib import Path

import barenet as bn

from .cli import CliError
from .config import TrainConfig
from .datasets import load_nsl_kdd
from .evaluation import evaluate_scored, model_info
from .flows import read_flow_csv
from .model import TriageModel
from .report import render_report
from .retrain import canonical_verdict, fine_tune
from .review_queue import ReviewQueue
from .scoring import review_items, score_file, scored_csv_text


# ------------------------------------------------------------------------------------------ shared
def load_model(path) -> TriageModel:
    if Path(path).is_dir():
        raise CliError(f"{path}: a directory, not a model file")
    if not Path(path).is_file():
        raise CliError(f"{path}: no such model file")
    return TriageModel.load(path)


def load_training_flows(args):
    if getattr(args, "train_file", None):
        table = read_flow_csv(args.train_file)
        if table.attack is None:
            raise CliError(f"{args.train_file}: training flows need an attack label column")
        return table
    return load_nsl_kdd("train", data_dir=args.data_dir, download=not args.no_download)


def queue_path(args) -> Path:
    if getattr(args, "queue", None):
        return Path(args.queue)
    if getattr(args, "model", None):
        return Path(args.model).with_name("reviews.db")
    return Path("reviews.db")


def write_text(path, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    bn.atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path, data) -> None:
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def pct(x) -> str:
    return "   n/a" if x is None else f"{100 * x:6.2f} %"


# ------------------------------------------------------------------------------------------- train
def config_from_args(args) -> TrainConfig:
    budget, target = args.review_budget, args.target_accuracy
    if budget is None and target is None:
        budget = TrainConfig().review_budget
    config = TrainConfig(hidden=tuple(args.hidden), dropout=args.dropout, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         class_weight=None if args.class_weight == "none" else args.class_weight,
                         validation_fraction=args.validation_fraction, patience=args.patience,
                         novelty_false_alarm=args.novelty_false_alarm, burst_false_alarm=args.burst_false_alarm,
                         review_budget=budget,
                         target_accuracy=target, seed=args.seed)
    return apply_overrides(config, args.overrides)


def apply_overrides(config: TrainConfig, overrides) -> TrainConfig:
    """``--set name=value``: any TrainConfig field, the value parsed as JSON when it can be (else a string)."""
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for item in overrides or ():
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise CliError(f"--set {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(fields))}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        changes[name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(config, **changes)


def train(args) -> int:
    config = config_from_args(args)
    table = load_training_flows(args)
    try:
        model = TriageModel.train(table, args.task, config, verbose=2 if args.verbose else 1)
    except ValueError as exc:  # e.g. a training file whose labels have no category
        raise CliError(str(exc)) from None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(train_summary(model, args.out, len(table)))
    return 0


def train_summary(model, path, n_flows) -> str:
    r, p = model.report, model.policy
    goal = (f"review budget {p.review_budget:g}" if p.review_budget is not None
            else f"target accuracy {p.target_accuracy:g}")
    b, a = r["calibration_before"], r["calibration_after"]
    return "\n".join([
        f"wrote {path}  (task {model.task}, classes {', '.join(model.classes)}, model id {model.model_id})",
        f"  trained on {n_flows - r['n_validation']:,} flows, validated on {r['n_validation']:,}; {goal}",
        f"  temperature {model.temperature:.3f}: validation ECE {b['ece']:.4f} -> {a['ece']:.4f}, "
        f"NLL {b['nll']:.4f} -> {a['nll']:.4f}",
        f"  confidence threshold {p.confidence_threshold:.4f}, novelty threshold {p.novelty_threshold:.2f}"
        + ("" if p.burst_threshold is None else f", burst threshold {p.burst_threshold:.2f}"),
        f"  validation: accuracy {pct(r['validation_accuracy'])}, sent to review "
        f"{pct(r['validation_review_share'])}, auto-decided accuracy {pct(r['validation_auto_accuracy'])}"])


# ---------------------------------------------------------------------------------------- evaluate
def evaluate(args) -> int:
    model = load_model(args.model)
    if args.file:
        table, split = read_flow_csv(args.file), Path(args.file).name
    else:
        table, split = load_nsl_kdd(args.split, data_dir=args.data_dir, download=not args.no_download), args.split
    if table.attack is None:
        raise CliError(f"{table.source}: evaluation needs an attack label column")
    if len(table) == 0:
        raise CliError(f"{table.source}: no flows to evaluate")
    metrics = evaluate_model(model, table, split, model_path=args.model, mc_samples=args.mc_samples)
    if args.json:
        write_json(args.json, metrics)
    if args.report:
        write_text(args.report, render_report(metrics, model.report.get("history")))
    print(metrics_summary(metrics))
    for what, path in (("metrics", args.json), ("report", args.report)):
        if path:
            print(f"wrote {what} to {path}")
    return 0


def evaluate_model(model, table, split, *, model_path=None, mc_samples=0) -> dict:
    try:
        y = model.true_labels(table)
    except ValueError as exc:  # an attack name with no category
        raise CliError(f"{table.source}: {exc}") from None
    scored = model.score(table, mc_samples=mc_samples)
    return evaluate_scored(y, scored, task=model.task, split=split, attack_names=table.attack,
                           model_info=model_info(model, model_path), validation=model.report)


def metrics_summary(m) -> str:
    u = m["unseen_attacks"]
    lines = [f"{m['task']} task on {m['split']}: {m['n_flows']:,} flow{'s' * (m['n_flows'] != 1)}",
             f"  accuracy {pct(m['accuracy'])}   macro-F1 {_fmt4(m['macro_f1'])}   ECE {_fmt4(m['ece'])}",
             f"  sent to review {pct(m['review_share'])}   auto-decided accuracy {pct(m['auto_accuracy'])}   "
             f"model's accuracy on reviewed flows {pct(m['review_accuracy'])}",
             "  reasons: " + ", ".join(f"{k} {v:,}" for k, v in m["reasons"].items() if v)]
    if u["count"]:
        lines.append(f"  unseen attacks caught (flagged or reviewed): {pct(u['share_flagged_or_reviewed'])} "
                     f"of {u['count']:,}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- score
def score(args) -> int:
    model = load_model(args.model)
    out = args.out or default_scored_path(args.flows)
    table, scored, added = score_to_queue(model, args.flows, out, None if args.no_queue else queue_path(args),
                                                on_bad_row=args.on_bad_row, mc_samples=args.mc_samples)
    n, k = len(scored), int(scored.needs_review.sum())
    print(f"scored {n:,} flow{'s' * (n != 1)} ({int(table.bad.sum()):,} malformed rows): {k:,} need review "
          f"({100 * k / max(n, 1):.2f} %); wrote {out}")
    if added is not None:
        print(f"queued {added:,} new flows in {queue_path(args)} ({k - added:,} were already queued: identical "
              "flows share one item, which records each file and line it was seen at)")
    return 0


def default_scored_path(flows) -> str:
    """flows.csv / flows.csv.gz / flows.txt -> flows.scored.csv beside it."""
    path, stem = Path(flows), Path(flows).name
    for suffix in (".gz", ".csv", ".txt"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    return str(path.with_name(stem + ".scored.csv"))


def score_to_queue(model, flows, out, queue, *, on_bad_row="error", mc_samples=0):
    """Score ``flows``, queue the deferred flows (None = no queue), then write the scored CSV atomically.

    An existing queue is checked before the scoring (a bad ``--queue`` fails before any work; a missing one is
    created only once there is something to add). The queue is committed before the output is written: a crash
    in between leaves queued flows and no new output, and scoring the file again queues nothing twice. The other
    order could leave an output whose flow keys point at nothing.
    """
    if queue is not None and Path(queue).exists():
        ReviewQueue(queue).close()
    table, scored, columns = score_file(model, flows, on_bad_row=on_bad_row, mc_samples=mc_samples)
    model_id = model.model_id
    added = None
    if queue is not None:
        try:
            with ReviewQueue(queue) as q:
                added = q.add_many(review_items(model_id, table, scored, columns))
        except sqlite3.OperationalError as exc:  # e.g. locked by a long transaction elsewhere
            raise CliError(f"{queue}: {exc}; nothing was queued and no output written: score the file again") from None
    write_text(out, scored_csv_text(model_id, table, scored, columns))
    return table, scored, added


# ------------------------------------------------------------------------------------------ review
def review(args) -> int:
    path = queue_path(args)
    if not path.is_file():
        raise CliError(f"{path}: no review queue here (score flows first, or pass --queue)")
    with ReviewQueue(path) as q:
        try:
            return _REVIEW[args.review_command](q, args)
        except KeyError as exc:
            raise CliError(str(exc.args[0]) if exc.args else str(exc)) from None


def _review_list(q, args) -> int:
    items = q.list(status=args.status, limit=args.limit, offset=args.offset, model_id=args.model_id)
    print(f"{'id':>6}  {'status':<9}  {'model':<8}  {'predicted':<12}  {'conf':>6}  {'seen':>5}  {'verdict':<12}  "
          "reasons   (first source:line)")
    for it in items:
        conf = "" if it.confidence is None else f"{it.confidence:.3f}"
        print(f"{it.id:>6}  {it.status:<9}  {it.model_id[:8]:<8}  {it.predicted_label or '-':<12}  {conf:>6}  "
              f"{it.n_sightings:>5}  {it.verdict or '':<12}  {','.join(it.reasons)}   "
              f"({Path(it.source_file or '-').name}:{it.line})")
    counts = q.counts()
    print(f"-- {len(items)} shown; queue: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _review_show(q, args) -> int:
    item = q.get(args.id)
    print(json.dumps({**item.to_dict(), "history": q.history(args.id), "sightings": q.sightings(args.id)}, indent=2))
    return 0


def _review_start(q, args) -> int:
    item = q.start(args.id, note=args.note)
    print(f"item {item.id}: in review (model said {item.predicted_label!r}, reasons {', '.join(item.reasons)})")
    return 0


def _review_label(q, args) -> int:
    try:
        verdict = canonical_verdict(args.verdict)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    item = q.label(args.id, verdict, note=args.note)
    print(f"item {item.id}: closed with verdict {item.verdict!r} (model said {item.predicted_label!r})")
    return 0


def _review_export(q, args) -> int:
    n = q.export_jsonl(args.out if args.out else sys.stdout)
    if args.out:
        print(f"exported {n} items to {args.out}")
    return 0


_REVIEW = {"list": _review_list, "show": _review_show, "start": _review_start, "label": _review_label,
           "export": _review_export}


# ----------------------------------------------------------------------------------------- retrain
def retrain(args) -> int:
    if not args.with_reviews:
        raise CliError("retrain folds analysts' verdicts into the model: pass --with-reviews "
                       "(to train from scratch, use 'nids-triage train')")
    model = load_model(args.model)
    path = queue_path(args)
    if not path.is_file():
        raise CliError(f"{path}: no review queue here (pass --queue)")
    with ReviewQueue(path) as q:
        reviews = q.closed_verdicts()
    if not reviews:
        raise CliError(f"{path}: no closed reviews to learn from (label some with 'nids-triage review label')")
    old_id = model.model_id
    try:
        model, summary = fine_tune(model, reviews, load_training_flows(args), epochs=args.epochs,
                                   replay=args.replay, review_weight=args.review_weight,
                                   learning_rate=args.learning_rate, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    summary["previous_model_id"] = old_id
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(retrain_summary(summary, args.out, model.model_id))
    return 0


def retrain_summary(s, out, model_id) -> str:
    lines = [f"wrote {out} (model id {model_id}, was {s['previous_model_id']})",
             f"  reviews: {s['n_closed']} closed ({s.get('n_other_models', 0)} deferred by other models), "
             f"{s['n_used']} used, {s['n_unusable_features']} unusable (invalid features), "
             f"{s['n_unmapped_verdict']} with a verdict the model cannot learn",
             f"  fine-tuned {s['epochs']} epochs on {s['replay']:,} replayed training flows + the reviewed ones "
             f"(weight {s['review_weight']:g})",
             f"  {'validation':<26}{'before':>10}{'after':>10}"]
    for key in ("accuracy", "macro_f1", "review_share", "auto_accuracy", "ece", "reviewed_fit_accuracy"):
        b, a = s["before"].get(key), s["after"].get(key)
        label = ("accuracy on the reviewed flows it learned from (a fit check)" if key == "reviewed_fit_accuracy"
                 else key)
        lines.append(f"  {label:<26}{_fmt4(b):>10}{_fmt4(a):>10}")
    return "\n".join(lines)


def _fmt4(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
