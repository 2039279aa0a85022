"""Regenerate docs/lab.md: run every lab step for real, capture what it prints, and write the walk-through.

Nothing in docs/lab.md is typed by hand: the math comes from the templates below, the output and the plots
from the runs. Set BARENET_DATA first so the steps use the real data sets:

    BARENET_DATA=/path/to/data python examples/lab/make_docs.py            # writes docs/lab.md, docs/img/lab/
    python examples/lab/make_docs.py --fast --out /tmp/lab.md --plot-dir /tmp/img   # quick check
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@dataclass
class Step:
    script: str
    title: str
    math: str
    plots: dict = field(default_factory=dict)  # file name -> caption


STEPS = [
    Step("step1_environment.py", "Environment", """
A network is mostly matrix products, so its speed is mostly that of the BLAS library NumPy calls. A Dense
layer on a batch of n rows costs about 2 n d_in d_out floating-point operations forwards and twice that
backwards. Every random draw (initial weights, shuffling, dropout masks) comes from one seeded
`numpy.random.Generator`, so a seed fixes every number below except the timings.
"""),
    Step("step2_activations.py", "Activations and their derivatives", """
```
ReLU      f(x) = max(x, 0)              f'(x) = 1 if x > 0 else 0
sigmoid   s(x) = 1 / (1 + e^-x)         s'(x) = s(x) (1 - s(x))            (at most 1/4)
tanh      f(x) = tanh(x)                f'(x) = 1 - tanh(x)^2
softmax   s_k = e^(z_k - max z) / sum_j e^(z_j - max z)
          J = ds/dz = diag(s) - s s^T;  backward computes g J = s * (g - <g, s>) without building J
check     f'(x) ~ (f(x + h) - f(x - h)) / 2h,  error O(h^2)
```
Backward multiplies the incoming gradient by f'(x). Where f'(x) = 0, nothing flows: a ReLU unit whose input
is negative for every sample gets no gradient at all and can never recover (the "dying ReLU").
"""),
    Step("step3_initialization.py", "Weight initialisation", """
```
z = sum_i x_i w_i                     Var(z) = n_in Var(w) E[x^2]
h = ReLU(z)                           E[h^2] = Var(z) / 2         (half of z is zeroed)
keep E[h^2] constant                  =>  Var(w) = 2 / n_in       (He)
Xavier (Glorot)                       Var(w) = 2 / (n_in + n_out) (right for tanh, halves the signal under ReLU)
```
With any other scale the signal is multiplied by the same factor at every layer, so after 10 layers it
has vanished or exploded, and the gradients with it. With all-equal (e.g. zero) weights every unit in a
layer computes the same thing and receives the same gradient: the units can never become different.
""", {"step3_init.png": "Activation std and gradient norm per layer of a 10-layer ReLU network, per initialiser "
                       "(log scale; zero init is exactly 0 everywhere and not drawn)."}),
    Step("step4_forward.py", "The forward pass through N layers", """
```
X        (n, d_0)                     one row per sample
Dense    z_l = h_{l-1} W_l + b_l      W_l: (d_{l-1}, d_l), b_l: (d_l,) added to every row  -> (n, d_l)
ReLU     h_l = max(z_l, 0)            elementwise, shape unchanged
output   logits z_L (n, K)  ->  p = softmax(z_L), each row a probability distribution over K classes
```
Each layer keeps what its backward pass will need (a Dense layer its input, a ReLU its output): the
memory cost of training.
"""),
    Step("step5_backprop.py", "Loss and backpropagation", """
```
L = -(1/n) sum_i log p_i[y_i]             p_i = softmax(z_i)
dL/dz = (p - Y) / n                       Y = one-hot labels: the fused softmax + cross-entropy gradient
Dense   z = h W + b:   dW = h^T dz   db = sum over rows of dz   dh = dz W^T
ReLU    h = max(z, 0): dz = dh * 1[z > 0]
check   error = max|analytic - numeric| / max(max|analytic|, max|numeric|)
        numeric_i = (L(theta + eps e_i) - L(theta - eps e_i)) / 2 eps,  eps = 1e-6, in float64
```
The chain rule is applied from the output back to the input; each gradient has the shape of the array it
differentiates. In float64 a correct backward pass agrees with the numerical gradient to about 1e-9.
"""),
    Step("step6_minibatch.py", "Mini-batch training with validation", """
