"""The nids-triage command line end to end on a 2,000-row slice of NSL-KDD.

train -> score (twice: idempotent) -> review list/show/label/export -> retrain -> evaluate (--json, --report).
Needs BARENET_DATA (never downloads); everything runs in-process through cli.main except one subprocess
check of the malformed-file error (exit code 2, message on stderr, no traceback).
"""
import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nids_triage.cli import main
from nids_triage.model import TriageModel
from nids_triage.review_queue import ReviewQueue
from nids_triage.schema import FEATURE_COLUMNS

DATA = os.environ.get("BARENET_DATA")
pytestmark = pytest.mark.skipif(not DATA, reason="BARENET_DATA is not set (NSL-KDD slices needed; no download)")

JSON_KEYS = {"task", "split", "n_flows", "accuracy", "macro_f1", "review_share", "auto_accuracy",
             "review_accuracy", "ece", "per_class", "confusion_matrix", "reasons", "unseen_attacks",
             "risk_coverage", "validation"}


def nsl_lines(name, n):
    path = Path(DATA) / "nsl-kdd" / f"{name}.txt.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with gzip.open(path, "rt") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "train.csv").write_text("\n".join(nsl_lines("KDDTrain+", 2000)) + "\n")
    test = nsl_lines("KDDTest+", 1500)
    (d / "test.csv").write_text("\n".join(test) + "\n")
    # flows to score: features only, with a header, as an exporter would write them
    rows = [",".join(FEATURE_COLUMNS)] + [",".join(line.split(",")[:41]) for line in test[:300]]
    (d / "flows.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", "--train-file", str(d / "train.csv"), "--task", "5class", "--out", str(d / "model.npz"),
                 "--epochs", "2", "--set", "members=2", "--seed", "1", "--burst-false-alarm", "0.05"]) == 0
    return d


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_a_loadable_model(work):
    model = TriageModel.load(work / "model.npz")
    assert model.task == "5class" and model.config.epochs == 2 and model.config.seed == 1
    assert model.config.burst_false_alarm == model.burst.false_alarm_rate == 0.05
    assert model.policy.review_budget == 0.14 and set(model.classes) <= {"normal", "DoS", "Probe", "R2L", "U2R"}


def test_score_keeps_every_row_and_is_idempotent(work, capsys):
    out, queue = work / "scored.csv", work / "reviews.db"
    code, text, _ = run(capsys, "score", work / "flows.csv", "--model", work / "model.npz", "--out", out)
    assert code == 0 and "queued" in text
    rows = list(csv.DictReader(out.open()))
    assert [int(r["row"]) for r in rows] == list(range(1, 301)) and rows[0]["line"] == "2"  # header on line 1
    model = TriageModel.load(work / "model.npz")
    assert {f"p_{c}" for c in model.classes} <= set(rows[0])
    assert all(float(r["burst"]) >= 0 for r in rows)  # the burst statistic of every flow in this file
    assert all(float(r["burst"]) == 0 for r in rows if r["predicted_label"] != "normal")  # normal only
    deferred = [r for r in rows if r["needs_review"] == "1"]
    assert deferred and all(r["reasons"] and r["flow_key"] for r in deferred)
    with ReviewQueue(queue) as q:
        n_items = sum(q.counts().values())
        keys = {it.flow_key for it in q.list(limit=1000)}
    assert {r["flow_key"] for r in deferred} == keys  # identical flows share one item
    first = out.read_bytes()
    code, text, _ = run(capsys, "score", work / "flows.csv", "--model", work / "model.npz", "--out", out)
    assert code == 0 and "queued 0 new" in text and out.read_bytes() == first
    with ReviewQueue(queue) as q:
        assert sum(q.counts().values()) == n_items


