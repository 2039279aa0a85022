"""FeatureEncoder: scaling, unknown categories, invalid values, JSON round trip."""

import json
import os

import numpy as np
import pytest

from nids_triage.datasets import load_nsl_kdd
from nids_triage.features import FeatureEncoder
from nids_triage.flows import FlowTable
from nids_triage.schema import CATEGORICAL, NUMERIC_COLUMNS

DATA = os.environ.get("BARENET_DATA")
needs_data = pytest.mark.skipif(
    not DATA, reason="BARENET_DATA is not set (folder holding nsl-kdd/); CI sets it")

SRC = NUMERIC_COLUMNS.index("src_bytes")
RATE = NUMERIC_COLUMNS.index("serror_rate")
CONST = NUMERIC_COLUMNS.index("num_outbound_cmds")


def make_table(numeric, protocol, service, flag):
    n = len(protocol)
    none = np.empty(n, dtype=object)
    return FlowTable(
        numeric=np.asarray(numeric, dtype=np.float64), numeric_columns=NUMERIC_COLUMNS,
        categorical={"protocol_type": np.array(protocol), "service": np.array(service),
                     "flag": np.array(flag)},
        attack=None, difficulty=None, source="<test>", line=np.arange(1, n + 1),
        bad_reason=none, bad_message=none.copy())


@pytest.fixture
def train():
    rng = np.random.default_rng(0)
    numeric = rng.integers(0, 1000, size=(50, 38)).astype(np.float64)
    numeric[:, RATE] = rng.random(50)
    numeric[:, CONST] = 0.0
    return make_table(numeric, ["tcp", "udp"] * 25, ["http", "ftp", "smtp", "dns", "ssh"] * 10,
                      ["SF"] * 50)


def test_fit_scales_and_names(train):
    enc = FeatureEncoder().fit(train)
    assert enc.feature_names_[:38] == list(NUMERIC_COLUMNS)
    assert enc.feature_names_[38:] == ["protocol_type=tcp", "protocol_type=udp", "service=dns",
                                       "service=ftp", "service=http", "service=smtp", "service=ssh",
                                       "flag=SF"]
    out = enc.transform(train, invalid="error")
    X = out.X.astype(np.float64)
    assert out.X.dtype == np.float32 and X.shape == (50, 46)
    varying = [i for i in range(38) if i != CONST]
    np.testing.assert_allclose(X[:, varying].mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(X[:, varying].std(0), 1, atol=1e-5)
    assert (X[:, CONST] == 0).all() and enc.scale_[CONST] == 1.0  # constant column -> 0
    # log1p is applied to byte counts before standardising.
    z = np.log1p(train.numeric[:, SRC])
    np.testing.assert_allclose(X[:, SRC], (z - z.mean()) / z.std(), rtol=1e-5)
    assert (X[:, 38:].sum(1) == 3).all()  # one hot per categorical column
    assert FeatureEncoder(dtype="float64").fit(train).transform(train).X.dtype == np.float64


def test_unknown_category_gets_zero_block_and_mask(train):
    enc = FeatureEncoder().fit(train)
    test = make_table(train.numeric[:4], ["tcp", "icmp", "udp", "icmp"],
                      ["http", "gopher", "ftp", "http"], ["SF", "SF", "RSTO", "SF"])
    out = enc.transform(test)
    assert out.unseen_category.tolist() == [False, True, True, True]
    assert out.unknown_counts == {"protocol_type": 2, "service": 1, "flag": 1}
    assert out.unknown_values == {"protocol_type": {"icmp": 2}, "service": {"gopher": 1},
                                  "flag": {"RSTO": 1}}
    proto = slice(38, 40)
    assert (out.X[[1, 3], proto] == 0).all() and out.X[1, 38:].sum() == 1  # only service=gopher missing
    assert not out.invalid_value.any() and out.needs_review.tolist() == [False, True, True, True]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, -1.0])
def test_invalid_numeric_values_are_flagged_not_imputed(train, value):
    enc = FeatureEncoder().fit(train)
    numeric = train.numeric[:3].copy()
    numeric[1, RATE] = value
    test = make_table(numeric, ["tcp"] * 3, ["http"] * 3, ["SF"] * 3)
    out = enc.transform(test)
    assert out.invalid_value.tolist() == [False, True, False]
    assert (out.X[1] == 0).all() and np.isfinite(out.X).all()
    # Other rows are untouched by the bad one.
    np.testing.assert_array_equal(out.X[[0, 2], :38], enc.transform(train).X[[0, 2], :38])
    with pytest.raises(ValueError, match=r"row 1 \(line 2 of <test>\), column 'serror_rate'"):
        enc.transform(test, invalid="error")
    with pytest.raises(ValueError, match="cannot fit on invalid values"):
        FeatureEncoder().fit(test)


def test_round_trip_is_bit_identical_and_json_safe(train):
    enc = FeatureEncoder().fit(train)
    text = json.dumps(enc.to_dict(), allow_nan=False)
    again = FeatureEncoder.from_dict(json.loads(text))
    assert again.feature_names_ == enc.feature_names_
    test = make_table(train.numeric[::-1] * 1.7, ["udp", "icmp"] * 25, ["ssh", "x"] * 25, ["SF"] * 50)
    a, b = enc.transform(test).X, again.transform(test).X
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("edit", [
    lambda s: s.update(mean=s["mean"][:-1]),
    lambda s: s.update(scale=[0.0] * len(s["scale"])),
    lambda s: s.update(mean=["1"] * len(s["mean"])),
    lambda s: s.update(version=99),
    lambda s: s.update(dtype="int8"),
    lambda s: s["categorical"][0].update(categories=["tcp", "tcp"]),
    lambda s: s.pop("log1p_columns"),
])
def test_from_dict_rejects_tampered_state(train, edit):
    state = json.loads(json.dumps(FeatureEncoder().fit(train).to_dict()))
    edit(state)
    with pytest.raises(ValueError):
        FeatureEncoder.from_dict(state)


def test_column_mismatch_and_unfitted(train):
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureEncoder().transform(train)
    enc = FeatureEncoder(numeric_columns=NUMERIC_COLUMNS[::-1]).fit
    with pytest.raises(ValueError, match="numeric columns"):
        enc(train)
    assert CATEGORICAL == ("protocol_type", "service", "flag")


@needs_data
def test_real_data_train_to_test():
    train = load_nsl_kdd("train", os.environ["BARENET_DATA"], download=False)
    test = load_nsl_kdd("test+", os.environ["BARENET_DATA"], download=False)
    enc = FeatureEncoder().fit(train)
    assert len(enc.feature_names_) == 122  # 38 numeric + 3 protocols + 70 services + 11 flags
    out = enc.transform(test, invalid="error")
    assert out.X.shape == (22544, 122) and not out.needs_review.any()
    again = FeatureEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again.transform(test).X.tobytes() == out.X.tobytes()
