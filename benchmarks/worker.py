"""One measurement in a fresh process: ``python -m benchmarks.worker '<json spec>'`` prints one JSON line.

A fresh process per (system, workload, repeat) keeps the libraries apart (only the system measured is
imported) and makes the peak resident memory that system's own: the kernel's high-water mark (VmHWM) is
reset just before the measured call and read just after it.

Workloads:
* ``train``: train on ``X_train`` for the given epochs; report seconds, rows/s (rows x epochs / seconds)
  and the test accuracy after training.
* ``infer``: train one quick epoch (not timed), then time ``predict_proba`` on single rows, on batches of
  64 rows and on one call with many rows.
* ``gemm``: replay the matrix products of the same training steps on arrays of the same shapes
  (see :mod:`benchmarks.gemm`), in NumPy's BLAS (system ``gemm``) or PyTorch's (``gemm-torch``).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _busy_jiffies() -> int | None:
    """Machine-wide busy CPU time (all CPUs, 1/100 s units) from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields[:3]) + sum(fields[5:8])  # user nice system (idle iowait) irq softirq steal


class Contention:
    """How many CPUs' worth of *other* processes ran during a block (machine busy time minus our own).

    On a shared 2-core machine another process's burst can slow a 2-thread BLAS call tenfold; the runner
    repeats a measurement that saw more than a little of it (see ``benchmarks.run``).
    """

    def __enter__(self):
        self.t0, self.busy0 = time.perf_counter(), _busy_jiffies()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.own0 = ru.ru_utime + ru.ru_stime
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        own = ru.ru_utime + ru.ru_stime - self.own0
        busy1 = _busy_jiffies()
        if self.busy0 is None or busy1 is None or wall < 0.5:  # /proc/stat counts in 10 ms steps
            self.other_cpus = None
        else:
            self.other_cpus = max(0.0, ((busy1 - self.busy0) / 100.0 - own) / wall)
        self.own_cpus = own / wall if wall > 0 else None
        return False


class PeakMemory:
    """Peak resident memory (MiB) over a block, and the resident memory when it started."""

    def __enter__(self):
        try:  # Linux: writing 5 resets this process's high-water mark to its current RSS
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.exact = True
        except OSError:
            self.exact = False
        self.start_mib = (_status_kib("VmRSS") or 0) / 1024
        return self

    def __exit__(self, *exc):
        hwm = _status_kib("VmHWM") if self.exact else None
        if hwm is None:  # ru_maxrss: the peak since the process started (an upper bound)
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mib = hwm / 1024
        return False


def blas_info() -> dict:
    from threadpoolctl import threadpool_info

    numpy_blas = [i for i in threadpool_info() if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
    info = numpy_blas[0] if numpy_blas else next((i for i in threadpool_info() if i.get("user_api") == "blas"), {})
    return {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}


def _load(spec):
    data = np.load(spec["data"])
    return data["X_train"], data["y_train"], data["X_test"], data["y_test"]


def run_train(spec) -> dict:
    from .systems import TRAINERS, prepare

    prepare(spec["system"])
    X, y, X_test, y_test = _load(spec)
    train = TRAINERS[spec["system"]]
    kwargs = dict(hidden=spec["hidden"], n_classes=spec["n_classes"], batch_size=spec["batch_size"],
                  threads=spec["threads"])
    # warm-up on a few batches (not timed): first-call costs (lazy imports, allocator, thread pools) are paid
    # once per process by every system; the measurement is the steady state a longer training sees
    warm = np.resize(np.arange(len(X)), min(len(X), 4 * spec["batch_size"]))
    train(X[warm], y[warm], epochs=1, seed=spec["seed"] + 1000, **kwargs)
    with Contention() as busy, PeakMemory() as mem:
        seconds, predict_proba = train(X, y, epochs=spec["epochs"], seed=spec["seed"], **kwargs)
    accuracy = float(np.mean(np.argmax(predict_proba(X_test), axis=1) == y_test))
    return {"seconds": seconds, "rows_per_s": len(X) * spec["epochs"] / seconds, "accuracy": accuracy,
            "peak_rss_mib": mem.peak_mib, "start_rss_mib": mem.start_mib, "exact_peak": mem.exact,
            "other_cpus": busy.other_cpus, "own_cpus": busy.own_cpus}


def _time_calls(fn, batches) -> float:
    tic = time.perf_counter()
    for xb in batches:
        fn(xb)
    return time.perf_counter() - tic


def run_infer(spec) -> dict:
    from .systems import TRAINERS, prepare

    prepare(spec["system"])
    X, y, X_test, y_test = _load(spec)
    _, predict_proba = TRAINERS[spec["system"]](X, y, hidden=spec["hidden"], n_classes=spec["n_classes"],
                                                batch_size=256, epochs=1, seed=spec["seed"],
                                                threads=spec["threads"])
    if spec["system"].startswith("torch"):
        import torch

        torch.set_num_threads(spec["infer_threads"])
    bulk = np.ascontiguousarray(np.resize(X_test, (spec["bulk_rows"], X_test.shape[1])))  # test rows, tiled
    out = {}
    busy = Contention().__enter__()
    for name, size, calls in (("batch1", 1, spec["calls_1"]), ("batch64", 64, spec["calls_64"])):
        starts = (np.arange(calls) * size) % (len(X_test) - size)
        batches = [X_test[s:s + size] for s in starts]
        _time_calls(predict_proba, batches[: max(1, calls // 10)])  # warm-up
        seconds = _time_calls(predict_proba, batches)
        out[name] = {"rows_per_s": calls * size / seconds, "seconds": seconds}
    predict_proba(bulk[:1000])  # warm-up
    with PeakMemory() as mem:
        seconds = _time_calls(predict_proba, [bulk])
    out["bulk"] = {"rows_per_s": len(bulk) / seconds, "seconds": seconds, "rows": len(bulk),
                   "peak_rss_mib": mem.peak_mib, "start_rss_mib": mem.start_mib, "exact_peak": mem.exact}
    busy.__exit__(None, None, None)
    out.update(other_cpus=busy.other_cpus, own_cpus=busy.own_cpus)
    return out


def run_gemm(spec) -> dict:
    from threadpoolctl import threadpool_limits

    from barenet.blas import blas_has_small_matrix_kernels

    from .gemm import replay_training_gemms

    library = "torch" if spec["system"] == "gemm-torch" else "numpy"
    if library == "torch":
        import torch

        torch.set_num_threads(spec["threads"])  # as the PyTorch training runs get
    with threadpool_limits(limits=spec["threads"], user_api="blas"), Contention() as busy:
        seconds = replay_training_gemms(spec["n_train"], [spec["n_inputs"], *spec["hidden"], spec["n_classes"]],
                                        spec["batch_size"], spec["epochs"], seed=spec["seed"], library=library,
                                        row_blocks=(library == "numpy" and spec["threads"] == 1
                                                    and blas_has_small_matrix_kernels()))
    return {"seconds": seconds, "rows_per_s": spec["n_train"] * spec["epochs"] / seconds,
            "other_cpus": busy.other_cpus, "own_cpus": busy.own_cpus}


def main(argv=None):
    spec = json.loads((argv or sys.argv[1:])[0])
    kind = spec["kind"]
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"train": run_train, "infer": run_infer, "gemm": run_gemm}[kind](spec)
    result.update(spec=spec, blas=blas_info(), loadavg_1min=load_before)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
