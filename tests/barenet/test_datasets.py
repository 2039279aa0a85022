"""load_mnist: real IDX files, the search order, IDX validation, and the download path with a fake opener.

No test touches the network: the default opener is replaced by one that fails the test if called.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import barenet as bn
from barenet import datasets

REPO = Path(__file__).resolve().parents[2]
_env = os.environ.get("BARENET_DATA")
REAL_DATA = None if not _env else (Path(_env) if Path(_env).is_absolute() else (REPO / _env)).resolve()


def _real(kind):
    if REAL_DATA is None or not (REAL_DATA / kind).is_dir():
        pytest.skip(f"real {kind} files not found: set BARENET_DATA to the shared data folder")
    return REAL_DATA / kind


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No network, no real cache, no BARENET_DATA unless a test sets it."""
    def no_network(url):
        raise AssertionError(f"a test tried to reach the network: {url}")

    monkeypatch.setattr(datasets, "_default_opener", no_network)
    monkeypatch.delenv("BARENET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# ------------------------------------------------------------------------------------------------
# synthetic IDX files
# ------------------------------------------------------------------------------------------------
def idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return b"".join(v.to_bytes(4, "big") for v in (2051, n, rows, cols)) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return (2049).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.astype(np.uint8).tobytes()


def synthetic(n_train=6, n_test=4, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "train_images": idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train_labels": idx_labels(np.arange(n_train) % 10),
        "test_images": idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "test_labels": idx_labels(np.arange(n_test)[::-1] % 10),
    }


def write(folder: Path, content: dict, *, gz=True, dotted=False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for role, data in content.items():
        name = datasets.FILES[role]
        if dotted:
            name = name.replace("-idx", ".idx", 1)  # the "train-images.idx3-ubyte" spelling
        (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return folder


def check_matches(result, content):
    (X_train, y_train), (X_test, y_test) = result
    assert X_train.dtype == np.uint8 and X_train.shape[1:] == (28, 28)
    assert X_train.tobytes() == content["train_images"][16:]
    assert y_train.tobytes() == content["train_labels"][8:]
    assert X_test.tobytes() == content["test_images"][16:] and y_test.tobytes() == content["test_labels"][8:]


# ------------------------------------------------------------------------------------------------
# the real files
# ------------------------------------------------------------------------------------------------
def test_real_mnist_through_barenet_data(monkeypatch):
    folder = _real("mnist")
    monkeypatch.setenv("BARENET_DATA", str(folder.parent))
    (X_train, y_train), (X_test, y_test) = bn.load_mnist(download=False)
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert X_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert X_train.mean() == pytest.approx(33.32, abs=0.01) and X_train.max() == 255


def test_real_fashion_mnist_from_an_explicit_folder():
    folder = _real("fashion-mnist")
    (X_train, y_train), (X_test, y_test) = bn.load_mnist(folder, kind="fashion-mnist", download=False)
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10


@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
def test_pinned_checksums_match_the_real_decompressed_files(kind):
    folder = _real(kind)
    for role, stem in datasets.FILES.items():
        content = gzip.decompress((folder / (stem + ".gz")).read_bytes())
        assert hashlib.sha256(content).hexdigest() == datasets.SHA256[kind][role], role


def test_download_of_the_real_content_passes_the_pinned_checksums(tmp_path):
    folder = _real("mnist")
    served = []

    def opener(url):
        served.append(url)
        return io.BytesIO((folder / url.rsplit("/", 1)[1]).read_bytes())

    (X_train, y_train), _ = bn.load_mnist(kind="mnist", opener=opener)
    assert len(served) == 4 and all(u.startswith(datasets.MIRRORS["mnist"][0]) for u in served)
    assert X_train.shape == (60000, 28, 28) and y_train[:3].tolist() == [5, 0, 4]
    assert sorted(p.name for p in datasets.cache_dir("mnist").iterdir()) == sorted(
        s + ".gz" for s in datasets.FILES.values())


# ------------------------------------------------------------------------------------------------
# where it looks
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz, dotted", [(True, False), (False, False), (False, True), (True, True)])
def test_explicit_folder_gz_or_uncompressed_either_spelling(tmp_path, gz, dotted):
    content = synthetic()
    check_matches(bn.load_mnist(write(tmp_path / "d", content, gz=gz, dotted=dotted), download=False), content)


def test_search_order_data_dir_then_barenet_data_then_cache(tmp_path, monkeypatch):
    a, b, c = synthetic(seed=1), synthetic(seed=2), synthetic(seed=3)
    explicit = write(tmp_path / "explicit", a)
    write(tmp_path / "env" / "mnist", b)
    write(datasets.cache_dir("mnist"), c)
    monkeypatch.setenv("BARENET_DATA", str(tmp_path / "env"))
    check_matches(bn.load_mnist(explicit, download=False), a)
    check_matches(bn.load_mnist(tmp_path / "nowhere", download=False), b)  # an empty data_dir falls through
    check_matches(bn.load_mnist(download=False), b)
    monkeypatch.delenv("BARENET_DATA")
    check_matches(bn.load_mnist(download=False), c)
    assert datasets.cache_dir("mnist") == tmp_path / "cache" / "barenet" / "mnist"


def test_data_dir_may_hold_a_kind_subfolder(tmp_path):
    content = synthetic()
    write(tmp_path / "root" / "fashion-mnist", content)
    check_matches(bn.load_mnist(tmp_path / "root", kind="fashion-mnist", download=False), content)


def test_nothing_found_lists_every_place_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("BARENET_DATA", str(tmp_path / "shared"))
    partial = tmp_path / "partial"
    write(partial, {k: v for k, v in synthetic().items() if k != "test_labels"})
    with pytest.raises(FileNotFoundError) as info:
        bn.load_mnist(partial, download=False)
    message = str(info.value)
    assert "could not find or download mnist" in message
    assert f"data_dir {partial}: missing t10k-labels-idx1-ubyte[.gz]" in message
    assert f"$BARENET_DATA/mnist {tmp_path / 'shared' / 'mnist'}: no such folder" in message
    assert f"cache {tmp_path / 'cache' / 'barenet' / 'mnist'}: no such folder" in message
    assert "download: not attempted (download=False)" in message
    monkeypatch.delenv("BARENET_DATA")
    with pytest.raises(FileNotFoundError, match=r"\$BARENET_DATA/mnist: BARENET_DATA is not set"):
        bn.load_mnist(download=False)


def test_unknown_kind():
    with pytest.raises(ValueError, match=r"unknown dataset kind 'kmnist'.*'fashion-mnist', 'mnist'"):
        bn.load_mnist(kind="kmnist")


# ------------------------------------------------------------------------------------------------
# validation of the IDX content
# ------------------------------------------------------------------------------------------------
def test_a_short_idx_file_is_a_clear_error(tmp_path):
    content = synthetic()
    content["train_images"] = content["train_images"][:-100]  # truncated
    folder = write(tmp_path / "d", content, gz=False)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: 4620 bytes, but dimensions \(6, 28, 28\) need "
                                         r"exactly 4720 \(the file is truncated"):
        bn.load_mnist(folder, download=False)


def test_a_corrupted_gzip_or_magic_number_is_a_clear_error(tmp_path):
    folder = write(tmp_path / "d", synthetic())
    gz = folder / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:50])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: damaged gzip data"):
        bn.load_mnist(folder, download=False)
    content = synthetic()
    content["train_images"] = content["train_labels"]  # labels where images belong
    folder = write(tmp_path / "e", content)
    with pytest.raises(ValueError, match=r"train images must be 3-D and labels 1-D.*swapped"):
        bn.load_mnist(folder, download=False)
    content["train_images"] = b"\x00\x00\x0d\x03" + synthetic()["train_images"][4:]  # float32 type code
    folder = write(tmp_path / "f", content)
    with pytest.raises(ValueError, match=r"bad IDX magic number 3331 \(0x00000d03\)"):
        bn.load_mnist(folder, download=False)


