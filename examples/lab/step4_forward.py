"""Step 4 - the forward pass through N layers: what each layer does to the shape of a batch.

A batch is a matrix X of shape (n, d): one row per sample. A Dense layer computes z = X W + b with
W: (d_in, d_out) and b: (d_out,) broadcast over the rows, so (n, d_in) -> (n, d_out); an activation acts
elementwise and keeps the shape. The network is the composition h_L = f_L(... f_2(f_1(X))), and the last
layer's raw scores (logits) become class probabilities through softmax.

    python examples/lab/step4_forward.py [--hidden 256,128,64] [--batch 32] [--seed 0] [--fast]
"""
from __future__ import annotations

import labkit as lk
import numpy as np

import barenet as bn


def operation(layer) -> str:
    if isinstance(layer, bn.Dense):
        return "z = h W + b"
    if isinstance(layer, bn.Dropout):
        return "h * mask / (1 - p) in training"
    return f"h = {type(layer).__name__.lower()}(z)"


def cache_bytes(cache) -> int:
    if cache is None:
        return 0
    if isinstance(cache, tuple):
        return sum(cache_bytes(c) for c in cache)
    return int(cache.nbytes)


def main(argv=None):
    parser = lk.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--hidden", default=None, help="hidden widths, comma-separated (default 256,128,64)")
    parser.add_argument("--batch", type=int, default=None, help="rows in the batch (default 32)")
    args = parser.parse_args(argv)
    hidden = tuple(int(w) for w in (args.hidden or ("32,16" if args.fast else "256,128,64")).split(","))
    batch = args.batch or (8 if args.fast else 32)

    lk.heading(f"Step 4 - The forward pass through {len(hidden) + 1} Dense layers")
    data = lk.image_split("mnist", batch, 0, 0, seed=args.seed)
    X, y = data.X_train, data.y_train
    lk.describe(data)
    net = bn.build_mlp(X.shape[1], hidden=hidden, n_outputs=10, seed=args.seed)
    print()
    net.summary(print_fn=lambda text: print("\n".join(("  " + line).rstrip() for line in text.splitlines())))

    lk.heading(f"One batch of {batch} rows, layer by layer", "-")
    rows, h = [], X
    caches = []
    total_flops = 0
    for i, layer in enumerate(net.layers):
        out, cache = layer.forward(h, training=False)
        caches.append(cache)
        params = ", ".join(f"{k} {tuple(v.shape)}" for k, v in layer.params.items()) or "-"
        flops = 2 * h.shape[0] * h.shape[1] * out.shape[1] if isinstance(layer, bn.Dense) else out.size
        total_flops += flops
        rows.append([str(i), type(layer).__name__, operation(layer), str(h.shape), str(out.shape), params,
                     f"{flops:,}", f"{out.mean():+.3f}", f"{out.std():.3f}"])
        h = out
    lk.table(["#", "layer", "computes", "input", "output", "parameters", "FLOPs", "mean", "std"], rows,
             align=["<", "<", "<", ">", ">", "<", ">", ">", ">"])
    lk.note("Dense changes the width (n, d_in) -> (n, d_out); activations keep the shape; n never changes")
    lk.note(f"{total_flops:,} floating-point operations for the batch, almost all in the matrix products")
    lk.note("He initialisation keeps the std of the ReLU outputs of the same order from layer to layer")

    logits = h
    same, _ = net.forward(X)
    print(f"\n  net.forward(X) equals the layer-by-layer result: max difference = {np.abs(same - logits).max():g}")

    lk.heading("From logits to probabilities", "-")
    p = bn.softmax(logits)
    print(f"  logits {logits.shape} -> softmax -> probabilities {p.shape}; every row sums to 1: "
          f"max |row sum - 1| = {lk.fmt(np.abs(p.sum(axis=1) - 1).max(), 2)}")
    rows = [[str(r), str(y[r]), str(int(p[r].argmax())), f"{p[r].max():.3f}", f"{p[r, y[r]]:.3f}"]
            for r in range(min(5, batch))]
    lk.table(["row", "true class", "predicted", "p(predicted)", "p(true)"], rows)
    lk.note("untrained, the network spreads its belief almost evenly over the 10 classes (1/10 = 0.1)")

    lk.heading("What the forward pass keeps for the backward pass (the caches)", "-")
    rows = []
    for i, (layer, cache) in enumerate(zip(net.layers, caches)):
        kept = {bn.Dense: "its input h (for dW = h^T dz)", bn.ReLU: "its output (where > 0 = where x > 0)"}
        rows.append([str(i), type(layer).__name__, kept.get(type(layer), "-"), f"{cache_bytes(cache):,}"])
    lk.table(["#", "layer", "cache", "bytes"], rows, align=["<", "<", "<", ">"])
    total = sum(cache_bytes(c) for c in caches)
    lk.note(f"{total:,} bytes for {batch} rows: memory for training grows linearly with the batch size")


if __name__ == "__main__":
    main()