```
update      theta <- theta - lr * (1/|B|) sum_{i in B} grad L_i(theta)
per epoch   ceil(n / |B|) updates
noise       the variance of the batch gradient around the full gradient falls like 1 / |B|
```
Batch size 1 gives many cheap but noisy steps, the full batch one exact but expensive step per epoch. A
validation set that is never trained on measures generalisation.
""", {"step6_learning_curves.png": "Left: train (dashed) and validation (solid) loss per epoch. Right: validation "
                                  "accuracy against the number of updates made (log scale)."}),
    Step("step7_dropout.py", "Dropout", """
```
training    y = x * m / (1 - p),   m ~ Bernoulli(1 - p) per entry, drawn afresh each batch   (E[y] = x)
backward    dx = dy * m / (1 - p)  (the same mask)
inference   y = x
gap         train accuracy - validation accuracy, both in inference mode
```
Every step trains a random sub-network; units cannot co-adapt to memorise particular training rows. The
lab's original claim (gap 0.087 -> 0.033 with slightly better test accuracy) is compared with what we
measure, below.
""", {"step7_dropout_gap.png": "Left: train (dashed) and validation (solid) accuracy per epoch, inference mode. "
                              "Right: the gap between them. Mean over the seeds."}),
    Step("step8_capstone.py", "Capstone: intrusion triage on NSL-KDD", """
