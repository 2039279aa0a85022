"""Loading NSL-KDD (local, cache, download) and validating flow CSV files.

No test touches the network: an autouse fixture makes urllib's urlopen fail the
test, and the download path is exercised with an injected fake opener.
"""

import gzip
import hashlib
import io
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

import barenet as bn
from nids_triage import datasets
from nids_triage.datasets import DataNotFoundError, load_nsl_kdd
from nids_triage.flows import FlowFileError, read_flow_csv
from nids_triage.schema import FEATURE_COLUMNS

DATA = os.environ.get("BARENET_DATA")
needs_data = pytest.mark.skipif(
    not DATA, reason="BARENET_DATA is not set (folder holding nsl-kdd/); CI sets it")

# First row of KDDTrain+.
ROW = ("0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,"
       "1.00,0.00,0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00").split(",")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tests must not use the network")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """No BARENET_DATA and an empty XDG cache, so only what a test sets up is found."""
    monkeypatch.delenv("BARENET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def row(*, label=None, difficulty=None, **changes):
    fields = list(ROW)
    for name, value in changes.items():
        fields[FEATURE_COLUMNS.index(name)] = value
    extra = [x for x in (label, difficulty) if x is not None]
    return ",".join(fields + extra)


# ------------------------------------------------------------- read_flow_csv ---

@pytest.mark.parametrize("extra", [{}, {"label": "normal"}, {"label": "smurf", "difficulty": "7"}])
def test_headerless_41_42_43_fields(tmp_path, extra):
    path = write(tmp_path / "flows.csv", [row(**extra), row(src_bytes="nan", **extra)])
    table = read_flow_csv(path, FEATURE_COLUMNS)
    assert len(table) == 2 and table.numeric.shape == (2, 38) and table.numeric.dtype == np.float64
    assert table.numeric[0, table.numeric_columns.index("src_bytes")] == 491
    assert np.isnan(table.numeric[1, 1])  # "nan" text is a number; the encoder rules on it
    assert table.categorical["service"].tolist() == ["ftp_data", "ftp_data"]
    assert (table.attack is None) == ("label" not in extra)
    assert (table.difficulty is None) == ("difficulty" not in extra)
    assert table.line.tolist() == [1, 2] and not table.bad.any()


def test_header_with_reordered_columns_and_gzip(tmp_path):
    names = list(reversed(FEATURE_COLUMNS)) + ["label"]
    values = list(reversed(ROW)) + ["normal"]
    path = tmp_path / "flows.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(",".join(names) + "\n" + ",".join(values) + "\n\n")  # blank line ignored
    table = read_flow_csv(path, FEATURE_COLUMNS)
    assert table.categorical["protocol_type"].tolist() == ["tcp"]
    assert table.numeric[0, 1] == 491 and table.attack.tolist() == ["normal"]
    assert table.line.tolist() == [2]


@pytest.mark.parametrize("lines, line_no, column, reason", [
    ([row(), row() + ",x"], 2, "dst_host_srv_rerror_rate", "field_count"),
    ([row(), row(), ",".join(ROW[:20])], 3, "is_host_login", "field_count"),
    ([row(), row(dst_bytes="12kB")], 2, "dst_bytes", "unparsable_number"),
    ([row(label="normal", difficulty="x")], 1, "difficulty", "unparsable_number"),
    ([row(service=" ")], 1, "service", "empty_value"),
])
def test_bad_rows_raise_naming_file_line_column(tmp_path, lines, line_no, column, reason):
    path = write(tmp_path / "bad.csv", lines)
    with pytest.raises(FlowFileError) as info:
        read_flow_csv(path, FEATURE_COLUMNS)
    err = info.value
    assert (err.line, err.column, err.reason) == (line_no, column, reason)
    assert str(path) in str(err) and f"line {line_no}" in str(err) and repr(column) in str(err)


@pytest.mark.parametrize("names, column, detail", [
    (FEATURE_COLUMNS[:-1], FEATURE_COLUMNS[-1], "missing column"),
    (FEATURE_COLUMNS + ("src_ip",), "src_ip", "unexpected column"),
    (FEATURE_COLUMNS + ("service",), "service", "named twice"),
])
def test_bad_header_raises(tmp_path, names, column, detail):
    path = write(tmp_path / "hdr.csv", [",".join(names), row()])
    with pytest.raises(FlowFileError, match=detail) as info:
        read_flow_csv(path, FEATURE_COLUMNS, on_bad_row="review")  # header errors always raise
    assert info.value.line == 1 and info.value.column == column
    assert str(path) in str(info.value)


def test_wrong_width_first_row_raises(tmp_path):
    path = write(tmp_path / "w.csv", [",".join(ROW[:40])])
    with pytest.raises(FlowFileError, match="expected 41, 42 or 43 fields"):
        read_flow_csv(path, FEATURE_COLUMNS)


def test_review_mode_keeps_every_row_in_order(tmp_path):
    lines = [row(), row(src_bytes="abc"), row() + ",1,2,3", row(duration="inf"), row(flag="")]
    path = write(tmp_path / "mixed.csv", lines)
    table = read_flow_csv(path, FEATURE_COLUMNS, on_bad_row="review")
    assert len(table) == 5 and table.line.tolist() == [1, 2, 3, 4, 5]
    assert table.bad_reason.tolist() == [None, "unparsable_number", "field_count", None, "empty_value"]
    assert table.bad.tolist() == [False, True, True, False, True]
    assert "line 2" in table.bad_message[1] and "'src_bytes'" in table.bad_message[1]
    assert np.isnan(table.numeric[table.bad]).all()  # placeholders an encoder will flag
    assert np.isinf(table.numeric[3, 0])
    assert table.raw[1][4] == "abc" and len(table.raw[2]) == 44


def test_empty_file(tmp_path):
    table = read_flow_csv(write(tmp_path / "e.csv", []), FEATURE_COLUMNS)
    assert len(table) == 0 and table.numeric.shape == (0, 38)


# -------------------------------------------------------------- load_nsl_kdd ---

@needs_data
def test_load_real_splits_from_data_dir():
    table = load_nsl_kdd("test-21", os.environ["BARENET_DATA"], download=False)
    assert len(table) == 11850 and table.numeric.shape == (11850, 38)
    assert table.source.endswith(os.path.join("nsl-kdd", "KDDTest-21.txt.gz"))
    assert table.difficulty.dtype == np.int64 and table.difficulty.max() < 21
    assert set(table.categorical) == {"protocol_type", "service", "flag"}


@needs_data
def test_env_var_and_direct_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("BARENET_DATA", os.environ["BARENET_DATA"])
    assert len(load_nsl_kdd("test-21", download=False, cache_dir=tmp_path)) == 11850
    folder = os.path.join(os.environ["BARENET_DATA"], "nsl-kdd")
    assert len(load_nsl_kdd("test+", folder, download=False)) == 22544


def fake_split(monkeypatch, stem="KDDTest-21", rows=3):
    """A tiny valid file whose SHA-256 is pinned for the test in place of the real one."""
    data = "".join(row(label="normal", difficulty="5") + "\n" for _ in range(rows)).encode()
    monkeypatch.setitem(datasets.SHA256, stem, hashlib.sha256(data).hexdigest())
    return data


class FakeOpener:
    def __init__(self, responses):
        self.responses, self.urls = responses, []

    def __call__(self, url, timeout):
        self.urls.append(url)
        reply = self.responses[len(self.urls) - 1]
        if isinstance(reply, Exception):
            raise reply
        return io.BytesIO(reply)


def test_download_falls_back_to_second_mirror_and_caches(monkeypatch, tmp_path, isolated_env):
    data = fake_split(monkeypatch)
    opener = FakeOpener([urllib.error.URLError("connection refused"), data])
    table = load_nsl_kdd("test-21", cache_dir=tmp_path / "cache", opener=opener)
    assert len(table) == 3 and opener.urls == [m + "KDDTest-21.txt" for m in datasets.MIRRORS]
    cached = tmp_path / "cache" / "KDDTest-21.txt"
    assert table.source == str(cached) and cached.read_bytes() == data
    assert os.listdir(tmp_path / "cache") == ["KDDTest-21.txt"]  # no temp file left behind
    # The next call is served from the cache without touching the opener.
    again = load_nsl_kdd("test-21", cache_dir=tmp_path / "cache", opener=FakeOpener([]))
    assert again.source == str(cached)


def test_download_checksum_mismatch_writes_nothing(monkeypatch, tmp_path, isolated_env):
    data = fake_split(monkeypatch)
    opener = FakeOpener([data + b"tampered", data[:-1]])
    with pytest.raises(DataNotFoundError) as info:
        load_nsl_kdd("test-21", cache_dir=tmp_path / "cache", opener=opener)
    assert str(info.value).count("checksum mismatch") == 2
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")


def test_local_checksum_mismatch_is_skipped_with_warning(monkeypatch, tmp_path, isolated_env):
    data = fake_split(monkeypatch)
    (tmp_path / "KDDTest-21.txt").write_bytes(data.replace(b"normal", b"smurf!"))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        with pytest.raises(DataNotFoundError, match="checksum mismatch"):
            load_nsl_kdd("test-21", tmp_path, download=False)
    table = load_nsl_kdd("test-21", tmp_path, download=False, verify=False)
    assert table.attack.tolist() == ["smurf!"] * 3


def test_error_lists_every_place(monkeypatch, tmp_path):
    monkeypatch.setenv("BARENET_DATA", str(tmp_path / "envdata"))
    with pytest.raises(DataNotFoundError) as info:
        load_nsl_kdd("train", tmp_path / "mine", download=False, cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for place in (tmp_path / "mine", tmp_path / "mine" / "nsl-kdd",
                  tmp_path / "envdata" / "nsl-kdd", tmp_path / "cache"):
        assert f"{place} (" in msg
    assert "download: skipped (download=False)" in msg
    assert "KDDTrain+.txt or KDDTrain+.txt.gz" in msg and "BARENET_DATA" in msg and "data_dir=" in msg


def test_network_errors_are_listed(monkeypatch, tmp_path, isolated_env):
    opener = FakeOpener([urllib.error.URLError("no route"), TimeoutError("timed out")])
    with pytest.raises(DataNotFoundError) as info:
        load_nsl_kdd("test+", cache_dir=tmp_path, opener=opener)
    assert "no route" in str(info.value) and "timed out" in str(info.value)
    assert "$BARENET_DATA: not set" in str(info.value)


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown split"):
        load_nsl_kdd("valid")


def test_atomic_write_keeps_old_file_on_failure(monkeypatch, tmp_path):
    target = tmp_path / "out.txt"
    bn.atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        bn.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.txt"]


def test_a_headerless_file_starting_with_a_land_attack_is_data_not_a_header(tmp_path):
    # "land" is both a feature column and an attack name: the first row must still be read as a flow
    path = tmp_path / "flows.csv"
    path.write_text(",".join(ROW + ["land", "21"]) + "\n" + ",".join(ROW + ["normal", "21"]) + "\n")
    table = read_flow_csv(path)
    assert len(table) == 2 and table.attack.tolist() == ["land", "normal"]
