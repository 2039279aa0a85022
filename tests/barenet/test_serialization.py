"""Save/load: bit-exact round trip, and refusal of crafted, truncated, tampered or too-new files; atomic writes."""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

import barenet as bn
from barenet import serialization


def _trained(dtype="float32", labels=None, optimizer=None):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    if labels is not None:
        y = np.asarray(labels)[y]
    net = bn.build_mlp(hidden=(8, 6), n_outputs=3, dropout=0.1, l2=1e-3, seed=3, dtype=dtype,
                       optimizer=optimizer or bn.Adam(bn.CosineDecay(0.01, total_steps=50, warmup=5)))
    net.fit(X, y, epochs=3, batch_size=16, validation_fraction=0.2)
    net.optimizer.lr_scale = 0.5  # as ReduceLROnPlateau would leave it
    return net, X, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    labels = np.array(["benign", "ddos", "port_scan"])
    net, X, _ = _trained(dtype, labels)
    metadata = {"dataset": "nsl-kdd", "threshold": 0.8, "columns": ["a", "b"], "nested": {"k": [1, 2]}}
    path = tmp_path / "model.npz"
    net.save(path, metadata=metadata)
    back = bn.load(path)
    assert back.flat_params.dtype == np.dtype(dtype)
    for name, value in net.get_weights().items():
        np.testing.assert_array_equal(back.parameters()[name], value)
        assert back.parameters()[name].dtype == value.dtype
    assert back.optimizer.step_count == net.optimizer.step_count and back.optimizer.lr_scale == 0.5
    assert back.optimizer.current_lr == net.optimizer.current_lr
    for key, buf in net.optimizer.state.items():
        np.testing.assert_array_equal(back.optimizer.state[key], buf)
    assert back.classes_.tolist() == ["benign", "ddos", "port_scan"] and back.classes_.dtype == net.classes_.dtype
    assert back.history_ == net.history_ and back.history_.stop_reason == "completed"
    assert back.metadata == metadata
    assert back.rng.bit_generator.state == net.rng.bit_generator.state
    assert back.get_config() == net.get_config()
    np.testing.assert_array_equal(back.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert set(back.predict(X)) <= set(labels)


def test_round_trip_of_extra_arrays_sgd_state_and_manifest(tmp_path):
    net, _, _ = _trained(optimizer=bn.SGD(0.05, momentum=0.9, nesterov=True))
    path = tmp_path / "m.npz"
    extra = {"scaler_mean": np.arange(4.0), "vocab_ids": np.array([3, 1, 2], dtype=np.int16)}
    serialization.save(net, path, arrays=extra)
    back = bn.load(path)
    for k, v in extra.items():
        np.testing.assert_array_equal(back.extra_arrays[k], v)
        assert back.extra_arrays[k].dtype == v.dtype
    np.testing.assert_array_equal(back.optimizer.state["velocity"], net.optimizer.state["velocity"])
    manifest = bn.read_manifest(path)
    assert manifest["format"] == "barenet-model" and manifest["format_version"] == serialization.FORMAT_VERSION
    assert manifest["library_version"] == bn.__version__
    assert set(manifest["arrays"]) == {f"param:{k}" for k in net.parameters()} | {"opt:velocity"} | \
        {f"extra:{k}" for k in extra}
    with zipfile.ZipFile(path) as zf:  # a plain zip of .npy members: nothing else
        assert all(name.endswith(".npy") for name in zf.namelist())


def test_save_refuses_what_would_need_pickle(tmp_path):
    net, _, _ = _trained()
    with pytest.raises(ValueError, match="dtype object, which cannot be saved without pickle"):
        serialization.save(net, tmp_path / "x.npz", arrays={"bad": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="metadata must be JSON-serialisable"):
        net.save(tmp_path / "y.npz", metadata={"when": object()})
    assert not list(tmp_path.iterdir())
    net.save(tmp_path / "ok.npz")  # the refused saves left nothing bad on the model
    assert bn.load(tmp_path / "ok.npz").metadata == {} and bn.load(tmp_path / "ok.npz").extra_arrays == {}
    with pytest.raises(ValueError, match="has not been fitted or built"):
        bn.build_mlp(hidden=(3,)).save(tmp_path / "z.npz")


# ------------------------------------------------------------------------------------------------
# hostile and damaged files
# ------------------------------------------------------------------------------------------------
class Payload:
    """Unpickling this creates the marker file: stands in for arbitrary code execution."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _npy_bytes(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _rewrite(src, dst, replace=None, add=None):
    """Copy the zip ``src`` to ``dst`` with members replaced or added (name -> bytes)."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, replace.get(name, zin.read(name)))
        for name, data in add.items():
            zout.writestr(name, data)


def _manifest_member(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(bytes(np.load(io.BytesIO(zf.read("__manifest__.npy")))).decode())


def _with_manifest(manifest) -> bytes:
    """A crafted manifest whose own checksum is recomputed, as a deliberate attacker would: the deeper
    checks below must hold even then (the checksum only catches damage and careless edits)."""
    manifest = dict(manifest)
    manifest["manifest_sha256"] = serialization._manifest_digest(manifest)
    return _npy_bytes(np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8))


@pytest.fixture
def saved(tmp_path):
    net, _, _ = _trained()
    path = tmp_path / "good.npz"
    net.save(path)
    return net, path


def test_the_crafted_payload_is_live_when_pickle_is_allowed(tmp_path):
    # proves the payload used below really would run code if anything unpickled it
    marker = tmp_path / "pwned-control"
    data = _npy_bytes(np.array([Payload(marker)], dtype=object), allow_pickle=True)
    np.load(io.BytesIO(data), allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("member", ["param:0.W.npy", "__manifest__.npy"])
def test_a_pickled_object_array_in_place_of_a_declared_array_is_refused(saved, tmp_path, member):
    _, path = saved
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npz"
    _rewrite(path, evil, replace={member: _npy_bytes(np.array([Payload(marker)], dtype=object), allow_pickle=True)})
    with pytest.raises(bn.ModelFileError, match=r"refused|Object arrays"):
        bn.load(evil)
    if member == "__manifest__.npy":
        with pytest.raises(bn.ModelFileError, match="refused"):
            bn.read_manifest(evil)
    assert not marker.exists()


def test_an_extra_pickled_member_is_refused_without_running_it(saved, tmp_path):
    _, path = saved
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npz"
    payload = _npy_bytes(np.array([Payload(marker)], dtype=object), allow_pickle=True)
    _rewrite(path, evil, add={"extra:loot.npy": payload})
    with pytest.raises(bn.ModelFileError, match=r"arrays do not match the manifest \(unexpected: \['extra:loot'\]"):
        bn.load(evil)
    # and declaring it in the manifest does not help: reading it is refused
    manifest = _manifest_member(path)
    manifest["arrays"]["extra:loot"] = {"shape": [1], "dtype": "|O", "sha256": "0" * 64}
    _rewrite(path, evil, replace={"__manifest__.npy": _with_manifest(manifest)}, add={"extra:loot.npy": payload})
    with pytest.raises(bn.ModelFileError, match=r"array 'extra:loot' refused"):
        bn.load(evil)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_a_truncated_file_gives_a_clear_error(saved, tmp_path, keep):
    _, path = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(bn.ModelFileError, match=r"cut.npz: not a readable barenet model file \(truncated or not a zip"):
        bn.load(cut)


def test_not_a_model_file(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"hello, I am not a zip archive")
    with pytest.raises(bn.ModelFileError, match=r"not a barenet model file \(a model file is an .npz zip archive"):
        bn.load(junk)  # numpy's own message here would suggest allow_pickle=True: never ours
    text = tmp_path / "flows.csv"
    text.write_text("0,tcp,http,SF,181,5450\n")
    with pytest.raises(bn.ModelFileError, match="starts with b'0,tcp,'"):
        bn.load(text)
    with pytest.raises(bn.ModelFileError, match="a directory, not a barenet model file"):
        bn.load(tmp_path)
    cut = tmp_path / "cut.npz"
    np.savez(cut, a=np.zeros(1000))
    cut.write_bytes(cut.read_bytes()[:300])
    with pytest.raises(bn.ModelFileError, match="not a readable barenet model file"):
        bn.load(cut)  # a zip's start, its directory cut off
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(bn.ModelFileError, match="no manifest; this is not a barenet model file"):
        bn.load(plain)
    with pytest.raises(FileNotFoundError, match="no model file at"):
        bn.load(tmp_path / "absent.npz")


def test_a_tampered_array_fails_its_checksum(saved, tmp_path):
    net, path = saved
    tampered = tmp_path / "tampered.npz"
    W = net.parameters()["3.W"].copy()
    W[0, 0] += 1.0  # same shape and dtype, different content
    _rewrite(path, tampered, replace={"param:3.W.npy": _npy_bytes(W)})
    with pytest.raises(bn.ModelFileError, match=r"array 'param:3.W' fails its SHA-256 check"):
        bn.load(tampered)


def test_a_reshaped_or_missing_array_is_named(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "bad.npz"
    _rewrite(path, bad, replace={"param:0.b.npy": _npy_bytes(np.zeros(3, dtype=np.float32))})
    with pytest.raises(bn.ModelFileError, match=r"array 'param:0.b' is <f4\[3\], the manifest says <f4\[8\]"):
        bn.load(bad)
    manifest = _manifest_member(path)
    manifest["arrays"]["param:9.W"] = {"shape": [2, 2], "dtype": "<f4", "sha256": "0" * 64}
    _rewrite(path, bad, replace={"__manifest__.npy": _with_manifest(manifest)})
    with pytest.raises(bn.ModelFileError, match=r"missing: \['param:9.W'\]"):
        bn.load(bad)


def test_a_newer_format_version_is_refused(saved, tmp_path):
    _, path = saved
    manifest = _manifest_member(path)
    manifest["format_version"] = serialization.FORMAT_VERSION + 1
    newer = tmp_path / "newer.npz"
    _rewrite(path, newer, replace={"__manifest__.npy": _with_manifest(manifest)})
    with pytest.raises(bn.ModelFileError, match=rf"format version {serialization.FORMAT_VERSION + 1} is newer than"):
        bn.load(newer)
    with pytest.raises(bn.ModelFileError, match="is newer than"):
        bn.read_manifest(newer)


def test_a_foreign_format_or_unknown_layer_is_refused(saved, tmp_path):
    _, path = saved
    manifest = _manifest_member(path)
    other = tmp_path / "other.npz"
    _rewrite(path, other, replace={"__manifest__.npy": _with_manifest({**manifest, "format": "keras"})})
    with pytest.raises(bn.ModelFileError, match=r"format is 'keras', expected 'barenet-model'"):
        bn.load(other)
    manifest["config"]["layers"][1]["class"] = "subprocess.Popen"
    _rewrite(path, other, replace={"__manifest__.npy": _with_manifest(manifest)})
    with pytest.raises(bn.ModelFileError, match=r"cannot be built \(unknown layer type 'subprocess.Popen'"):
        bn.load(other)
    _rewrite(path, other, replace={"__manifest__.npy": _npy_bytes(np.frombuffer(b"{not json", dtype=np.uint8))})
    with pytest.raises(bn.ModelFileError, match="manifest is not valid JSON"):
        bn.load(other)


# ------------------------------------------------------------------------------------------------
# atomic writes
# ------------------------------------------------------------------------------------------------
def _boom(*args, **kwargs):
    raise OSError("simulated crash")


@pytest.mark.parametrize("target", ["os.fsync", "os.replace", "np.savez"])
def test_a_crash_mid_save_leaves_the_previous_file_and_no_temp_files(saved, monkeypatch, target):
    net, path = saved
    before = path.read_bytes()
    old_weights = net.get_weights()
    net.flat_params += 1.0  # the model changed since the last save
    module, name = target.split(".")
    monkeypatch.setattr(os if module == "os" else np, name, _boom)
    with pytest.raises(OSError, match="simulated crash"):
        net.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["good.npz"]  # no .tmp-* left behind
    loaded = bn.load(path)
    for k, v in old_weights.items():
        np.testing.assert_array_equal(loaded.parameters()[k], v)


def test_atomic_write_bytes_replaces_whole_files(tmp_path):
    path = tmp_path / "f.bin"
    bn.atomic_write_bytes(path, b"first")
    bn.atomic_write_bytes(path, b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_creates_folders_and_keeps_a_readable_mode(tmp_path):
    target = tmp_path / "new" / "folder" / "file.bin"
    bn.atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    assert target.stat().st_mode & 0o777 == 0o644
    target.chmod(0o640)
    bn.atomic_write_bytes(target, b"two")  # replacing keeps the mode the owner chose
    assert target.read_bytes() == b"two" and target.stat().st_mode & 0o777 == 0o640


def _rewrite_manifest(path, edit):
    """Rewrite a model file with ``edit(manifest)`` applied, keeping every array (a careless edit)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    manifest = json.loads(bytes(arrays["__manifest__"]).decode("utf-8"))
    edit(manifest)
    arrays["__manifest__"] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


def test_an_edited_manifest_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.where(X[:, 0] > 0, "attack", "normal")
    net = bn.build_mlp(hidden=(4,), n_outputs=2, seed=0)
    net.fit(X, y, epochs=1)
    path = tmp_path / "m.npz"
    net.save(path)
    # swapping the class names would silently invert every prediction
    _rewrite_manifest(path, lambda m: m["config"]["targets"].update(classes=["normal", "attack"]))
    with pytest.raises(bn.ModelFileError, match="manifest fails its SHA-256 check"):
        bn.load(path)


def test_a_bare_npy_file_is_not_a_model(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(bn.ModelFileError, match="single NumPy array, not a barenet model file"):
        bn.load(path)


@pytest.mark.parametrize("field, value", [("history", "garbage"), ("rng_state", [1, 2]), ("optimizer_state", 3),
                                          ("config", {"layers": "x"})])
def test_a_re_signed_manifest_with_wrong_types_is_a_model_file_error(saved, tmp_path, field, value):
    # someone edits the manifest and recomputes its digest: every field is still checked by building from it,
    # and a wrong type anywhere is a ModelFileError, never an AttributeError from deep inside
    _, path = saved
    manifest = _manifest_member(path)
    manifest[field] = value
    other = tmp_path / "resigned.npz"
    _rewrite(path, other, replace={"__manifest__.npy": _with_manifest(manifest)})
    with pytest.raises(bn.ModelFileError):
        bn.load(other)


def test_a_format_version_1_file_with_textbook_adam_moments_loads(saved, tmp_path):
    """Version 1 saved Adam's moving averages as opt:m / opt:v; version 2 saves the moving sums."""
    net, path = saved
    manifest = _manifest_member(path)
    assert {"opt:m_sum", "opt:v_sum"} <= set(manifest["arrays"])
    b1, b2 = net.optimizer.beta1, net.optimizer.beta2
    old = {"opt:m": net.optimizer.state["m_sum"] * np.float32(1 - b1),
           "opt:v": net.optimizer.state["v_sum"] * np.float32(1 - b2)}
    manifest["format_version"] = 1
    for key in ("opt:m_sum", "opt:v_sum"):
        del manifest["arrays"][key]
    for key, value in old.items():
        manifest["arrays"][key] = {"shape": list(value.shape), "dtype": value.dtype.str,
                                   "sha256": serialization._sha256(value)}
    v1 = tmp_path / "v1.npz"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(v1, "w") as zout:
        for name in zin.namelist():
            if name in ("opt:m_sum.npy", "opt:v_sum.npy"):
                continue
            zout.writestr(name, _with_manifest(manifest) if name == "__manifest__.npy" else zin.read(name))
        for key, value in old.items():
            zout.writestr(f"{key}.npy", _npy_bytes(value))
    loaded = bn.load(v1)
    assert set(loaded.optimizer.state) == {"m_sum", "v_sum"}
    for name in ("m_sum", "v_sum"):
        assert loaded.optimizer.state[name].dtype == np.float32
        np.testing.assert_allclose(loaded.optimizer.state[name], net.optimizer.state[name], rtol=1e-6, atol=1e-30)