The network of steps 4-7 learns the 22 attack names of KDDTrain+ (balanced class weights); a category's
probability is the sum of its attack names' probabilities. Everything after training is fitted on a
validation split of KDDTrain+, never on the test files, through the `nids_triage` API:
```
temperature   p = softmax(z / T)            on the attack-name logits z, before summing per category;
                                            T = argmin_T NLL on validation (T > 1 softens, T < 1 sharpens),
                                            kept only if the validation ECE does not get worse
ECE           sum_b |B_b|/n * |acc(B_b) - conf(B_b)|     over 15 bins B_b of the top probability
novelty       d(x) = (h - mu_c)^T S^-1 (h - mu_c)        h = last hidden layer, c = predicted class,
              mu_c = class mean, S = shared within-class covariance + ridge (on the train part);
              t_nov = 98 % quantile of d on validation (2 % of ordinary flows flagged by design)
burst         b(x) = k ln(k / e_k) + t ln(t / e_t)       k other flows of the scored file, t training flows in
              x's cell (side 0.5 standard deviations); e_k, e_t: their expected split if file and training
              shared one rate (0 unless k / (n - 1) > t / N and k + 1 >= 10); only for flows predicted normal;
              t_burst = 98 % quantile on normal validation flows at several file sizes, at least 2.11
risk          r = max((1 - conf) / (1 - t_conf), d / t_nov, b / t_burst)   defer when r > 1
              t_conf: the largest threshold that defers <= 14 % of validation flows (the review budget);
              per scored file at most 14 % are deferred (the riskiest); an unseen service/flag always is
```
Softmax confidence measures the distance to a decision boundary, not to the training data: a flow of a
never-seen attack can sit deep inside a class region and be confidently wrong. The Mahalanobis distance in
the network's own hidden space is the second signal. Some never-seen attacks look ordinary one flow at a
time but come by the hundred (password guessing, mail bombs): the burst statistic, the third signal, asks
whether a scored file holds far more flows of one kind than training says it should (`nids_triage/burst.py`).
The risk-coverage table shows what each adds here.
""", {"step8_confidence.png": "KDDTest+: calibrated confidence of the auto-decided (left) and flagged (right) flows, "
                             "correct in green, wrong in red (log scale); the dashed line is the confidence "
                             "threshold chosen on validation; auto-decided flows below it are those the "
                             "per-file 14 % cap left to the model.",
      "step8_risk_coverage.png": "Accuracy of the auto-decided flows against the share sent to review, ranking by "
                                 "the combined risk, softmax confidence, novelty and bursts alone; the dot is the "
                                 "operating point, the vertical line the 14 % budget; validation (orange) for "
                                 "reference."}),
]


def run_step(step: Step, args, plot_dir: Path) -> tuple[str, float, str]:
    try:  # a repository-relative path, so the pasted output shows no machine-specific folder
        shown = plot_dir.relative_to(ROOT).as_posix()
    except ValueError:
        shown = str(plot_dir)
    cmd = [sys.executable, str(HERE / step.script), "--seed", str(args.seed), "--plot-dir", shown]
    if args.fast:
        cmd.append("--fast")
    tic = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
    elapsed = time.perf_counter() - tic
    if proc.returncode != 0:
        raise SystemExit(f"{step.script} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if proc.stderr.strip():
        print(f"[{step.script}] stderr:\n{proc.stderr}", file=sys.stderr)
    shown_cmd = " ".join(["python", f"examples/lab/{step.script}"] + cmd[2:])
    return proc.stdout, elapsed, shown_cmd


def render(steps, outputs, args, out: Path, plot_dir: Path, total: float) -> str:
    data = os.environ.get("BARENET_DATA")
    lines = [
        "# The lab: neural networks from scratch, step by step",
        "",
        "<!-- Generated by examples/lab/make_docs.py from real runs. Do not edit by hand: rerun the script. -->",
        "",
        ("Each step below is a script in `examples/lab/` that you can run yourself; what follows each step's math "
         "is that script's printed output, pasted by `examples/lab/make_docs.py` from a real run (seed "
         f"{args.seed}). Apart from timings, the same seed prints the same numbers (on "
         "the same library versions and BLAS)."),
        "",
        "```",
        "python examples/lab/stepN_*.py [--seed 0] [--fast] [--plot-dir DIR]",
        "BARENET_DATA=/path/to/data python examples/lab/make_docs.py     # regenerate this page",
        "```",
        "",
        (f"This run: Python {platform.python_version()}, "
         f"{'real data from $BARENET_DATA' if data else 'no BARENET_DATA (synthetic stand-in data)'}"
         f"{', fast mode (tiny sizes)' if args.fast else ''}; all steps took {total:.0f} s in total. "
         "Step 8, the capstone, needs the NSL-KDD files (`$BARENET_DATA/nsl-kdd`) and is skipped without them."),
        "",
    ]
    lines += [f"- [Step {i}: {s.title}](#step-{i}-{_anchor(s.title)})" for i, s in zip(args.numbers, steps)]
    for number, step in zip(args.numbers, steps):
        stdout, elapsed, command = outputs[step.script]
        lines += ["", f"## Step {number}: {step.title}", "", step.math.strip(), "",
                  f"`{command}` ({elapsed:.1f} s):", "", "```text", stdout.strip("\n"), "```"]
        for name, caption in step.plots.items():
            rel = os.path.relpath(plot_dir / name, out.parent).replace(os.sep, "/")
            lines += ["", f"![{Path(name).stem}]({rel})", "", f"*{caption}*"]
    return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c == "-")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "lab.md"), help="markdown file to write")
    parser.add_argument("--plot-dir", default=str(ROOT / "docs" / "img" / "lab"), help="folder for the PNGs")
    parser.add_argument("--steps", default=None, help="comma-separated step numbers (default: all)")
    parser.add_argument("--fast", action="store_true", help="run the steps in fast mode (for tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per step")
    args = parser.parse_args(argv)
    args.numbers = [int(s) for s in args.steps.split(",")] if args.steps else list(range(1, len(STEPS) + 1))
    steps = [STEPS[n - 1] for n in args.numbers]
    out, plot_dir = Path(args.out).resolve(), Path(args.plot_dir).resolve()
    plot_dir.mkdir(parents=True, exist_ok=True)

    outputs, tic = {}, time.perf_counter()
    for number, step in zip(args.numbers, steps):
        print(f"step {number}: {step.script} ...", end=" ", flush=True)
        outputs[step.script] = run_step(step, args, plot_dir)
        print(f"{outputs[step.script][1]:.1f} s", flush=True)
    total = time.perf_counter() - tic
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(steps, outputs, args, out, plot_dir, total), encoding="utf-8")
    print(f"wrote {out} ({total:.0f} s of runs)")
    for name in sorted(p.name for p in plot_dir.glob("*.png")):
        print(f"  {name}: {(plot_dir / name).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
