"""``nids-triage``: the command line (argparse). Command bodies live in commands.py and demo.py.

Exit codes: 0 success; 2 bad usage or bad input (malformed flow file, missing data, unreadable model,
unknown review item...), with a one-line ``nids-triage: error: ...`` on stderr and no traceback;
130 interrupted. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import math
import os
import sqlite3
import sys

import barenet as bn

from .config import TrainConfig
from .datasets import DataNotFoundError
from .flows import FlowFileError
from .review_queue import STATUSES, ReviewStateError

_DEFAULTS = TrainConfig()


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nids-triage", description="Triage network flows with a calibrated neural network: decide the "
        "clear cases, send the uncertain or unusual ones to an analyst, learn from the verdicts.",
        epilog="Start with: nids-triage demo   (docs: docs/nids-triage.md)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    _evaluate_parser(sub)
    _score_parser(sub)
    _review_parser(sub)
    _retrain_parser(sub)
    _demo_parser(sub)
    return parser


def _data_args(p, *, train_file=True):
    p.add_argument("--data-dir", help="folder holding the NSL-KDD files (else $BARENET_DATA/nsl-kdd, the cache, "
                   "then a download)")
    p.add_argument("--no-download", action="store_true", help="never download NSL-KDD")
    if train_file:
        p.add_argument("--train-file", help="train on this labelled flow CSV instead of KDDTrain+")


def _train_parser(sub):
    p = sub.add_parser("train", help="train a triage model on NSL-KDD (or a labelled flow CSV)",
                       description="Train, calibrate (temperature), fit the novelty detector and pick the "
                       "review threshold, all on a validation split of the training file.")
    p.add_argument("--task", choices=("binary", "5class", "attack"), default="5class")
    p.add_argument("--out", default="model.npz", help="model file to write (default: model.npz)")
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--review-budget", type=_budget, metavar="SHARE",
                      help=f"largest share of flows sent to review (default {_DEFAULTS.review_budget})")
    goal.add_argument("--target-accuracy", type=_share, metavar="ACC",
                      help="review as few flows as needed for the auto-decided ones to reach this accuracy")
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    p.add_argument("--epochs", type=_positive, default=_DEFAULTS.epochs)
    p.add_argument("--hidden", type=_widths, default=_DEFAULTS.hidden, metavar="W1,W2",
                   help="hidden layer widths (default 64,32)")
    p.add_argument("--dropout", type=_rate, default=_DEFAULTS.dropout)
    p.add_argument("--batch-size", type=_positive, default=_DEFAULTS.batch_size)
    p.add_argument("--learning-rate", type=_positive_real, default=_DEFAULTS.learning_rate)
    p.add_argument("--patience", type=_positive, default=_DEFAULTS.patience, help="early-stopping patience (epochs)")
    p.add_argument("--validation-fraction", type=_share, default=_DEFAULTS.validation_fraction)
    p.add_argument("--novelty-false-alarm", type=_share, default=_DEFAULTS.novelty_false_alarm,
                   help="share of ordinary validation flows the novelty detector may flag")
    p.add_argument("--burst-false-alarm", type=_share, default=_DEFAULTS.burst_false_alarm,
                   help="share of normal validation flows the burst signal may flag (below 0.5)")
    p.add_argument("--class-weight", choices=("balanced", "none"), default=_DEFAULTS.class_weight or "none")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                   help="set any TrainConfig field, e.g. --set members=3 (repeatable; see docs)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per epoch")
    _data_args(p)


def _evaluate_parser(sub):
    p = sub.add_parser("evaluate", help="metrics, JSON and an HTML report on KDDTest+ / KDDTest-21")
    p.add_argument("--model", required=True)
    p.add_argument("--split", choices=("test+", "test-21"), default="test+")
    p.add_argument("--file", help="evaluate this labelled flow CSV instead of an NSL-KDD split")
    p.add_argument("--json", metavar="PATH", help="write the metrics JSON (contract: docs/nids-triage.md)")
    p.add_argument("--report", metavar="PATH", help="write the self-contained HTML report")
    p.add_argument("--mc-samples", type=_count, default=0, help="MC-dropout passes (adds 'disagreement')")
    _data_args(p, train_file=False)


def _score_parser(sub):
    p = sub.add_parser("score", help="score a flow CSV; queue the flows that need an analyst")
    p.add_argument("flows", help="CSV (or .csv.gz) of flows: NSL-KDD order without header, or with a header")
    p.add_argument("--model", required=True)
    p.add_argument("--out", help="scored CSV to write (default: <flows>.scored.csv)")
    p.add_argument("--queue", help="review queue (default: reviews.db next to the model)")
    p.add_argument("--no-queue", action="store_true", help="do not add deferred flows to a review queue")
    p.add_argument("--on-bad-row", choices=("error", "review"), default="error",
                   help="malformed row: stop with an error (default) or send it to review as invalid_value")
    p.add_argument("--mc-samples", type=_count, default=0, help="MC-dropout passes (adds 'disagreement')")


def _review_parser(sub):
    p = sub.add_parser("review", help="the analysts' review queue: list, show, start, label, export")
    rsub = p.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    parents = argparse.ArgumentParser(add_help=False)
    parents.add_argument("--queue", help="queue file (default: reviews.db next to --model, else ./reviews.db)")
    parents.add_argument("--model", help="model whose queue (reviews.db beside it) to use")
    lst = rsub.add_parser("list", parents=[parents], help="list queued flows")
    lst.add_argument("--status", choices=STATUSES)
    lst.add_argument("--model-id", help="only items deferred by the model whose id starts with this "
                     "(the 'model' column; 'train' and 'retrain' print the full id)")
    lst.add_argument("--limit", type=_count, default=50)
    lst.add_argument("--offset", type=_count, default=0)
    show = rsub.add_parser("show", parents=[parents], help="one item with its features and history")
    show.add_argument("id", type=int)
    start = rsub.add_parser("start", parents=[parents], help="pick an item up: new -> in_review")
    start.add_argument("id", type=int)
    start.add_argument("--note")
    lab = rsub.add_parser("label", parents=[parents], help="record a verdict and close the item")
    lab.add_argument("id", type=int)
    lab.add_argument("verdict", help="normal, attack, DoS, Probe, R2L, U2R or an attack name (e.g. neptune)")
    lab.add_argument("--note")
    exp = rsub.add_parser("export", parents=[parents], help="every item with its history as JSON lines")
    exp.add_argument("--out", help="file to write atomically (default: stdout)")


def _retrain_parser(sub):
    p = sub.add_parser("retrain", help="fold closed review verdicts back into a model (fine-tune, recalibrate)")
    p.add_argument("--model", required=True)
    p.add_argument("--with-reviews", action="store_true", help="use the queue's closed verdicts (required)")
    p.add_argument("--queue", help="review queue (default: reviews.db next to the model)")
    p.add_argument("--out", required=True, help="new model file")
    p.add_argument("--epochs", type=_positive, default=3, help="fine-tuning passes over the mix (default 3)")
    p.add_argument("--replay", type=_count, default=20000, help="training flows replayed beside the reviews")
    p.add_argument("--review-weight", type=_positive_real, default=2.0, help="loss weight of a reviewed flow")
    p.add_argument("--learning-rate", type=_positive_real, help="fine-tuning learning rate (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    _data_args(p)


def _demo_parser(sub):
    p = sub.add_parser("demo", help="the whole capstone end to end on NSL-KDD (about a minute on 2 cores)")
    _data_args(p, train_file=False)
    p.add_argument("--out-dir", default="runs/demo")
    p.add_argument("--seeds", type=_positive, default=3, help="training seeds to average over (default 3)")
    p.add_argument("--fast", action="store_true", help="one seed, 3 epochs: a smoke run in well under a minute")
    p.add_argument("--review-budget", type=_budget, default=_DEFAULTS.review_budget)
    p.add_argument("--label-reviews", type=int, default=200,
                   help="queued flows the demo labels with their true class, as an analyst would")


# ---------------------------------------------------------------------------------------- parsing
def _checked(convert, ok, expected):
    """An argparse type: ``convert(text)`` (int or float) that must satisfy ``ok``, else "expected ..."."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value
    return parse


_share = _checked(float, lambda v: 0.0 <= v <= 1.0, "a share between 0 and 1")
_budget = _checked(float, lambda v: 0.0 <= v < 1.0, "a review budget in [0, 1) (1 would review everything)")
_rate = _checked(float, lambda v: 0.0 <= v < 1.0, "a dropout rate in [0, 1)")
_count = _checked(int, lambda v: v >= 0, "a whole number >= 0")
_positive = _checked(int, lambda v: v >= 1, "a whole number >= 1")
_positive_real = _checked(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def _widths(text: str) -> tuple:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return widths


def main(argv=None) -> int:
    from . import commands, demo

    args = build_parser().parse_args(argv)
    handlers = {"train": commands.train, "evaluate": commands.evaluate, "score": commands.score,
                "review": commands.review, "retrain": commands.retrain, "demo": demo.run}
    try:
        return handlers[args.command](args) or 0
    except BrokenPipeError:  # e.g. `nids-triage review export | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CliError, FlowFileError, DataNotFoundError, bn.ModelFileError, ReviewStateError,
            sqlite3.DatabaseError, OSError) as exc:
        print(f"nids-triage: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nids-triage: interrupted", file=sys.stderr)
        return 130


def _message(exc) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
