"""How barenet uses the BLAS behind NumPy: thread limits while training, and row blocks for mid-sized products.

Every matrix product in barenet is a NumPy call into the BLAS (OpenBLAS in NumPy's wheels). Two things about
that library shape the speed of small networks, and both live here:

* threads: small products run faster on one thread (no hand-off, nothing to wait for when another process is
  busy), so ``fit`` limits the BLAS to one thread for small layers (``fit_blas_threads``, via threadpoolctl);
* kernels: OpenBLAS has faster kernels for small products, so under one thread Dense cuts a batch into row
  blocks that fit them (``SMALL_GEMM``, ``row_block``).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

#: OpenBLAS, the BLAS inside NumPy's wheels, multiplies matrices with m*n*k <= 100^3 by single-threaded
#: "small-matrix" kernels that skip its packing step (on AVX-512 cores). On the 122 -> 64 layer that is ~20 %
#: faster per row: a (256, 122) x (122, 64) product takes ~46 us in one call and ~36 us as two calls of 128
#: rows. So where the BLAS runs on one thread anyway and has those kernels (``fit`` on small layers declares it
#: with ``single_thread_products``), Dense cuts a bigger batch into equal row blocks under this size, unless
#: the blocks would be thin (< MIN_ROW_BLOCK rows). With two threads the one large call wins (it is split
#: across the threads), and other BLAS libraries have no such kernels: one call there.
SMALL_GEMM = 100**3
MIN_ROW_BLOCK = 64
ONE_BLAS_THREAD = contextvars.ContextVar("barenet_one_blas_thread", default=False)


@contextlib.contextmanager
def single_thread_products():
    """Declare that the BLAS runs on one thread inside this block, so Dense may use row blocks."""
    token = ONE_BLAS_THREAD.set(True)
    try:
        yield
    finally:
        ONE_BLAS_THREAD.reset(token)


def row_block(n_rows: int, d_in: int, d_out: int) -> int:
    """Rows per block for an (n_rows, d_in) x (d_in, d_out) product: n_rows itself when one call is better."""
    if n_rows * d_in * d_out <= SMALL_GEMM or not ONE_BLAS_THREAD.get():
        return n_rows
    largest = SMALL_GEMM // (d_in * d_out)
    if largest < MIN_ROW_BLOCK:
        return n_rows
    n_blocks = -(-n_rows // largest)
    return -(-n_rows // n_blocks)  # equal blocks (129 rows: 65 + 64, not 128 + 1)


@contextlib.contextmanager
def fit_blas_threads(model, blas_threads):
    """The BLAS threads ``fit`` trains under: "auto" = one thread when every layer is <= 256 wide (faster for
    small products and immune to a busy machine), an int sets it, None leaves the BLAS default. Under one
    thread of a BLAS with small-matrix kernels, Dense may also use row blocks (see SMALL_GEMM)."""
    if blas_threads == "auto":
        widths = [getattr(layer, "units", 0) for layer in model.layers] + [model.n_inputs or 0]
        blas_threads = 1 if max(widths) <= 256 else None
    if blas_threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(blas_threads), user_api="blas"):
        if int(blas_threads) == 1 and blas_has_small_matrix_kernels():
            with single_thread_products():  # Dense may now cut big batches into row blocks (SMALL_GEMM)
                yield
        else:
            yield


#: OpenBLAS cores (as ``openblas_get_corename`` names them) with the small-matrix float32 GEMM kernels
SMALL_MATRIX_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


@functools.lru_cache(maxsize=1)
def blas_has_small_matrix_kernels() -> bool:
    """Is NumPy's BLAS an OpenBLAS on a core with small-matrix kernels (the case ``SMALL_GEMM`` measures)?

    Elsewhere (MKL, Accelerate, OpenBLAS on other cores) row blocks would only add calls, so Dense keeps
    one product per batch. Needs threadpoolctl to ask; without it the answer is no.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return False
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    numpy_blas = [i for i in blas if "numpy" in str(i.get("filepath", ""))] or blas
    return bool(numpy_blas) and all(i.get("internal_api") == "openblas"
                                    and str(i.get("architecture", "")).lower() in SMALL_MATRIX_CORES
                                    for i in numpy_blas)
