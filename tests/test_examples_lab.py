"""The lab scripts (examples/lab/) must keep running and keep printing what docs/lab.md explains.

Every step runs in its --fast mode: on the synthetic stand-in data always, and on the real data too when
BARENET_DATA points at it. Step 8 (NSL-KDD) has no stand-in: without the data it must skip cleanly, with
BARENET_DATA/nsl-kdd it runs its --fast path for real.
"""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parents[1] / "examples" / "lab"
STEPS = ["step1_environment", "step2_activations", "step3_initialization", "step4_forward", "step5_backprop",
         "step6_minibatch", "step7_dropout", "step8_capstone"]
REAL_DATA = os.environ.get("BARENET_DATA")
DATA_MODES = ["synthetic"] + (["real"] if REAL_DATA and (Path(REAL_DATA) / "mnist").is_dir() else [])
NSL_KDD = bool(REAL_DATA) and (Path(REAL_DATA) / "nsl-kdd").is_dir()
needs_nsl_kdd = pytest.mark.skipif(not NSL_KDD, reason="step 8 needs BARENET_DATA/nsl-kdd")


@pytest.fixture
def lab(monkeypatch):
    """Import a step module by name (examples/lab on sys.path, as when the script is run directly)."""
    monkeypatch.syspath_prepend(str(LAB))

    def load(name):
        return importlib.import_module(name)

    return load


@pytest.fixture(params=DATA_MODES)
def data_mode(request, monkeypatch):
    if request.param == "synthetic":
        monkeypatch.delenv("BARENET_DATA", raising=False)
    return request.param


def run(lab, capsys, name, *extra):
    lab(name).main(["--fast", *extra])
    return capsys.readouterr().out


def floats_after(label, text):
    return [float(m) for m in re.findall(rf"{re.escape(label)}\s+([0-9.]+(?:e[-+]\d+)?)", text)]