def test_malformed_file_exits_2_naming_file_line_and_column(work):
    lines = (work / "flows.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[4] = "12kb"  # src_bytes
    lines[3] = ",".join(fields)
    bad = work / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "nids_triage", "score", str(bad), "--model",
                           str(work / "model.npz"), "--out", str(work / "bad.scored.csv"), "--no-queue"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bad.csv" in proc.stderr and "line 4" in proc.stderr and "'src_bytes'" in proc.stderr
    assert not (work / "bad.scored.csv").exists()  # nothing half-written


def test_bad_rows_go_to_review_with_on_bad_row_review(work, capsys):
    lines = (work / "flows.csv").read_text().splitlines()
    f = lines[1].split(",")
    f[4] = "12kb"
    lines[1] = ",".join(f)
    f = lines[2].split(",")
    f[5] = "nan"
    lines[2] = ",".join(f)
    f = lines[3].split(",")
    f[2] = "brand_new_service"
    lines[3] = ",".join(f)
    lines[4] = ",".join(lines[4].split(",")[:30])
    bad = work / "bad_rows.csv"
    bad.write_text("\n".join(lines[:10]) + "\n")
    code, _, _ = run(capsys, "score", bad, "--model", work / "model.npz", "--out", work / "bad_rows.scored.csv",
                     "--on-bad-row", "review", "--queue", work / "bad.db")
    assert code == 0
    rows = list(csv.DictReader((work / "bad_rows.scored.csv").open()))
    assert len(rows) == 9
    assert [r["reasons"] for r in rows[:4]] == ["invalid_value", "invalid_value", "unseen_category", "invalid_value"]
    assert "line 2, column 'src_bytes'" in rows[0]["error"] and "dst_bytes" in rows[1]["error"]
    assert rows[0]["predicted_label"] == "" and rows[2]["predicted_label"] != ""
    assert rows[0]["burst"] == "" and rows[2]["burst"] != ""  # an invalid row is not scored
    with ReviewQueue(work / "bad.db") as q:
        items = q.list()
    assert items[0].reasons == ["invalid_value"] and items[0].confidence is None
    assert "_fields" in items[3].features  # the short row keeps its raw fields


def test_review_commands_then_retrain(work, capsys):
    queue = work / "reviews.db"
    code, text, _ = run(capsys, "review", "list", "--queue", queue, "--status", "new", "--limit", "5")
    assert code == 0 and "queue: new" in text
    model_id = TriageModel.load(work / "model.npz").model_id
    assert f"  {model_id[:8]}  " in text.splitlines()[1]  # the model column
    code, text, _ = run(capsys, "review", "list", "--queue", queue, "--model-id", model_id[:6])
    assert code == 0 and len(text.splitlines()) > 2
    code, text, _ = run(capsys, "review", "list", "--queue", queue, "--model-id", "not-a-model")
    assert code == 0 and text.startswith("    id") and "-- 0 shown" in text
    code, text, _ = run(capsys, "review", "show", "1", "--model", work / "model.npz")  # queue beside the model
    item = json.loads(text)
    assert item["id"] == 1 and item["history"][0]["action"] == "added" and "service" in item["features"]
    with ReviewQueue(queue) as q:
        ids = [it.id for it in q.list(status="new", limit=12)]
    verdicts = ["normal", "dos", "neptune", "mscan", "attack", "Probe"] * 2
    code, text, _ = run(capsys, "review", "start", ids[0], "--queue", queue, "--note", "looking")
    assert code == 0 and "in review" in text
    with ReviewQueue(queue) as q:
        assert q.get(ids[0]).status == "in_review" and q.history(ids[0])[-1]["action"] == "start"
    for item_id, verdict in zip(ids, verdicts, strict=False):
        code, text, _ = run(capsys, "review", "label", item_id, verdict, "--queue", queue, "--note", "test")
        assert code == 0 and "closed" in text
    code, _, err = run(capsys, "review", "label", ids[0], "normal", "--queue", queue)  # already closed
    assert code == 2 and "closed" in err
    code, _, err = run(capsys, "review", "label", ids[-1] + 100, "nonsense-verdict", "--queue", queue)
    assert code == 2 and "unknown verdict" in err
    code, _, err = run(capsys, "review", "show", "99999", "--queue", queue)
    assert code == 2 and "99999" in err
    code, _, _ = run(capsys, "review", "export", "--queue", queue, "--out", work / "export.jsonl")
    exported = [json.loads(line) for line in (work / "export.jsonl").read_text().splitlines()]
    assert sum(1 for e in exported if e["status"] == "closed") == 12 and all("history" in e for e in exported)

    code, text, err = run(capsys, "retrain", "--model", work / "model.npz", "--with-reviews", "--queue", queue,
                          "--train-file", work / "train.csv", "--out", work / "new.npz", "--epochs", "1")
    assert code == 0, err
    assert "12 used" in text and "before" in text and "after" in text
    new = TriageModel.load(work / "new.npz")
    old = TriageModel.load(work / "model.npz")
    assert new.model_id != old.model_id and new.report["retrain"]["n_used"] == 12
    assert new.encoder.to_dict() == old.encoder.to_dict()
    code, _, err = run(capsys, "retrain", "--model", work / "model.npz", "--out", work / "x.npz")
    assert code == 2 and "--with-reviews" in err


def test_evaluate_writes_json_and_report(work, capsys):
    pytest.importorskip("matplotlib")
    code, text, _ = run(capsys, "evaluate", "--model", work / "model.npz", "--file", work / "test.csv",
                        "--json", work / "metrics.json", "--report", work / "report.html")
    assert code == 0 and "sent to review" in text
    m = json.loads((work / "metrics.json").read_text())
    assert JSON_KEYS <= set(m) and m["n_flows"] == 1500 and m["split"] == "test.csv"
    assert m["unseen_attacks"]["count"] > 0 and 0 <= m["unseen_attacks"]["share_flagged_or_reviewed"] <= 1
    assert {"ece_before", "ece_after", "nll_before", "nll_after"} <= set(m["validation"])
    assert sum(map(sum, m["confusion_matrix"]["matrix"])) == 1500
    page = (work / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5


def test_evaluate_on_a_split_from_data_dir(work, capsys):
    code, _, _ = run(capsys, "evaluate", "--model", work / "model.npz", "--split", "test-21",
                        "--data-dir", Path(DATA) / "nsl-kdd", "--no-download", "--json", work / "m21.json")
    assert code == 0
    assert json.loads((work / "m21.json").read_text())["n_flows"] == 11850


def test_usage_errors(work, capsys):
    code, _, err = run(capsys, "score", work / "flows.csv", "--model", work / "missing.npz")
    assert code == 2 and "missing.npz" in err
    code, _, err = run(capsys, "review", "list", "--queue", work / "nope.db")
    assert code == 2 and "nope.db" in err
    code, _, err = run(capsys, "train", "--train-file", work / "train.csv", "--set", "bogus=1", "--out",
                       work / "x.npz")
    assert code == 2 and "bogus" in err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--review-budget", "0.1", "--target-accuracy", "0.9"])
    assert exc.value.code == 2


def test_empty_flow_files_score_to_an_empty_output_and_cannot_be_evaluated(work, capsys):
    header_only = work / "header_only.csv"
    header_only.write_text(",".join(FEATURE_COLUMNS) + "\n")
    blank = work / "blank.csv"
    blank.write_text("\n\n")
    for flows in (header_only, blank):
        out = work / (flows.stem + ".scored.csv")
        code, text, err = run(capsys, "score", flows, "--model", work / "model.npz", "--out", out, "--no-queue")
        assert code == 0, err
        assert "scored 0 flows" in text and len(out.read_text().splitlines()) == 1  # the header alone
    labelled = work / "empty_labelled.csv"
    labelled.write_text(",".join(FEATURE_COLUMNS + ("attack",)) + "\n")
    code, _, err = run(capsys, "evaluate", "--model", work / "model.npz", "--file", labelled)
    assert code == 2 and "empty_labelled.csv: no flows to evaluate" in err


def test_evaluate_on_only_invalid_rows_reports_n_a(work, capsys):
    line = nsl_lines("KDDTest+", 1)[0].split(",")
    line[4] = "nan"
    flows = work / "all_invalid.csv"
    flows.write_text(",".join(line) + "\n")
    code, text, err = run(capsys, "evaluate", "--model", work / "model.npz", "--file", flows)
    assert code == 0, err
    assert "all_invalid.csv: 1 flow\n" in text and "macro-F1 n/a" in text and "invalid_value 1" in text


def test_unreadable_inputs_exit_2_naming_the_file(work, capsys):
    truncated = work / "truncated.csv.gz"
    truncated.write_bytes(gzip.compress((work / "flows.csv").read_bytes())[:400])
    not_gzip = work / "plain.csv.gz"
    not_gzip.write_text((work / "flows.csv").read_text())
    for flows in (truncated, not_gzip):
        code, _, err = run(capsys, "score", flows, "--model", work / "model.npz", "--no-queue",
                           "--out", work / "x.scored.csv")
        assert code == 2 and flows.name in err and "cannot decompress" in err
    code, _, err = run(capsys, "score", work / "flows.csv", "--model", work / "model.npz",
                       "--queue", work / "flows.csv", "--out", work / "x.scored.csv")
    assert code == 2 and "flows.csv: not a review queue" in err
    for model in (work / "flows.csv", work):
        code, _, err = run(capsys, "score", work / "flows.csv", "--model", model, "--no-queue",
                           "--out", work / "x.scored.csv")
        assert code == 2 and "not a" in err and "allow_pickle" not in err


@pytest.mark.parametrize("mode", ["error", "review"])
def test_an_unterminated_quote_stops_at_the_line_that_opened_it(work, capsys, mode):
    lines = (work / "flows.csv").read_text().splitlines()[:6]
    lines[2] = lines[2].replace(",tcp,", ',"tcp,', 1)  # line 3 opens a quote that never closes
    flows = work / "quote.csv"
    flows.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "score", flows, "--model", work / "model.npz", "--no-queue",
                       "--on-bad-row", mode, "--out", work / "quote.scored.csv")
    assert code == 2 and "quote.csv: line 3: malformed CSV" in err and "unterminated quote" in err
    assert not (work / "quote.scored.csv").exists()


def test_numeric_options_are_checked_by_argparse(work, capsys, tmp_path, monkeypatch):
    # each was accepted before: --epochs 0 wrote an untrained model, retrain --epochs 0 crashed, --learning-rate
    # nan "retrained" nothing, --replay -5 gave a NumPy message
    bad = [("train", "--epochs", "0"), ("train", "--learning-rate", "nan"), ("train", "--batch-size", "0"),
           ("train", "--dropout", "1"), ("retrain", "--epochs", "0"), ("retrain", "--learning-rate", "0"),
           ("retrain", "--replay", "-5"), ("retrain", "--review-weight", "-3"), ("demo", "--seeds", "0")]
    monkeypatch.chdir(tmp_path)  # if a value were accepted, train would write its default model.npz here
    for command, option, value in bad:
        with pytest.raises(SystemExit) as exc:
            main([command, option, value])
        assert exc.value.code == 2
        assert f"argument {option}" in capsys.readouterr().err


def test_a_bad_queue_fails_before_the_scored_file_is_written(work, capsys):
    out = work / "never.scored.csv"
    code, _, err = run(capsys, "score", work / "flows.csv", "--model", work / "model.npz", "--queue",
                       work / "flows.csv", "--out", out)
    assert code == 2 and "not a review queue" in err
    assert not out.exists()  # before: the output was written, its flow keys pointing at nothing queued
    # a scoring that fails creates no queue file
    bad = work / "bad_for_queue.csv"
    bad.write_text((work / "flows.csv").read_text().replace(",tcp,", ",tcp,12kb,", 1))
    code, _, _ = run(capsys, "score", bad, "--model", work / "model.npz", "--queue", work / "fresh.db", "--out", out)
    assert code == 2 and not (work / "fresh.db").exists()
