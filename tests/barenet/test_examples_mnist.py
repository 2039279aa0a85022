"""examples/mnist_mlp.py runs end to end in a fast mode, so it cannot rot."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mnist_mlp.py"


def _mnist_root():
    value = os.environ.get("BARENET_DATA")
    if not value:
        return None
    path = Path(value) if Path(value).is_absolute() else (REPO / value).resolve()
    return path if (path / "mnist").is_dir() else None


def test_mnist_example_fast_mode(tmp_path):
    root = _mnist_root()
    if root is None:
        pytest.skip("real MNIST files not found: set BARENET_DATA to the shared data folder")
    env = {**os.environ, "BARENET_DATA": str(root), "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, str(EXAMPLE), "--epochs", "2", "--limit", "2000", "--hidden", "64",
                             "--lr", "0.003", "--no-download"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"machine: .*\d+ logical cores; python [\d.]+, numpy [\d.]+", out)
    assert "data: 1600 training, 400 validation, 10000 test images (mnist)" in out
    assert "total parameters: 50,890" in out  # 784*64 + 64 + 64*10 + 10
    table = out[out.index("epoch    loss"):].splitlines()
    assert table[0].split() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert [line.split()[0] for line in table[1:3]] == ["1", "2"]
    accuracy = float(re.search(r"test accuracy: ([\d.]+)", out).group(1))
    assert 0.6 < accuracy <= 1.0  # 2 epochs on 1,600 images get ~80 % (chance is 10 %)
    assert out.count("test accuracy") == 1 and result.stderr == ""


def test_mnist_example_data_dir_argument_and_clear_failure(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "BARENET_DATA"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    result = subprocess.run([sys.executable, str(EXAMPLE), "--data-dir", str(tmp_path / "empty"), "--no-download"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "FileNotFoundError: could not find or download mnist" in result.stderr
    assert f"data_dir {tmp_path / 'empty'}: no such folder" in result.stderr