def test_inconsistent_counts_and_bad_labels(tmp_path):
    content = synthetic()
    content["test_labels"] = idx_labels(np.arange(3))  # 4 test images, 3 labels
    with pytest.raises(ValueError, match="4 test images but 3 labels"):
        bn.load_mnist(write(tmp_path / "a", content), download=False)
    content = synthetic()
    content["train_labels"] = idx_labels(np.array([0, 1, 2, 3, 4, 11]))
    with pytest.raises(ValueError, match="train labels must be digits 0..9, found 11"):
        bn.load_mnist(write(tmp_path / "b", content), download=False)


def test_parse_idx_edge_cases():
    np.testing.assert_array_equal(datasets.parse_idx(idx_labels(np.array([3, 1]))), [3, 1])
    with pytest.raises(ValueError, match="too short for an IDX header"):
        datasets.parse_idx(b"\x00\x00")
    with pytest.raises(ValueError, match="header cut short"):
        datasets.parse_idx(b"\x00\x00\x08\x03\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="trailing data"):
        datasets.parse_idx(idx_labels(np.array([1])) + b"\x00")


# ------------------------------------------------------------------------------------------------
# downloading (fake opener; pinned checksums swapped for the synthetic files')
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_mirror(monkeypatch):
    content = synthetic(seed=9)
    monkeypatch.setitem(datasets.SHA256, "mnist", {r: hashlib.sha256(c).hexdigest() for r, c in content.items()})
    by_name = {datasets.FILES[r] + ".gz": gzip.compress(c) for r, c in content.items()}
    return content, by_name


def test_download_verifies_writes_atomically_and_then_uses_the_cache(fake_mirror):
    content, by_name = fake_mirror
    requested = []

    def opener(url):
        requested.append(url)
        return io.BytesIO(by_name[url.rsplit("/", 1)[1]])

    check_matches(bn.load_mnist(opener=opener), content)
    assert sorted(u.rsplit("/", 1)[1] for u in requested) == sorted(by_name)
    assert all(u.startswith("https://") for u in requested)
    cache = datasets.cache_dir("mnist")
    assert sorted(p.name for p in cache.iterdir()) == sorted(by_name)  # no temp files left
    assert (cache / "train-images-idx3-ubyte.gz").read_bytes() == by_name["train-images-idx3-ubyte.gz"]

    def must_not_be_called(url):
        raise AssertionError("the cache should have been used")

    check_matches(bn.load_mnist(opener=must_not_be_called), content)


def test_download_falls_back_to_the_next_mirror(fake_mirror):
    content, by_name = fake_mirror
    first, second = datasets.MIRRORS["mnist"][:2]

    def opener(url):
        if url.startswith(first):
            raise urllib.error.URLError("connection refused")
        assert url.startswith(second)
        return io.BytesIO(by_name[url.rsplit("/", 1)[1]])

    check_matches(bn.load_mnist(opener=opener), content)


def test_download_with_a_wrong_checksum_is_refused_and_nothing_is_cached(fake_mirror):
    assert fake_mirror  # the synthetic checksums are in place; the opener below serves something else

    def opener(url):
        return io.BytesIO(gzip.compress(b"<html>not the file you wanted</html>"))

    with pytest.raises(FileNotFoundError) as info:
        bn.load_mnist(opener=opener)
    message = str(info.value)
    assert "SHA-256 of the content is" in message and "download from https://" in message
    for mirror in datasets.MIRRORS["mnist"]:
        assert mirror in message
    cache = datasets.cache_dir("mnist")
    assert not cache.exists() or not list(cache.iterdir())


def test_an_oversized_download_is_refused(fake_mirror, monkeypatch):
    _, by_name = fake_mirror
    monkeypatch.setattr(datasets, "MAX_DOWNLOAD_BYTES", 10)
    with pytest.raises(FileNotFoundError, match="more than 10 bytes"):
        bn.load_mnist(opener=lambda url: io.BytesIO(by_name[url.rsplit("/", 1)[1]]))


def test_download_false_never_calls_the_opener():
    def opener(url):
        raise AssertionError("must not download")

    with pytest.raises(FileNotFoundError, match="not attempted"):
        bn.load_mnist(download=False, opener=opener)
