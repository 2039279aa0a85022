"""MNIST and Fashion-MNIST from their IDX files, with the standard library only (gzip, hashlib, urllib).

``load_mnist`` looks for the four files (``.gz`` or uncompressed, LeCun names or the ``name.idx3-ubyte``
spelling) in this order and uses the first folder that has all four:

1. ``data_dir`` (and ``data_dir/<kind>``) when given;
2. ``$BARENET_DATA/<kind>/``;
3. the user cache ``$XDG_CACHE_HOME/barenet/<kind>`` (default ``~/.cache/barenet/<kind>``);
4. with ``download=True``: a public mirror, into that cache. Each downloaded file must match the SHA-256 of
   its *decompressed* content pinned below (mirrors re-gzip, so only the content hash is stable), and is
   written atomically, so an interrupted download never leaves a half file in the cache.

If none works, one ``FileNotFoundError`` lists every place looked at and why it failed. IDX structure
(magic number, dimensions, size) is validated with a ``ValueError`` that names the file.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .serialization import atomic_write_bytes

#: role -> LeCun file stem
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: SHA-256 of the decompressed IDX files (the official content; see shared/data/<kind>/README.md)
SHA256 = {
    "mnist": {
        "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

#: mirrors serving ``<stem>.gz``, tried in order
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

MAX_DOWNLOAD_BYTES = 64 * 2**20  # the largest .gz (Fashion-MNIST train images) is ~26 MB
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049  # 0x00000803: uint8, 3 dims;  0x00000801: uint8, 1 dim


def cache_dir(kind: str = "mnist") -> Path:
    """``$XDG_CACHE_HOME/barenet/<kind>``, else ``~/.cache/barenet/<kind>``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "barenet" / kind


def parse_idx(data: bytes, *, what: str = "IDX data") -> np.ndarray:
    """Decode uncompressed IDX bytes (uint8 payload) into an array, checking magic number and size."""
    if len(data) < 4:
        raise ValueError(f"{what}: only {len(data)} bytes, too short for an IDX header")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code != 0x08 or not 1 <= ndim <= 4:
        magic = int.from_bytes(data[:4], "big")
        raise ValueError(f"{what}: bad IDX magic number {magic} (0x{magic:08x}); expected uint8 data "
                         f"({_LABEL_MAGIC} for labels, {_IMAGE_MAGIC} for images)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{what}: header cut short ({len(data)} bytes, the {ndim} dimensions need {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(f"{what}: {len(data)} bytes, but dimensions {dims} need exactly {expected} "
                         "(the file is truncated or has trailing data)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _decompress(raw: bytes, name: str) -> bytes:
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{name}: damaged gzip data ({exc})") from None


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem.replace("-idx", ".idx", 1)):
        for candidate in (folder / (name + ".gz"), folder / name):
            if candidate.is_file():
                return candidate
    return None


def _read_folder(folder: Path) -> dict:
    """``{role: array}`` from a folder holding all four files; FileNotFoundError naming what is missing."""
    if not folder.is_dir():
        raise FileNotFoundError("no such folder")
    paths = {role: _find(folder, stem) for role, stem in FILES.items()}
    missing = [FILES[r] for r, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(m + '[.gz]' for m in missing)}")
    return {role: parse_idx(_decompress(p.read_bytes(), str(p)), what=str(p)) for role, p in paths.items()}


def _check_arrays(arrays: dict, source: str):
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(f"{source}: {split} images must be 3-D and labels 1-D; got shapes "
                             f"{images.shape} and {labels.shape} (images and labels files swapped?)")
        if len(images) != len(labels):
            raise ValueError(f"{source}: {len(images)} {split} images but {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{source}: {split} labels must be digits 0..9, found {int(labels.max())}")
    return (arrays["train_images"], arrays["train_labels"]), (arrays["test_images"], arrays["test_labels"])


def _download(kind: str, target: Path, opener) -> None:
    """Fetch every missing file from the first mirror that serves content with the pinned SHA-256."""
    for role, stem in FILES.items():
        if _find(target, stem) is not None:
            continue
        errors = []
        for mirror in MIRRORS[kind]:
            url = mirror + stem + ".gz"
            try:
                with opener(url) as response:
                    raw = response.read(MAX_DOWNLOAD_BYTES + 1)
                if len(raw) > MAX_DOWNLOAD_BYTES:
                    raise ValueError(f"more than {MAX_DOWNLOAD_BYTES} bytes")
                digest = hashlib.sha256(_decompress(raw, url)).hexdigest()
                if digest != SHA256[kind][role]:
                    raise ValueError(f"SHA-256 of the content is {digest}, expected {SHA256[kind][role]}")
            except (OSError, ValueError) as exc:  # URLError/HTTPError are OSErrors
                errors.append(f"{url}: {exc}")
                continue
            target.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target / (stem + ".gz"), raw)
            break
        else:
            raise FileNotFoundError("download failed: " + "; ".join(errors))


def _default_opener(url):
    return urllib.request.urlopen(url, timeout=60)


def load_mnist(data_dir=None, kind: str = "mnist", download: bool = True, *, opener=None):
    """``(X_train, y_train), (X_test, y_test)``: uint8 images (n, 28, 28) and uint8 digit labels (n,).

    ``kind`` is ``"mnist"`` or ``"fashion-mnist"``. ``opener(url)`` returns a readable context manager
    (default ``urllib.request.urlopen``); tests inject a fake one so they never touch the network.
    """
    if kind not in SHA256:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {sorted(SHA256)}")
    places: list[tuple[str, Path | None]] = []
    if data_dir is not None:
        places += [("data_dir", Path(data_dir)), ("data_dir", Path(data_dir) / kind)]
    env = os.environ.get("BARENET_DATA")
    places.append((f"$BARENET_DATA/{kind}", Path(env) / kind if env else None))
    cache = cache_dir(kind)
    places.append(("cache", cache))
    tried = []
    for label, folder in places:
        if folder is None:
            tried.append(f"{label}: BARENET_DATA is not set")
            continue
        try:
            return _check_arrays(_read_folder(folder), str(folder))
        except FileNotFoundError as exc:
            tried.append(f"{label} {folder}: {exc}")
    if download:
        try:
            _download(kind, cache, opener or _default_opener)
            return _check_arrays(_read_folder(cache), str(cache))
        except FileNotFoundError as exc:
            tried.append(f"download from {MIRRORS[kind][0]} ... into {cache}: {exc}")
    else:
        tried.append("download: not attempted (download=False)")
    raise FileNotFoundError(f"could not find or download {kind}; looked at:\n  - " + "\n  - ".join(tried))
