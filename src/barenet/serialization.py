"""One-file model persistence without pickle: every array plus a JSON manifest, written atomically.

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays). It holds:

* ``__manifest__``: UTF-8 JSON as a uint8 array: format name and version, library version, the
  architecture (``Sequential.get_config()``), dtype, ``classes_``, optimizer hyper-parameters, step count
  and learning-rate scale, the generator state (so training resumes bit-exactly), the History,
  free-form application metadata, and for every array its shape, dtype and SHA-256.
* ``param:<name>`` for every parameter, ``opt:<buffer>`` for optimizer moments, ``extra:<name>`` for
  arrays an application stores beside the model.

``load`` opens the archive with ``allow_pickle=False`` (so no code can run), then refuses, with a
message saying which, a file that is truncated or not a zip, lacks a manifest, has a newer format
version, has arrays missing, extra, reshaped, retyped or whose checksum does not match.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from . import __version__
from .history import History

FORMAT_NAME = "barenet-model"
#: 2: Adam's state is its moving sums ``opt:m_sum``/``opt:v_sum``; version 1 files (``opt:m``/``opt:v``, the
#: moving averages) still load, converted.
FORMAT_VERSION = 2
MANIFEST_KEY = "__manifest__"


class ModelFileError(ValueError):
    """A model file that cannot be trusted or read; the message says which check failed."""


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then rename over the target.

    A crash at any point leaves either the old file or the new one, never a mix. Missing parent folders
    are created. The file keeps the mode of the file it replaces (0644 for a new one; mkstemp's own 0600
    would hide a shared model or queue export from its other readers).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _json_safe(value, what):
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable (dicts, lists, str, numbers, bool, None): {exc}") from None


def save(model, path, *, metadata=None, arrays=None) -> None:
    """Write ``model`` to ``path`` (one file). ``metadata``: JSON-safe dict; ``arrays``: extra named arrays."""
    model._check_ready()
    # validate before touching the model: a refused save must not leave bad metadata/arrays on it
    metadata = _json_safe(model.metadata if metadata is None else dict(metadata), "metadata")
    extra = dict(getattr(model, "extra_arrays", {}) if arrays is None else arrays)
    payload = {f"param:{k}": v for k, v in model.parameters().items()}
    opt_state = model.optimizer.state_dict()
    payload.update({f"opt:{k}": v for k, v in opt_state["buffers"].items()})
    payload.update({f"extra:{k}": np.asarray(v) for k, v in extra.items()})
    for key, value in payload.items():
        if value.dtype == object:
            raise ValueError(f"array {key!r} has dtype object, which cannot be saved without pickle")
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "config": model.get_config(),
        "optimizer_state": {"step_count": opt_state["step_count"], "lr_scale": opt_state["lr_scale"]},
        "rng_state": model.rng.bit_generator.state,
        "history": None if model.history_ is None else model.history_.to_dict(),
        "metadata": metadata,
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": _sha256(v)} for k, v in payload.items()},
    }
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    payload[MANIFEST_KEY] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    atomic_write_bytes(path, buffer.getvalue())
    model.metadata, model.extra_arrays = metadata, extra


def _manifest_digest(manifest: dict) -> str:
    """SHA-256 of the manifest's canonical JSON (sorted keys), without its own checksum field.

    Like the per-array checksums it detects damage and careless edits (a swapped ``classes`` list would
    otherwise silently invert every prediction); it is not a signature: whoever edits the file on purpose
    can recompute it. Sign or checksum model files out of band where that matters.
    """
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def read_manifest(path) -> dict:
    """The manifest of a model file (after the container checks), without building the model."""
    with _open(path) as archive:
        return _manifest(archive, path)


def _open(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path}")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: a directory, not a barenet model file")
    with open(path, "rb") as fh:
        head = fh.read(6)
    if not head.startswith((b"PK", b"\x93NUMPY")):  # neither a zip archive (.npz) nor a bare .npy array
        raise ModelFileError(f"{path}: not a barenet model file (a model file is an .npz zip archive; this "
                             f"one starts with {head!r})")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable barenet model file "
                             f"(truncated or not a zip archive: {exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a bare .npy array, not a model archive
        raise ModelFileError(f"{path}: a single NumPy array, not a barenet model file (an .npz archive)")
    return archive


def _manifest(archive, path) -> dict:
    if MANIFEST_KEY not in archive.files:
        raise ModelFileError(f"{path}: no manifest; this is not a barenet model file")
    try:
        manifest = json.loads(bytes(_read(archive, MANIFEST_KEY, path)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: the manifest is not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: format version {version!r} is newer than this barenet ({__version__}) "
                             f"understands (<= {FORMAT_VERSION}); upgrade barenet to load it")
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise ModelFileError(f"{path}: the manifest fails its SHA-256 check (the file was altered or damaged)")
    return manifest


def _read(archive, key, path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays need pickle, which we never allow
        raise ModelFileError(f"{path}: array {key!r} refused: {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ModelFileError(f"{path}: array {key!r} is damaged or truncated ({exc})") from None


def load(path):
    """Load a model written by :func:`save`; every check failure raises :class:`ModelFileError`."""
    from .network import Sequential

    with _open(path) as archive:
        manifest = _manifest(archive, path)
        declared = manifest.get("arrays", {})
        present = set(archive.files) - {MANIFEST_KEY}
        if present != set(declared):
            extra, missing = sorted(present - set(declared)), sorted(set(declared) - present)
            raise ModelFileError(f"{path}: arrays do not match the manifest (unexpected: {extra}, missing: {missing})")
        arrays = {}
        for key, info in declared.items():
            value = _read(archive, key, path)
            if list(value.shape) != info["shape"] or value.dtype.str != info["dtype"]:
                raise ModelFileError(f"{path}: array {key!r} is {value.dtype.str}{list(value.shape)}, "
                                     f"the manifest says {info['dtype']}{info['shape']}")
            if _sha256(value) != info["sha256"]:
                raise ModelFileError(f"{path}: array {key!r} fails its SHA-256 check (the file was altered or damaged)")
            arrays[key] = value
    # A manifest passes its digest when whoever edited it recomputed the digest too, so every field is still
    # checked by building from it: a wrong type anywhere (AttributeError, IndexError, ...) is a damaged file.
    damaged = (KeyError, TypeError, ValueError, AttributeError, IndexError)
    try:
        model = Sequential.from_config(manifest["config"])
    except damaged as exc:
        raise ModelFileError(f"{path}: the architecture in the manifest cannot be built ({exc})") from None
    params = {k[len("param:"):]: v for k, v in arrays.items() if k.startswith("param:")}
    try:
        model.set_weights(params)
    except ValueError as exc:
        raise ModelFileError(f"{path}: parameters do not fit the architecture ({exc})") from None
    try:
        _restore_state(model, manifest, arrays)
    except damaged as exc:
        raise ModelFileError(f"{path}: the training state in the manifest is incomplete or damaged ({exc!r})") from None
    return model


def _restore_state(model, manifest, arrays) -> None:
    """Optimizer state, generator state, History, metadata and extra arrays from a checked manifest."""
    buffers = {k[len("opt:"):]: v for k, v in arrays.items() if k.startswith("opt:")}
    model.optimizer.load_state_dict({**manifest["optimizer_state"], "buffers": buffers})
    model.rng.bit_generator.state = manifest["rng_state"]
    model.history_ = None if manifest.get("history") is None else History.from_dict(manifest["history"])
    model.metadata = manifest.get("metadata") or {}
    model.extra_arrays = {k[len("extra:"):]: v for k, v in arrays.items() if k.startswith("extra:")}
