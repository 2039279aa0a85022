"""barenet against scikit-learn and PyTorch on the same data, network, batch size, epochs and Adam settings.

    python -m benchmarks.run               # the full comparison (< 10 minutes on a 2-core machine)
    python -m benchmarks.run --quick       # small subsets, one repeat (< 1 minute): is everything working?
    python -m benchmarks.run --tiny        # synthetic data (no data files needed): the smoke test's mode

Each measurement runs in a fresh worker process (``benchmarks.worker``), one after another on this machine,
and the repeats go round-robin (all systems once, then all again), so a slow spell of a busy machine hits
every system rather than one. The table shows medians over the repeats, the spread (max - min over the
median), barenet's speed as a ratio to each other system, and the test accuracy each reached, so nobody wins
by computing less. Everything, repeats included, goes to a JSON file.

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
INFER_SYSTEMS = ("barenet", "sklearn", "torch-fused")  # the Adam variant does not matter for inference
LABEL = {"barenet": "barenet", "sklearn": "scikit-learn", "torch-fused": "PyTorch (fused Adam)",
         "torch-foreach": "PyTorch (default Adam)", "torch": "PyTorch"}
# the targets: barenet / other >= value
TARGETS = {("nsl_b64", "torch-foreach"): 5.0, ("nsl_b64", "sklearn"): 3.0, ("nsl_b256", "torch-foreach"): 3.0,
           ("nsl_b256", "sklearn"): 2.0, ("wide_b128", "torch-foreach"): 1.0, ("wide_b128", "sklearn"): 1.5,
           ("batch1", "torch-fused"): 2.0, ("bulk", "torch-fused"): 1.0}

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
    d = datasets["nsl"]
    base = dict(task="infer", data=d["path"], hidden=[64, 32], n_classes=d["n_classes"], threads=1,
                infer_threads=n_threads, calls_1=cfg["calls_1"], calls_64=cfg["calls_64"], bulk_rows=cfg["bulk_rows"])
    jobs += [dict(base, kind="infer", system=s) for s in INFER_SYSTEMS if s in systems]
    return jobs


def run_worker(spec: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
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
    """Group raw worker results into {workload: {system: stats}}."""
    rows: dict = {}

    def add(task, system, key, value):
        rows.setdefault(task, {}).setdefault(system, {}).setdefault(key, []).append(value)

    for r in results:
        spec = r["spec"]
        if spec["kind"] == "train":
            for key in ("rows_per_s", "seconds", "accuracy", "peak_rss_mib", "start_rss_mib"):
                add(spec["task"], spec["system"], key, r[key])
        elif spec["kind"] == "gemm":
            add(spec["task"], "gemm", "rows_per_s", r["rows_per_s"])
            add(spec["task"], "gemm", "seconds", r["seconds"])
        else:
            for name in ("batch1", "batch64", "bulk"):
                add(name, spec["system"], "rows_per_s", r[name]["rows_per_s"])
            add("bulk", spec["system"], "peak_rss_mib", r["bulk"]["peak_rss_mib"])
            add("bulk", spec["system"], "start_rss_mib", r["bulk"]["start_rss_mib"])
    return {task: {s: {k: _stats(v) for k, v in d.items()} for s, d in systems.items()} for task, systems in rows.items()}


TASK_TITLES = {"nsl_b64": "train NSL-KDD 122-64-32-5, batch 64", "nsl_b256": "train NSL-KDD 122-64-32-5, batch 256",
               "wide_b128": "train MNIST 784-512-512-10, batch 128", "batch1": "inference, batch of 1 row",
               "batch64": "inference, batches of 64 rows", "bulk": "inference, one call"}


def format_tables(summary: dict, meta: dict) -> str:
    lines = []
    others = [s for s in ("sklearn", "torch-fused", "torch-foreach") if any(s in summary.get(t, {}) for t in summary)]
    head = "| workload | barenet rows/s | " + " | ".join(f"barenet / {LABEL[s]}" for s in others) + " | accuracy (barenet / " \
        + " / ".join(LABEL[s] for s in others) + ") | peak RSS MiB (barenet / " + " / ".join(LABEL[s] for s in others) + ") |"
    lines += [head, "|" + " --- |" * (head.count("|") - 1)]
    for task in ("nsl_b64", "nsl_b256", "wide_b128", "batch1", "batch64", "bulk"):
        if task not in summary or "barenet" not in summary[task]:
            continue
        row = summary[task]
        bn = row["barenet"]["rows_per_s"]
        title = TASK_TITLES[task] + (f" of {meta['bulk_rows']:,} rows" if task == "bulk" else "")
        cells = [title, f"{bn['median']:,.0f} (±{bn['spread'] / 2:.0%})"]
        for s in others:
            if s not in row:
                cells.append("-")
                continue
            ratio = bn["median"] / row[s]["rows_per_s"]["median"]
            target = TARGETS.get((task, s))
            mark = "" if target is None else (f" (target {target:g}: " + ("met" if ratio >= target else "MISSED") + ")")
            cells.append(f"**{ratio:.2f}x**{mark}")
        acc = [row[s]["accuracy"]["median"] for s in ["barenet"] + others if s in row and "accuracy" in row[s]]
        cells.append(" / ".join(f"{a:.3f}" for a in acc) if acc else "")
        rss = [row[s]["peak_rss_mib"]["median"] for s in ["barenet"] + others if s in row and "peak_rss_mib" in row[s]]
        cells.append(" / ".join(f"{m:.0f}" for m in rss) if rss else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Matrix products alone (the floor: the same steps' GEMMs replayed, see benchmarks/gemm.py):")
    lines.append("")
    lines.append("| workload | GEMM-only rows/s | barenet rows/s | barenet time in GEMMs | barenet / scikit-learn / PyTorch fused / PyTorch default, s per epoch |")
    lines.append("| --- | --- | --- | --- | --- |")
    for task in ("nsl_b64", "nsl_b256", "wide_b128"):
        row = summary.get(task, {})
        if "gemm" not in row or "barenet" not in row:
            continue
        g, b = row["gemm"]["rows_per_s"]["median"], row["barenet"]["rows_per_s"]["median"]
        n_epoch = meta["rows"][task]
        per_epoch = " / ".join(f"{n_epoch / row[s]['rows_per_s']['median']:.3f}" for s in ("barenet", *others) if s in row)
        lines.append(f"| {TASK_TITLES[task]} | {g:,.0f} | {b:,.0f} | {b / g:.0%} | {per_epoch} |")
    return "\n".join(lines)


def machine_info() -> dict:
    import numpy

    info = {"date": dt.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
            "numpy": numpy.__version__, "cpu_count": os.cpu_count(), "platform": platform.platform()}
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

    info["blas"] = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
                    for i in threadpool_info() if i.get("user_api") == "blas"]
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                                  "OMP_NUM_THREADS") if os.environ.get(k) is not None}
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small subsets and one repeat (< 1 minute)")
    p.add_argument("--tiny", action="store_true", help="synthetic data, tiny sizes (the smoke test)")
    p.add_argument("--repeats", type=int, help="repeats of every measurement (default: 3, quick: 1)")
    p.add_argument("--systems", default="barenet,sklearn,torch-fused,torch-foreach",
                   help="comma-separated subset of barenet,sklearn,torch-fused,torch-foreach")
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "latest.json",
                   help="where to write every result (default: benchmarks/results/latest.json)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed to one worker")
    args = p.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    if args.repeats:
        cfg["repeats"] = args.repeats
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if importlib.util.find_spec("torch") is None and any(s.startswith("torch") for s in systems):
        print("PyTorch is not installed: measuring without it (pip install -e '.[bench]' to include it)")
        systems = [s for s in systems if not s.startswith("torch")]
    unknown = set(systems) - set(TRAIN_SYSTEMS)
    if unknown or "barenet" not in systems:
        p.error(f"--systems must include barenet and only name {', '.join(TRAIN_SYSTEMS)}; got {args.systems}")
    meta = {"mode": mode, "machine": machine_info(), "config": cfg, "systems": systems, "bulk_rows": cfg["bulk_rows"]}
    print(f"barenet benchmark ({mode}): {meta['machine'].get('cpu_model', '?')}, {os.cpu_count()} CPUs, "
          f"numpy {meta['machine']['numpy']}, torch {meta['machine']['torch']}, scikit-learn {meta['machine']['sklearn']}",
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
                result = run_worker(spec, args.timeout)
                results.append(result)
                shown = result.get("rows_per_s") or result.get("bulk", {}).get("rows_per_s")
                print(f"  repeat {repeat + 1}/{cfg['repeats']}  {job['task']:<9} {job['system']:<13} "
                      f"{shown:>13,.0f} rows/s  (load {result['loadavg_1min']:.1f})", flush=True)
    summary = summarise(results)
    meta["seconds"] = time.perf_counter() - tic
    meta["loadavg_1min_max"] = max(r["loadavg_1min"] or 0.0 for r in results)
    table = format_tables(summary, meta)
    print()
    print(table)
    print()
    print(f"{meta['machine']['date']}, {meta['seconds']:.0f} s; medians of {cfg['repeats']} repeats; "
          f"highest 1-minute load average seen: {meta['loadavg_1min_max']:.1f} on {os.cpu_count()} CPUs")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "summary": summary, "table": table, "results": results}, indent=1))
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
