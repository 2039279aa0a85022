"""The benchmark harness still runs end to end (tiny synthetic sizes); speed is never asserted here."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

needed = [m for m in ("sklearn", "threadpoolctl") if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(needed), reason=f"the benchmark needs {needed}")
def test_tiny_run_writes_every_measurement(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import run

    systems = "barenet,sklearn" + (",torch-fused,torch-foreach" if importlib.util.find_spec("torch") else "")
    out = tmp_path / "results.json"
    assert run.main(["--tiny", "--no-renice", "--systems", systems, "--json", str(out)]) == 0

    report = json.loads(out.read_text())
    summary = report["summary"]
    names = systems.split(",")
    for task in ("nsl_b64", "nsl_b256", "wide_b128"):
        assert set(names) | {"gemm"} <= set(summary[task])
        assert ("gemm-torch" in summary[task]) == ("torch-foreach" in names)  # PyTorch's BLAS on the same products
        for system in names:
            stats = summary[task][system]
            assert stats["rows_per_s"]["median"] > 0
            assert 0.0 <= stats["accuracy"]["median"] <= 1.0
            assert stats["peak_rss_mib"]["median"] > 0
            if system != "barenet":  # paired ratio: barenet's rows/s over this system's, in the same round
                expected = summary[task]["barenet"]["rows_per_s"]["median"] / stats["rows_per_s"]["median"]
                assert stats["barenet_ratio"]["median"] == pytest.approx(expected)  # one round: the plain ratio
    for task in ("batch1", "batch64", "bulk"):
        assert summary[task]["barenet"]["rows_per_s"]["median"] > 0
        assert summary[task]["sklearn"]["barenet_ratio"]["n"] == 1
    assert "barenet / scikit-learn" in report["table"]
    assert ("the same GEMMs in PyTorch's BLAS" in report["table"]) == ("torch-foreach" in names)
    assert report["meta"]["machine"]["numpy"]
    if (REPO / ".git").exists():  # the measured code is on record
        assert len(report["meta"]["machine"]["git_commit"]) == 40


def test_gemm_replay_counts_every_batch():
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.gemm import replay_training_gemms
    finally:
        sys.path.remove(str(REPO))
    assert replay_training_gemms(130, [7, 5, 3], batch_size=64, epochs=2) > 0  # 64 + 64 + 2 rows per epoch
    # one BLAS thread: the 122 -> 64 products of a 300-row batch run as row blocks of 128, 128 and 44
    assert replay_training_gemms(300, [122, 64, 5], batch_size=300, epochs=1, row_blocks=True) > 0


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_gemm_replay_in_pytorchs_blas(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks.gemm import replay_training_gemms

    assert replay_training_gemms(130, [7, 5, 3], batch_size=64, epochs=2, library="torch") > 0
    with pytest.raises(ValueError, match="library"):
        replay_training_gemms(130, [7, 5, 3], batch_size=64, epochs=1, library="jax")


def test_step_block_benchmark_trains_the_same_weights_both_ways(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks.step_block import main

    from benchmarks import data

    if not (data.data_dir() / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST files not found (set BARENET_DATA)")
    main(["--rounds", "2", "--rows", "640"])  # raises SystemExit if the two settings' weights differ
    assert "blocks / one block" in capsys.readouterr().out


def test_nsl_kdd_preprocessing_shape():
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks import data
    finally:
        sys.path.remove(str(REPO))
    root = data.data_dir()
    if not (root / "nsl-kdd" / "KDDTrain+.txt.gz").exists():
        pytest.skip("NSL-KDD files not found (set BARENET_DATA)")
    Xtr, ytr, Xte, yte = data.load_nsl_kdd(root)
    assert Xtr.shape == (125_973, 122) and Xte.shape == (22_544, 122)
    assert Xtr.dtype == Xte.dtype == "float32"
    assert set(ytr.tolist()) == set(range(5)) and set(yte.tolist()) <= set(range(5))
    assert abs(float(Xtr.mean())) < 0.05  # standardised with the training statistics


def test_ratios_are_paired_round_by_round(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks.run import summarise

    def train(system, seed, rows_per_s):
        return {"spec": {"kind": "train", "task": "nsl_b64", "system": system, "seed": seed},
                "rows_per_s": rows_per_s, "seconds": 1.0, "accuracy": 0.9, "peak_rss_mib": 1.0, "start_rss_mib": 1.0}

    # round 0 ran on a slow machine for both systems, round 1 on a fast one: each round's ratio is 5
    results = [train("barenet", 0, 500.0), train("torch-foreach", 0, 100.0),
               train("barenet", 1, 1000.0), train("torch-foreach", 1, 200.0),
               train("barenet", 2, 750.0), train("torch-foreach", 2, 125.0)]
    ratio = summarise(results)["nsl_b64"]["torch-foreach"]["barenet_ratio"]
    assert ratio["median"] == 5.0 and ratio["min"] == 5.0 and ratio["max"] == 6.0 and ratio["n"] == 3


@pytest.mark.skipif(importlib.util.find_spec("threadpoolctl") is None, reason="the inline step needs threadpoolctl")
def test_inline_step_computes_barenets_step(monkeypatch, capsys):
    # the "NumPy floor" is only a floor if it does the same arithmetic: same weights after a few steps
    monkeypatch.syspath_prepend(str(REPO))
    import numpy as np
    from benchmarks.inline_step import inline_step_for, main

    import barenet as bn

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((16, 7), dtype=np.float32), np.arange(16) % 3
    nets = [bn.build_mlp(7, (5, 4), 3, seed=2) for _ in range(2)]
    for net in nets:
        net.fit(X, y, epochs=0)
    step = inline_step_for(nets[1], X, y)
    for _ in range(4):
        nets[0].loss_and_gradients(X, y)
        nets[0].optimizer.step(nets[0].flat_params, nets[0].flat_grads)
        step()
    np.testing.assert_allclose(nets[1].flat_params, nets[0].flat_params, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(nets[1].flat_params, bn.build_mlp(7, (5, 4), 3, seed=2).build(7).flat_params)

    main(["--batch-size", "8", "--hidden", "4", "--inputs", "6", "--classes", "3", "--rounds", "1", "--steps", "3"])
    assert "barenet / inline" in capsys.readouterr().out


def test_a_full_run_never_overwrites_another_and_quick_runs_stay_untracked(monkeypatch):
    import time

    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import run

    start = time.strptime("2026-12-05 06:40:07", "%Y-%m-%d %H:%M:%S")
    assert run.default_json_path("full", start).name == "2026-12-05T06-40.json"
    assert run.default_json_path("quick", start).name == "quick-latest.json"
    taken = time.strptime("2026-12-05 06:15:30", "%Y-%m-%d %H:%M:%S")  # a kept run's file exists for that minute
    assert (run.REPO / "benchmarks" / "results" / "2026-12-05T06-15.json").exists()
    assert run.default_json_path("full", taken).name == "2026-12-05T06-15-30.json"
    ignored = (run.REPO / ".gitignore").read_text().splitlines()
    assert "benchmarks/results/*-latest.json" in ignored


@pytest.mark.skipif(bool(needed), reason=f"the benchmark needs {needed}")
def test_two_cores_benchmark_checks_its_variants_compute_the_same(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks.two_cores import main

    main(["--rounds", "1"])  # raises SystemExit if a split Adam or a split product gives another result
    out = capsys.readouterr().out
    assert "halves / barenet" in out and "column halves / BLAS, 2 threads" in out