def table_errors(block):
    """Relative errors from a 'parameter  relative error  < 1e-6?' table."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s+(\S+)\s+([0-9.]+(?:e[-+]\d+)?)\s+(?:PASS|FAIL)$",
                                                               block, flags=re.MULTILINE)}


def test_step1_environment(lab, capsys):
    out = run(lab, capsys, "step1_environment")
    for line in ("Step 1 - Environment", "NumPy", "BLAS", "seed = 0", "GFLOP/s"):
        assert line in out
    assert re.search(r"standard_normal\(4\) = \[ 0\.12573", out)  # the seed's first draws, the same everywhere


def test_step2_activations(lab, capsys):
    out = run(lab, capsys, "step2_activations")
    section = out.split("Analytic derivative vs central difference")[1].split("Softmax")[0]
    errors = [float(x) for x in re.findall(r"\s([0-9.]+e-\d+)$", section, flags=re.MULTILINE)]
    assert len(errors) == 4 and max(errors) < 1e-6
    checks = out.split("gradient checker on each activation layer")[1].split("The dying ReLU")[0]
    assert checks.count("PASS") == 5 and "FAIL" not in checks
    assert "max |J - numeric Jacobian|" in out
    assert "ReLU        max over dead units = 0" in out  # a dead unit gets exactly zero gradient
    leaky = floats_after("LeakyReLU   min over the same   =", out)
    assert leaky and leaky[0] > 0


def test_step3_initialization(lab, capsys, data_mode):
    out = run(lab, capsys, "step3_initialization")
    assert "standard deviation of each layer's ReLU output" in out and "gradient norm ||dL/dW||" in out
    activations = out.split("gradient norm")[0]
    rows = re.findall(r"^\s+(\d+)\s+0\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", activations, flags=re.MULTILINE)
    assert len(rows) == 10  # one row per layer, zero init exactly 0 throughout
    he = [float(r[4]) for r in rows]
    small = [float(r[1]) for r in rows]
    assert max(he) / min(he) < 3  # He keeps the variance steady ...
    assert small[-1] < 1e-6 * small[0]  # ... N(0, 0.01^2) lets it vanish
    sym = out.split("The symmetry problem")[1]
    assert re.search(r"zeros \+ relu\s+0\s+1 / 32\s+1 / 32", sym)
    assert re.search(r"zeros \+ sigmoid\s+\S+\s+1 / 32\s+1 / 32", sym)
    assert re.search(r"he_normal \+ relu\s+\S+\s+32 / 32\s+32 / 32", sym)


def test_step4_forward(lab, capsys, data_mode):
    out = run(lab, capsys, "step4_forward")
    assert "max difference = 0" in out
    assert re.search(r"0\s+Dense\s+z = h W \+ b\s+\(8, (784|64)\)\s+\(8, 32\)", out)
    assert "logits (8, 10) -> softmax -> probabilities (8, 10)" in out


def test_step5_backprop(lab, capsys):
    out = run(lab, capsys, "step5_backprop")
    correct, buggy = out.split("A bug the gradient check catches")
    errors = table_errors(correct)
    assert {"0.W", "0.b", "2.W", "2.b", "input", "3.W", "6.b"} <= set(errors)
    assert max(errors.values()) < 1e-6 and "FAIL" not in correct
    bug = table_errors(buggy)
    assert bug["0.W"] > 1e-2 and bug["input"] > 1e-2 and bug["2.W"] < 1e-6
    assert re.search(r"max \|\(p - y\)/n - numerical dL/dz\| = \d\.\de-1\d", out)


def test_step6_minibatch(lab, capsys, data_mode):
    out = run(lab, capsys, "step6_minibatch")
    assert re.search(r"^\s+1\s+500\s+1,000\s", out, flags=re.MULTILINE)  # batch 1: 500 updates/epoch, 2 epochs
    assert re.search(r"^\s+64\s+8\s+16\s", out, flags=re.MULTILINE)
    assert re.search(r"^\s+500 \(full\)\s+1\s+2\s", out, flags=re.MULTILINE)
    assert "Validation accuracy per epoch" in out and "val acc" in out


def test_step7_dropout(lab, capsys, data_mode):
    out = run(lab, capsys, "step7_dropout")
    assert "lab claim : gap 0.087 without dropout -> 0.033 with dropout" in out
    measured = re.search(r"measured  : gap (-?[0-9.]+) without dropout -> (-?[0-9.]+) with dropout", out)
    assert measured
    assert "Dropout(0.2) -> Dense(64) -> ReLU -> Dropout(0.5)" in out


def test_step8_capstone_skips_without_data(lab, capsys, monkeypatch):
    monkeypatch.delenv("BARENET_DATA", raising=False)
    out = run(lab, capsys, "step8_capstone")  # returns normally: the script exits 0
    assert "Step 8 - Capstone" in out and "SKIPPED: BARENET_DATA is not set" in out
    assert "BARENET_DATA=<folder> python examples/lab/step8_capstone.py" in out


def test_step8_capstone_skips_without_nsl_kdd(lab, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BARENET_DATA", str(tmp_path))  # set, but no nsl-kdd/ in it
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # and no cached copy either
    out = run(lab, capsys, "step8_capstone")
    assert "SKIPPED: no usable NSL-KDD files under" in out and "BARENET_DATA=<folder>" in out


@needs_nsl_kdd
def test_step8_capstone(lab, capsys):
    out = run(lab, capsys, "step8_capstone")
    assert "a random 3,000 of its flows (--fast)" in out
    assert "members=1, epochs=2" in out and "5-member ensemble" in out
    assert re.search(r"^\s+0\s+Dense\(units=64", out, flags=re.MULTILINE)  # the member's summary
    calib = re.search(r"before \(T = 1\)\s+1\s+([0-9.]+)\s+([0-9.]+)\n"
                      r"\s+after\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", out)
    assert calib and float(calib.group(3)) > 0
    assert float(calib.group(4)) <= float(calib.group(1)) + 1e-9  # T minimises the validation NLL
    assert "lab claim : about 14 % of flows flagged for human review" in out
    measured = re.search(r"measured  : ([0-9.]+) % of KDDTest\+ flagged \(([0-9.]+) % of KDDTest-21\); on KDDTest\+ "
                         r"accuracy ([0-9.]+)\s+on the auto-decided flows vs ([0-9.]+) on the flagged ones", out)
    assert measured
    assert 10 <= float(measured.group(1)) <= 20 and 10 <= float(measured.group(2)) <= 20
    assert float(measured.group(3)) > float(measured.group(4))  # the flagged flows are the hard ones
    reasons = out.split("Why flows were deferred")[1].split("never seen in training")[0]
    for reason in ("invalid_value", "unseen_category", "novel", "low_confidence", "disagreement"):
        assert re.search(rf"^\s+{reason}\s+[\d,]+\s+[\d,]+$", reasons, flags=re.MULTILINE), reason
    assert re.search(r"^\s+KDDTest\+\s+3,750\s", out, flags=re.MULTILINE)  # the 17 test-only attack types
    coverage = out.split("Risk-coverage")[1]
    rows = re.findall(r"^\s+(\d+\.\d) %((?:\s+[0-9.]+){8})$", coverage, flags=re.MULTILINE)  # 4 rankings x 2 files
    assert [r[0] for r in rows] == ["0.0", "5.0", "10.0", "14.0", "20.0", "30.0"]
    first = [float(x) for x in rows[0][1].split()]
    assert len(set(first[:4])) == 1 and len(set(first[4:])) == 1  # nothing reviewed: every ranking is the same
    assert "burst threshold      t_burst" in out and "Test+ burst" in coverage
    assert "ranked by confidence alone" in coverage


TIMING = re.compile(r"[\d,]+(\.\d+)? (ms|s|us)\b")


@pytest.mark.parametrize("name", STEPS[1:])
def test_same_seed_same_output(lab, capsys, name):
    """Apart from timings, a seed fixes every printed number."""
    def normalised():  # timings out; then widths, which follow the timings' lengths (spaces, table rules)
        text = TIMING.sub("<time>", run(lab, capsys, name, "--seed", "3"))
        return re.sub(r"\s+", " ", re.sub(r"-{2,}", "--", text))

    assert normalised() == normalised()


@pytest.mark.parametrize("name, png", [("step3_initialization", "step3_init.png"),
                                       ("step6_minibatch", "step6_learning_curves.png"),
                                       ("step7_dropout", "step7_dropout_gap.png"),
                                       pytest.param("step8_capstone", "step8_confidence.png", marks=needs_nsl_kdd),
                                       pytest.param("step8_capstone", "step8_risk_coverage.png",
                                                    marks=needs_nsl_kdd)])
def test_plots(lab, capsys, tmp_path, name, png):
    pytest.importorskip("matplotlib")
    out = run(lab, capsys, name, "--plot-dir", str(tmp_path))
    path = tmp_path / png
    assert path.is_file() and f"plot written: {path.as_posix()}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 150_000


def test_make_docs(lab, tmp_path):
    out = tmp_path / "lab.md"
    lab("make_docs").main(["--fast", "--steps", "2,5", "--out", str(out), "--plot-dir", str(tmp_path / "img")])
    text = out.read_text()
    assert "## Step 2: Activations and their derivatives" in text and "## Step 5: Loss and backpropagation" in text
    assert "Generated by examples/lab/make_docs.py" in text
    assert "Step 5 - Loss and backpropagation" in text  # the captured output itself
    assert "## Step 3" not in text


def test_committed_docs_cover_every_step():
    doc = LAB.parents[1] / "docs" / "lab.md"
    if not doc.exists():
        pytest.skip("docs/lab.md not generated yet")
    text = doc.read_text()
    for i, name in enumerate(STEPS, start=1):
        assert f"## Step {i}:" in text and f"examples/lab/{name}.py" in text
    for png in re.findall(r"\]\((img/lab/[^)]+\.png)\)", text):
        assert (doc.parent / png).is_file(), png
