"""evaluation.evaluate_scored (the metrics JSON contract), the HTML report and the verdict mapping."""
import json
import re

import numpy as np
import pytest

from nids_triage.evaluation import aggregate, evaluate_scored, reason_counts, unseen_attack_stats
from nids_triage.model import ScoredFlows
from nids_triage.report import render_report
from nids_triage.retrain import canonical_verdict, map_verdicts, table_from_features
from nids_triage.schema import FEATURE_COLUMNS

CONTRACT = ("task", "split", "n_flows", "accuracy", "macro_f1", "review_share", "auto_accuracy", "review_accuracy",
            "ece", "per_class", "confusion_matrix", "reasons", "unseen_attacks", "risk_coverage", "validation")


def scored(labels, confidence, needs, reasons, classes=("DoS", "normal")):
    labels = np.array(labels, dtype=str)
    conf = np.array(confidence, dtype=np.float64)
    proba = np.zeros((len(labels), len(classes)))
    for i, (lab, c) in enumerate(zip(labels, conf, strict=True)):
        if lab:
            j = classes.index(lab)
            proba[i] = (1 - c) / (len(classes) - 1)
            proba[i, j] = c
    risk = np.where(np.isnan(conf), np.inf, 1 - conf)
    return ScoredFlows(labels, conf, proba, list(classes), np.array(needs, bool), reasons,
                       np.zeros(len(labels)), risk)


@pytest.fixture
def example():
    # 8 flows: 2 reviewed (one right), 1 invalid row, two unseen attacks (apache2 caught, mscan missed)
    attack = ["normal", "normal", "neptune", "neptune", "apache2", "mscan", "normal", "smurf"]
    truth = ["normal", "normal", "DoS", "DoS", "DoS", "Probe", "normal", "DoS"]
    s = scored(["normal", "normal", "DoS", "normal", "normal", "normal", "", "DoS"],
               [0.99, 0.9, 0.95, 0.55, 0.6, 0.97, np.nan, 0.99],
               [0, 0, 0, 1, 1, 0, 1, 0],
               [[], [], [], ["low_confidence"], ["novel", "low_confidence"], [], ["invalid_value"], []])
    return truth, attack, s


def test_contract_keys_and_values(example):
    truth, attack, s = example
    m = evaluate_scored(truth, s, task="5class", split="test+", attack_names=attack,
                        validation={"calibration_before": {"ece": 0.1, "nll": 0.5},
                                    "calibration_after": {"ece": 0.02, "nll": 0.4}, "temperature": 1.5})
    assert set(CONTRACT) <= set(m)
    json.dumps(m, allow_nan=False)  # strict JSON
    assert m["n_flows"] == 8 and m["n_invalid"] == 1
    assert m["accuracy"] == pytest.approx(4 / 8)  # rows 0, 1, 2, 7 right; the invalid row is never right
    assert m["review_share"] == pytest.approx(3 / 8) and m["n_review"] == 3
    assert m["auto_accuracy"] == pytest.approx(4 / 5) and m["review_accuracy"] == 0.0
    assert m["reasons"]["low_confidence"] == 2 and m["reasons"]["novel"] == 1 and m["reasons"]["invalid_value"] == 1
    u = m["unseen_attacks"]
    assert u["count"] == 2 and u["caught"] == 1 and u["share_flagged_or_reviewed"] == 0.5
    assert u["by_attack"]["apache2"] == {"count": 1, "caught": 1, "reviewed": 1}
    cm = m["confusion_matrix"]
    assert cm["labels"] == ["DoS", "normal", "Probe"]  # a true label the model lacks gets its own row
    assert cm["matrix"] == [[2, 2, 0], [0, 2, 0], [0, 1, 0]]  # the invalid row is left out
    assert m["per_class"]["DoS"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 4}
    assert m["validation"]["ece_before"] == 0.1 and m["validation"]["nll_after"] == 0.4
    assert m["validation"]["temperature"] == 1.5


def test_helpers():
    assert reason_counts([["novel"], ["novel", "low_confidence"], []])["novel"] == 2
    assert unseen_attack_stats(None, [], [])["count"] == 0
    agg = aggregate([{"a": 1.0}, {"a": 3.0}, {"a": None}], ["a", "b"])
    assert agg["a"]["mean"] == 2.0 and agg["a"]["std"] == pytest.approx(np.sqrt(2)) and agg["b"] is None


@pytest.mark.parametrize("history", [None, {"records": [{"epoch": 1, "loss": 1.0, "val_loss": "nan"}]},
                                     [{"records": [{"epoch": 1, "loss": 1.0, "accuracy": 0.5}]}] * 2])
def test_report_is_self_contained_with_five_plots(example, history):
    pytest.importorskip("matplotlib")
    truth, attack, s = example
    m = evaluate_scored(truth, s, task="5class", split="test+", attack_names=attack)
    page = render_report(m, history)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert len(re.findall(r"src='data:image/png;base64,[A-Za-z0-9+/=]+'", page)) == 5
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)  # nothing fetched from elsewhere
    assert "apache2" in page and "Calibration" in page


def test_verdicts_are_canonicalised():
    assert canonical_verdict("dos") == "DoS" and canonical_verdict(" Neptune ") == "neptune"
    assert canonical_verdict("ATTACK") == "attack"
    with pytest.raises(ValueError, match="unknown verdict"):
        canonical_verdict("benign-ish")


def test_verdict_mapping_to_fine_classes():
    fine = ["back", "guess_passwd", "neptune", "normal", "portsweep", "satan"]
    proba = np.tile([0.1, 0.05, 0.2, 0.3, 0.15, 0.2], (6, 1))
    verdicts = ["neptune", "DoS", "Probe", "mscan", "attack", "normal"]
    got = map_verdicts(verdicts, proba, fine, "5class").tolist()
    # known name as is; a family -> its most probable member; unseen mscan -> Probe family; attack -> any attack
    assert got == ["neptune", "neptune", "satan", "satan", "neptune", "normal"]
    assert map_verdicts(["mscan", "U2R", "nonsense"], proba[:3], fine, "attack").tolist() == ["", "", ""]


def test_table_from_review_features():
    row = dict.fromkeys(FEATURE_COLUMNS, "0")
    row.update(protocol_type="tcp", service="http", flag="SF", src_bytes="181")
    table, usable = table_from_features([row, {"_fields": ["1", "2"]}, {**row, "count": "x"}])
    assert usable.tolist() == [True, False, False]
    assert table.categorical["service"][0] == "http" and np.isnan(table.numeric[1]).all()
