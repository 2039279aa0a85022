"""Step 1 - the environment: Python, NumPy, the BLAS doing the matrix products, and the seed.

Every number in the later steps depends on these: NumPy does the arithmetic, the BLAS library inside NumPy
does every matrix product (almost all of a network's time), and the seed fixes every random draw.

    python examples/lab/step1_environment.py [--seed 0] [--fast]
"""
from __future__ import annotations

import os
import platform
import sys
import time

import labkit as lk
import numpy as np

import barenet as bn


def blas_rows():
    """(library, version, threads, CPU kernel) of each BLAS NumPy loaded, via threadpoolctl when present."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure the BLAS is loaded before asking
        rows = [(i.get("internal_api", "?"), i.get("version") or "?", str(i.get("num_threads", "?")),
                 i.get("architecture") or "?") for i in threadpool_info() if i.get("user_api") == "blas"]
        if rows:
            return rows, "threadpoolctl"
    try:  # NumPy's own build record (no thread count)
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return [(blas.get("name", "?"), blas.get("version", "?"), "?", "?")], "numpy.show_config"
    except Exception:  # noqa: BLE001 - older NumPy: say we do not know rather than fail
        return [("unknown", "?", "?", "?")], "unavailable"


def matmul_speed(n: int, dtype, repeats: int) -> float:
    """GFLOP/s of an n x n by n x n product (2 n^3 floating-point operations), best of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - tic)
    return 2 * n**3 / best / 1e9


def main(argv=None):
    args = lk.make_parser(__doc__.splitlines()[0]).parse_args(argv)

    lk.heading("Step 1 - Environment")
    lk.table(["component", "value"], [
        ("Python", sys.version.split()[0]),
        ("NumPy", np.__version__),
        ("barenet", bn.__version__),
        ("platform", f"{platform.system()} {platform.machine()}"),
        ("CPU cores seen", str(os.cpu_count())),
        ("default dtype", "float32 (gradient checks use float64)"),
    ], align=["<", "<"])

    lk.heading("BLAS: the library behind every matrix product", "-")
    rows, how = blas_rows()
    lk.table(["library", "version", "threads", "CPU kernel"], rows, align=["<", "<", ">", "<"])
    lk.note(f"found with {how}; a network's forward and backward passes are mostly calls into this library")
    n, repeats = (256, 3) if args.fast else (1024, 5)
    speeds = [(name, f"{matmul_speed(n, dt, repeats):.1f}") for name, dt in (("float32", np.float32),
                                                                            ("float64", np.float64))]
    lk.table(["dtype", f"GFLOP/s ({n}x{n} @ {n}x{n})"], speeds)
    lk.note("timings vary from run to run; float32 packs twice the numbers into each vector instruction and "
            "each byte moved, which is why barenet trains in float32")

    lk.heading("The seed: one generator, passed explicitly", "-")
    rng = np.random.default_rng(args.seed)
    print(f"  seed = {args.seed}")
    draws = np.array2string(rng.standard_normal(4), precision=6)
    print(f"  np.random.default_rng({args.seed}).standard_normal(4) = {draws}")
    net = bn.build_mlp(4, hidden=(3,), n_outputs=2, seed=args.seed)
    w = net.parameters()["0.W"][0]
    print(f"  bn.build_mlp(4, (3,), 2, seed={args.seed}): first row of 0.W = {np.array2string(w, precision=6)}")
    lk.note("the same seed gives the same numbers on every run; barenet never touches np.random's global state")

    lk.heading("Data", "-")
    root = lk.data_dir()
    if root is None:
        print("  BARENET_DATA is not set: steps 6 and 7 use clearly labelled synthetic data instead of images")
    else:
        found = [name for name in ("mnist", "fashion-mnist", "nsl-kdd") if (root / name).is_dir()]
        print(f"  BARENET_DATA is set; data sets found: {', '.join(found) or 'none'}")


if __name__ == "__main__":
    main()
