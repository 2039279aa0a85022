"""Schema constants and the attack taxonomy, checked against the real NSL-KDD files."""

import os
from collections import Counter

import numpy as np
import pytest

from nids_triage import schema
from nids_triage.datasets import load_nsl_kdd

DATA = os.environ.get("BARENET_DATA")
needs_data = pytest.mark.skipif(
    not DATA, reason="BARENET_DATA is not set (folder holding nsl-kdd/); CI sets it")

# Dataset README, "Label distribution".
README_5CLASS = {
    "train": {"normal": 67343, "DoS": 45927, "Probe": 11656, "R2L": 995, "U2R": 52},
    "test+": {"normal": 9711, "DoS": 7458, "Probe": 2421, "R2L": 2887, "U2R": 67},
    "test-21": {"normal": 2152, "DoS": 4342, "Probe": 2402, "R2L": 2887, "U2R": 67},
}


@pytest.fixture(scope="module")
def attacks():
    return {split: load_nsl_kdd(split, os.environ["BARENET_DATA"], download=False).attack
            for split in README_5CLASS}


def test_columns_partition_the_numeric_features():
    assert len(schema.FEATURE_COLUMNS) == 41 == len(set(schema.FEATURE_COLUMNS))
    assert len(schema.NUMERIC_COLUMNS) == 38
    groups = schema.LOG1P_COLUMNS + schema.BINARY_COLUMNS + schema.RATE_COLUMNS
    assert sorted(groups) == sorted(schema.NUMERIC_COLUMNS)  # each numeric column in exactly one group
    assert len(schema.RATE_COLUMNS) == 15


def test_taxonomy_shape():
    assert len(schema.ATTACK_CATEGORY) == 40  # 22 training + 17 test-only attacks + normal
    assert set(schema.ATTACK_CATEGORY.values()) == set(schema.CATEGORIES)
    assert len(schema.TEST_ONLY_ATTACKS) == 17 and schema.TEST_ONLY_ATTACKS <= set(schema.ATTACK_CATEGORY)
    assert len(schema.TRAIN_ATTACKS) == 22
    with pytest.raises(TypeError):
        schema.ATTACK_CATEGORY["neptune"] = "Probe"  # read-only


def test_labels_for_task():
    names = ["normal", "neptune", "mscan", "xterm", "guess_passwd"]
    binary = ["normal", "attack", "attack", "attack", "attack"]
    assert schema.labels_for_task(names, "binary").tolist() == binary
    assert schema.labels_for_task(names, "5class").tolist() == ["normal", "DoS", "Probe", "U2R", "R2L"]
    assert schema.labels_for_task(names, "attack").tolist() == names
    assert schema.labels_for_task([], "5class").shape == (0,)


def test_unknown_attack_names_are_named():
    with pytest.raises(ValueError, match=r"no 5-class category: \['foo', 'zeta'\]"):
        schema.labels_for_task(["normal", "zeta", "foo", "zeta"], "5class")
    with pytest.raises(ValueError, match="unknown task"):
        schema.labels_for_task(["normal"], "3class")


@needs_data
def test_map_covers_every_attack_in_all_files(attacks):
    for split, names in attacks.items():
        assert set(names) <= set(schema.ATTACK_CATEGORY), split
    assert set(attacks["train"]) - {"normal"} == schema.TRAIN_ATTACKS
    assert set(attacks["test+"]) - set(attacks["train"]) == schema.TEST_ONLY_ATTACKS


@needs_data
@pytest.mark.parametrize("split", sorted(README_5CLASS))
def test_five_class_counts_match_readme(attacks, split):
    labels = schema.labels_for_task(attacks[split], "5class")
    assert dict(Counter(labels.tolist())) == README_5CLASS[split]
    binary = schema.labels_for_task(attacks[split], "binary")
    assert int(np.sum(binary == "normal")) == README_5CLASS[split]["normal"]
