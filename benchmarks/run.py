"""barenet against scikit-learn and PyTorch on the same data, network, batch size, epochs and Adam settings.

    python -m benchmarks.run               # the full comparison (< 10 minutes on a 2-core machine)
    python -m benchmarks.run --quick       # small subsets, one repeat (< 1 minute): is everything working?
    python -m benchmarks.run --tiny        # synthetic data (no data files needed): the smoke test's mode

Each measurement runs in a fresh worker process (``benchmarks.worker``), one after another on this machine,
and the repeats go round-robin (all systems once, then all again), so a slow spell of a busy machine hits
every system rather than one. The table shows medians over the repeats, the spread (max - min over the
median), barenet's speed as a ratio to each other system, and the test accuracy each reached, so nobody wins
by computing less. The ratio is paired: a round runs every system once, in a fixed order (barenet,
scikit-learn, PyTorch fused, PyTorch default, the GEMM replay), the round's ratio is barenet's rows/s over the
other system's in that round, and the table shows the median and range of the rounds' ratios (a slow spell
of the machine that spans a round cancels out of its ratio). Everything, repeats included, goes to a JSON
file, with the git commit measured.

BLAS threads: barenet picks them itself (one thread when every layer is <= 256 wide, else the BLAS default);
scikit-learn runs under the same ``threadpoolctl`` limit and PyTorch gets ``torch.set_num_threads`` of the
same number. Inference uses the default thread count for all three.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import data as bdata

REPO = Path(__file__).resolve().parents[1]
TRAIN_SYSTEMS = ("barenet", "sklearn", "torch-fused", "torch-foreach")
INFER_SYSTEMS = ("barenet", "sklearn", "torch")  # the PyTorch network, trained by either Adam
# the targets: barenet / other >= value
TARGETS = {("nsl_b64", "torch-foreach"): 5.0, ("nsl_b64", "sklearn"): 3.0, ("nsl_b256", "torch-foreach"): 3.0,
           ("nsl_b256", "sklearn"): 2.0, ("wide_b128", "torch-foreach"): 1.0, ("wide_b128", "sklearn"): 1.5,
           ("batch1", "torch"): 2.0, ("bulk", "torch"): 1.0}

MODES = {
    #          NSL rows, NSL epochs, MNIST rows, MNIST epochs, repeats, batch-1 calls, batch-64 calls, bulk rows
    "full": dict(nsl_rows=None, nsl_epochs=5, wide_rows=None, wide_epochs=2, repeats=3, calls_1=3000,
                 calls_64=1000, bulk_rows=100_000),
    "quick": dict(nsl_rows=10_000, nsl_epochs=1, wide_rows=2_000, wide_epochs=1, repeats=1, calls_1=300,
                  calls_64=100, bulk_rows=20_000),
    "tiny": dict(nsl_rows=600, nsl_epochs=1, wide_rows=300, wide_epochs=1, repeats=1, calls_1=20, calls_64=10,
                 bulk_rows=2_000),
}


# ------------------------------------------------------------------------------------------------
# data and workloads
# ------------------------------------------------------------------------------------------------
def prepare_data(mode: str, workdir: Path, seed: int = 0) -> dict:
    """Write the two data sets as .npz files for the workers; return their paths and shapes."""
    cfg = MODES[mode]
    if mode == "tiny":
        nsl = bdata.synthetic(cfg["nsl_rows"] * 2, 122, 5, seed)
        wide = bdata.synthetic(cfg["wide_rows"] * 2, 784, 10, seed + 1)
    else:
        Xtr, ytr, Xte, yte = bdata.load_nsl_kdd()
        keep = np.random.default_rng(seed).permutation(len(Xtr))[: int(0.9 * len(Xtr))]  # the lab's 90 % split
        nsl = (Xtr[keep], ytr[keep], Xte, yte)
        wide = bdata.load_mnist()
    out = {}
    for name, arrays, rows in (("nsl", nsl, cfg["nsl_rows"]), ("wide", wide, cfg["wide_rows"])):
        Xtr, ytr, Xte, yte = arrays
        if rows is not None:
            Xtr, ytr = Xtr[:rows], ytr[:rows]
        path = workdir / f"{name}.npz"
        np.savez(path, X_train=np.ascontiguousarray(Xtr, dtype=np.float32), y_train=ytr.astype(np.int64),
                 X_test=np.ascontiguousarray(Xte, dtype=np.float32), y_test=yte.astype(np.int64))
        out[name] = {"path": str(path), "n_train": len(Xtr), "n_test": len(Xte), "n_inputs": Xtr.shape[1],
                     "n_classes": int(max(ytr.max(), yte.max()) + 1)}
    return out


def default_threads() -> int:
    from threadpoolctl import threadpool_info

    blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(blas) if blas else (os.cpu_count() or 1)


def workloads(mode: str, datasets: dict, systems) -> list[dict]:
    """Every (workload, system) measurement of one repeat, as worker specs (the seed is set per repeat)."""
    cfg = MODES[mode]
    n_threads = default_threads()
    jobs = []
    for task, ds, hidden, batch, epochs in (("nsl_b64", "nsl", (64, 32), 64, cfg["nsl_epochs"]),
                                            ("nsl_b256", "nsl", (64, 32), 256, cfg["nsl_epochs"]),
                                            ("wide_b128", "wide", (512, 512), 128, cfg["wide_epochs"])):
        d = datasets[ds]
        threads = 1 if max(d["n_inputs"], *hidden) <= 256 else n_threads  # barenet's blas_threads="auto"
        base = dict(task=task, data=d["path"], hidden=list(hidden), n_classes=d["n_classes"], batch_size=batch,
                    epochs=epochs, threads=threads)
        jobs += [dict(base, kind="train", system=s) for s in TRAIN_SYSTEMS if s in systems]
        jobs.append(dict(base, kind="gemm", system="gemm", n_train=d["n_train"], n_inputs=d["n_inputs"]))
        if any(s.startswith("torch") for s in systems):  # the same products in PyTorch's BLAS
            jobs.append(dict(base, kind="gemm", system="gemm-torch", n_train=d["n_train"], n_inputs=d["n_inputs"]))
    d = datasets["nsl"]
    base = dict(task="infer", data=d["path"], hidden=[64, 32], n_classes=d["n_classes"], threads=1,
                infer_threads=n_threads, calls_1=cfg["calls_1"], calls_64=cfg["calls_64"], bulk_rows=cfg["bulk_rows"])
    jobs += [dict(base, kind="infer", system=s) for s in INFER_SYSTEMS
             if s in systems or (s == "torch" and any(t.startswith("torch") for t in systems))]
    return jobs


def run_worker(spec: dict, timeout: float) -> dict:
    env = dict(os.environ)
    paths = [str(REPO), str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed for {spec['task']}/{spec['system']}:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------
def _stats(values):
    v = np.asarray(values, dtype=float)
    med = float(np.median(v))
    return {"median": med, "min": float(v.min()), "max": float(v.max()), "n": len(v),
            "spread": float((v.max() - v.min()) / med) if med else 0.0}


def summarise(results: list[dict]) -> dict:
    """Group raw worker results into {workload: {system: stats}}, with barenet's paired ratio to each system."""
    rows: dict = {}
    speed: dict = {}  # {workload: {system: {round: rows/s}}}: the worker spec's seed is the round

    def add(task, system, key, value, seed=None):
        rows.setdefault(task, {}).setdefault(system, {}).setdefault(key, []).append(value)
        if key == "rows_per_s" and seed is not None:
            speed.setdefault(task, {}).setdefault(system, {})[seed] = value

    for r in results:
        spec = r["spec"]
        if spec["kind"] == "train":
            for key in ("rows_per_s", "seconds", "accuracy", "peak_rss_mib", "start_rss_mib"):
                add(spec["task"], spec["system"], key, r[key], spec["seed"])
            add(spec["task"], spec["system"], "growth_mib", r["peak_rss_mib"] - r["start_rss_mib"])
        elif spec["kind"] == "gemm":
            add(spec["task"], spec["system"], "rows_per_s", r["rows_per_s"])
            add(spec["task"], spec["system"], "seconds", r["seconds"])
        else:
            for name in ("batch1", "batch64", "bulk"):
                add(name, spec["system"], "rows_per_s", r[name]["rows_per_s"], spec["seed"])
            add("bulk", spec["system"], "peak_rss_mib", r["bulk"]["peak_rss_mib"])
            add("bulk", spec["system"], "start_rss_mib", r["bulk"]["start_rss_mib"])
            add("bulk", spec["system"], "growth_mib", r["bulk"]["peak_rss_mib"] - r["bulk"]["start_rss_mib"])
    summary = {task: {s: {k: _stats(v) for k, v in d.items()} for s, d in systems.items()}
               for task, systems in rows.items()}
    for task, systems in speed.items():  # paired ratios: barenet over each other system, round by round
        ours = systems.get("barenet", {})
        for system, theirs in systems.items():
            rounds = sorted(set(ours) & set(theirs))
            if system != "barenet" and rounds:
                summary[task][system]["barenet_ratio"] = _stats([ours[i] / theirs[i] for i in rounds])
    return summary


TASK_TITLES = {"nsl_b64": "train NSL-KDD 122-64-32-5, batch 64", "nsl_b256": "train NSL-KDD 122-64-32-5, batch 256",
               "wide_b128": "train MNIST 784-512-512-10, batch 128", "batch1": "predict_proba, 1 row per call",
               "batch64": "predict_proba, 64 rows per call", "bulk": "predict_proba, one call of {rows:,} rows"}
# table columns: (heading, system for training rows, system for inference rows)
COLUMNS = (("scikit-learn", "sklearn", "sklearn"), ("PyTorch, default Adam", "torch-foreach", "torch"),
           ("PyTorch, fused Adam", "torch-fused", None))


def format_tables(summary: dict, meta: dict) -> str:
    """The ratio table (barenet / other: the median of the rounds' paired ratios, with their range) and the
    matrix-product floor table, as Markdown."""
    cols = [c for c in COLUMNS if any(c[1] in summary.get(t, {}) or c[2] in summary.get(t, {}) for t in summary)]
    names = ["barenet"] + [c[0] for c in cols]
    lines = ["| workload | barenet rows/s (median, ±half spread) | "
             + " | ".join(f"barenet / {c[0]} (median, range of rounds)" for c in cols)
             + " | test accuracy: " + " / ".join(names) + " | peak RSS MiB (+ growth during the call): "
             + " / ".join(names) + " |"]
    lines.append("|" + " --- |" * (len(cols) + 4))
    for task in ("nsl_b64", "nsl_b256", "wide_b128", "batch1", "batch64", "bulk"):
        row = summary.get(task, {})
        if "barenet" not in row:
            continue
        infer = task in ("batch1", "batch64", "bulk")
        systems = ["barenet"] + [c[2] if infer else c[1] for c in cols]
        bn = row["barenet"]["rows_per_s"]
        cells = [TASK_TITLES[task].format(rows=meta["bulk_rows"]), f"{bn['median']:,.0f} (±{bn['spread'] / 2:.0%})"]
        for system in systems[1:]:
            if system not in row:
                cells.append("")
                continue
            paired = row[system].get("barenet_ratio")
            ratio = paired["median"] if paired else bn["median"] / row[system]["rows_per_s"]["median"]
            target = TARGETS.get((task, system))
            verdict = "" if target is None else f" (target {target:g}: {'met' if ratio >= target else 'MISSED'})"
            rounds = f" {paired['min']:.2f}-{paired['max']:.2f}" if paired and paired["n"] > 1 else ""
            cells.append(f"**{ratio:.2f}x**{rounds}{verdict}")
        present = [s for s in systems if s in row]
        cells.append(" / ".join(f"{row[s]['accuracy']['median']:.3f}" if "accuracy" in row[s] else "-" for s in present)
                     if any("accuracy" in row[s] for s in present) else "")
        cells.append(" / ".join(f"{row[s]['peak_rss_mib']['median']:.0f} (+{row[s]['growth_mib']['median']:.0f})"
                                if "peak_rss_mib" in row[s] else "-" for s in present)
                     if any("peak_rss_mib" in row[s] for s in present) else "")
        lines.append("| " + " | ".join(cells) + " |")
    torch_gemm = any("gemm-torch" in summary.get(t, {}) for t in ("nsl_b64", "nsl_b256", "wide_b128"))
    lines += ["", "Matrix products alone (the same steps' GEMMs replayed on arrays of the same shapes; "
              "benchmarks/gemm.py):", "",
              "| workload | GEMM-only s/epoch | barenet s/epoch | share of barenet's time in GEMMs | "
              + " / ".join(names[1:]) + " s/epoch |"
              + (" the same GEMMs in PyTorch's BLAS, s/epoch (NumPy's time / PyTorch's) |" if torch_gemm else ""),
              "|" + " --- |" * (6 if torch_gemm else 5)]
    for task in ("nsl_b64", "nsl_b256", "wide_b128"):
        row = summary.get(task, {})
        if "gemm" not in row or "barenet" not in row:
            continue
        rows = meta["rows"][task]
        g, b = rows / row["gemm"]["rows_per_s"]["median"], rows / row["barenet"]["rows_per_s"]["median"]
        others = " / ".join(f"{rows / row[c[1]]['rows_per_s']['median']:.3f}" for c in cols if c[1] in row)
        cells = [TASK_TITLES[task], f"{g:.3f}", f"{b:.3f}", f"{g / b:.0%}", others]
        if torch_gemm:
            t = rows / row["gemm-torch"]["rows_per_s"]["median"] if "gemm-torch" in row else None
            cells.append("" if t is None else f"{t:.3f} ({g / t:.2f}x)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_info() -> dict:
    import numpy

    info = {"date": dt.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
            "numpy": numpy.__version__, "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:  # which code was measured: the commit, and whether the working tree had uncommitted changes
        git = ["git", "-C", str(REPO)]
        info["git_commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                            check=True).stdout.strip()
        info["git_dirty"] = bool(subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                                                capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        info["git_commit"] = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        info["cpu_model"] = fields.get("Model name", "").strip()
        info["flags_avx512f"] = "avx512f" in fields.get("Flags", "")
    except OSError:
        pass
    for module in ("sklearn", "torch"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    from threadpoolctl import threadpool_info

    info["blas"] = [{**{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")},
                     "library": os.path.basename(i.get("filepath") or "")}  # no machine paths in results
                    for i in threadpool_info() if i.get("user_api") == "blas"]
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                                  "OMP_NUM_THREADS") if os.environ.get(k) is not None}
    return info


def default_json_path(mode: str, utc_start) -> Path:
    """A full run's results are named by their UTC start time (kept, quoted in the docs, never overwritten: a
    second run in the same minute adds the seconds); --quick and --tiny runs write one ``<mode>-latest.json``
    that git ignores."""
    results = REPO / "benchmarks" / "results"
    if mode != "full":
        return results / f"{mode}-latest.json"
    path = results / time.strftime("%Y-%m-%dT%H-%M.json", utc_start)
    return path if not path.exists() else results / time.strftime("%Y-%m-%dT%H-%M-%S.json", utc_start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small subsets and one repeat (< 1 minute)")
    p.add_argument("--tiny", action="store_true", help="synthetic data, tiny sizes (the smoke test)")
    p.add_argument("--repeats", type=int, help="repeats of every measurement (default: 3, quick: 1)")
    p.add_argument("--systems", default="barenet,sklearn,torch-fused,torch-foreach",
                   help="comma-separated subset of barenet,sklearn,torch-fused,torch-foreach")
    p.add_argument("--json", type=Path, help="where to write every result (default: a full run writes "
                   "benchmarks/results/<UTC start time>.json, so no run overwrites another; --quick and --tiny "
                   "write benchmarks/results/<mode>-latest.json, which git ignores)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed to one worker")
    p.add_argument("--max-other-cpus", type=float, default=0.3,
                   help="measure again when other processes used more than this many CPUs meanwhile (default 0.3)")
    p.add_argument("--retries", type=int, help="how many times to measure a contended run again (default: 3; "
                   "quick: 1; tiny: 0)")
    p.add_argument("--backoff", type=float, default=5.0, help="seconds to wait before measuring again")
    p.add_argument("--retry-budget", type=float, default=420.0,
                   help="stop measuring again once the run has taken this many seconds (default 420)")
    p.add_argument("--no-renice", action="store_true",
                   help="do not try to raise the benchmark's scheduling priority (nice -10; needs root)")
    args = p.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    if args.json is None:
        args.json = default_json_path(mode, time.gmtime())
    niceness = os.nice(0)
    if not args.no_renice:
        try:  # favour the benchmark over other work on a shared machine (workers inherit it)
            niceness = os.nice(-10 - niceness)
        except OSError:
            pass
    cfg = dict(MODES[mode])
    if args.repeats:
        cfg["repeats"] = args.repeats
    if args.retries is None:
        args.retries = {"full": 3, "quick": 1, "tiny": 0}[mode]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if importlib.util.find_spec("torch") is None and any(s.startswith("torch") for s in systems):
        print("PyTorch is not installed: measuring without it (pip install -e '.[bench]' to include it)")
        systems = [s for s in systems if not s.startswith("torch")]
    unknown = set(systems) - set(TRAIN_SYSTEMS)
    if unknown or "barenet" not in systems:
        p.error(f"--systems must include barenet and only name {', '.join(TRAIN_SYSTEMS)}; got {args.systems}")
    meta = {"mode": mode, "machine": machine_info(), "config": cfg, "systems": systems, "bulk_rows": cfg["bulk_rows"],
            "niceness": niceness, "max_other_cpus": args.max_other_cpus}
    print(f"barenet benchmark ({mode}): {meta['machine'].get('cpu_model', '?')}, {os.cpu_count()} CPUs, "
          f"numpy {meta['machine']['numpy']}, torch {meta['machine']['torch']}, "
          f"scikit-learn {meta['machine']['sklearn']}",
          flush=True)
    tic = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="barenet-bench-") as tmp:
        datasets = prepare_data(mode, Path(tmp))
        meta["datasets"] = {k: {kk: vv for kk, vv in v.items() if kk != "path"} for k, v in datasets.items()}
        meta["rows"] = {"nsl_b64": datasets["nsl"]["n_train"], "nsl_b256": datasets["nsl"]["n_train"],
                        "wide_b128": datasets["wide"]["n_train"]}
        jobs = workloads(mode, datasets, systems)
        for repeat in range(cfg["repeats"]):
            for job in jobs:
                spec = dict(job, seed=repeat)
                attempts = []
                for attempt in range(1 + args.retries):
                    result = run_worker(spec, args.timeout)
                    other = result.get("other_cpus")
                    result["attempt"] = attempt + 1
                    result["contended"] = other is not None and other > args.max_other_cpus
                    attempts.append(result)
                    again = (result["contended"] and attempt < args.retries
                             and time.perf_counter() - tic < args.retry_budget)
                    shown = result.get("rows_per_s") or result.get("bulk", {}).get("rows_per_s")
                    print(f"  repeat {repeat + 1}/{cfg['repeats']}  {job['task']:<9} {job['system']:<13} "
                          f"{shown:>13,.0f} rows/s  (other processes: "
                          f"{'-' if other is None else f'{other:.2f}'} CPUs{', measuring again' if again else ''})",
                          flush=True)
                    if not again:
                        break
                    time.sleep(args.backoff)
                # the least disturbed attempt (the last one when none could be judged)
                result = min(attempts, key=lambda r: (r.get("other_cpus") is None, r.get("other_cpus") or 0.0))
                result["attempts"] = len(attempts)
                results.append(result)
    summary = summarise(results)
    meta["seconds"] = time.perf_counter() - tic
    meta["loadavg_1min_max"] = max(r["loadavg_1min"] or 0.0 for r in results)
    meta["contended_kept"] = sum(bool(r.get("contended")) for r in results)
    meta["attempts"] = sum(r.get("attempts", 1) for r in results)
    table = format_tables(summary, meta)
    print()
    print(table)
    print()
    print(f"{meta['machine']['date']}, {meta['seconds']:.0f} s; medians of {cfg['repeats']} repeats; niceness "
          f"{niceness}; {meta['attempts'] - len(results)} measurements repeated because other processes were busy, "
          f"{meta['contended_kept']} kept although still contended")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    partial = args.json.with_name(f".{args.json.name}.tmp")  # written whole, then renamed: never half a file
    partial.write_text(json.dumps({"meta": meta, "summary": summary, "table": table, "results": results}, indent=1))
    partial.replace(args.json)
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
