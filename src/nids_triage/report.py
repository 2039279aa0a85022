"""The HTML evaluation report: one self-contained file, plots as base64 PNGs (matplotlib's Agg renderer).

``render_report(metrics, history)`` is a pure function of the metrics dict of ``evaluation.evaluate_scored``
and the model's training History (``model.report["history"]``); the caller writes the returned text.
matplotlib is optional (extra ``barenet[app]``): without it the report keeps its tables and says why the
plots are missing.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np

import barenet as bn

PLOTS = ("learning_curves", "confusion_matrix", "reliability", "risk_coverage", "confidence_histogram")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:1em}.grid figure{margin:0}img{max-width:520px}
figcaption{font-size:.85em;color:#555;max-width:520px}.note{color:#555;font-size:.9em}
"""


def render_report(metrics: dict, history: dict | None = None, *, title: str | None = None) -> str:
    """The whole report as an HTML string (no external resources)."""
    title = title or f"nids-triage evaluation: {metrics['task']} task on {metrics['split']}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>",
             _summary_table(metrics), _calibration_table(metrics), _unseen_table(metrics),
             "<h2>Plots</h2>", _plots_html(metrics, history),
             "<h2>Per class</h2>", _per_class_table(metrics),
             "<h2>Deferral reasons</h2>", _kv_table(metrics["reasons"], ("reason", "flows")),
             _model_table(metrics), "</body></html>"]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- tables
def _summary_table(m) -> str:
    rows = [("flows", f"{m['n_flows']:,}"), ("accuracy (all flows)", _pct(m["accuracy"])),
            ("macro-F1", _num(m["macro_f1"])), ("sent to review", f"{_pct(m['review_share'])} ({m['n_review']:,})"),
            ("accuracy of auto-decided flows", _pct(m["auto_accuracy"])),
            ("accuracy of the model's guess on reviewed flows", _pct(m["review_accuracy"])),
            ("ECE (calibrated, this split)", _num(m["ece"])), ("invalid rows", f"{m['n_invalid']:,}")]
    return "<h2>Summary</h2>" + _table(("metric", "value"), rows)


def _calibration_table(m) -> str:
    v = m.get("validation") or {}
    rows = [("ECE", _num(v.get("ece_before")), _num(v.get("ece_after"))),
            ("NLL", _num(v.get("nll_before")), _num(v.get("nll_after")))]
    n_val = v.get("n_flows")
    note = (f"<p class='note'>Temperature T = {_num(v.get('temperature'))}, fitted on "
            f"{'n/a' if n_val is None else f'{n_val:,}'} validation "
            "flows of the training file; T only rescales confidence, it never changes a prediction.</p>")
    return "<h2>Calibration on validation data</h2>" + _table(("", "before (T = 1)", "after"), rows) + note


def _unseen_table(m) -> str:
    u = m.get("unseen_attacks") or {}
    if not u.get("count"):
        return ""
    rows = [(name, f"{s['count']:,}", f"{s['caught']:,}", _pct(s["caught"] / s["count"]))
            for name, s in u["by_attack"].items()]
    rows.append(("all unseen attacks", f"{u['count']:,}", f"{u['caught']:,}", _pct(u["share_flagged_or_reviewed"])))
    return ("<h2>Attacks never seen in training</h2><p class='note'>Caught = predicted as an attack or sent to "
            "review (not auto-labelled normal).</p>" + _table(("attack", "flows", "caught", "share"), rows))


def _per_class_table(m) -> str:
    rows = [(lab, _num(s["precision"]), _num(s["recall"]), _num(s["f1"]), f"{s['support']:,}")
            for lab, s in m["per_class"].items()]
    return _table(("class", "precision", "recall", "F1", "support"), rows)


def _model_table(m) -> str:
    info = m.get("model") or {}
    rows = [(k, _value(v)) for k, v in info.items() if k != "classes"]
    return "<h2>Model</h2>" + _table(("", ""), rows) if rows else ""


def _kv_table(d, header) -> str:
    return _table(header, [(k, f"{v:,}") for k, v in d.items()])


def _table(header, rows) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# -------------------------------------------------------------------------------------------- plots
def _plots_html(metrics, history) -> str:
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no backend switch (renders with Agg)
    except ImportError:
        return "<p class='note'>Plots need matplotlib (pip install 'barenet[app]').</p>"
    figures = [(_learning_curves, history, "Learning curves: loss and accuracy per epoch (train and validation)."),
               (_confusion, metrics, "Confusion matrix on this split, rows normalised (counts in the cells)."),
               (_reliability, metrics, "Reliability: accuracy against calibrated confidence; the diagonal is perfect."),
               (_risk_coverage, metrics, "Accuracy of the auto-decided flows as the riskiest share goes to review."),
               (_conf_hist, metrics, "Confidence of auto-decided and reviewed flows, right and wrong.")]
    out = []
    for draw, data, caption in figures:
        png = _png(Figure, draw, data)
        out.append(f"<figure><img alt='{_e(draw.__name__.strip('_'))}' src='data:image/png;base64,{png}'>"
                   f"<figcaption>{_e(caption)}</figcaption></figure>")
    return "<div class='grid'>" + "".join(out) + "</div>"


def _png(figure_class, draw, data) -> str:
    fig = figure_class(figsize=(5.2, 3.9), dpi=96)
    draw(fig.subplots(), data)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _learning_curves(ax, history):
    """One model's History dict, or a list of them (ensemble members, drawn side by side)."""
    histories = history if isinstance(history, list) else [history] if history else []
    histories = [bn.History.from_dict(h).records for h in histories if h and h.get("records")]
    if not histories:
        ax.text(0.5, 0.5, "no training history in the model file", ha="center", va="center")
        ax.set_axis_off()
        return
    twin = ax.twinx()
    for m, records in enumerate(histories):
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
        for axis, key, style, color in ((ax, "loss", "-", "C0"), (ax, "val_loss", "--", "C0"),
                                        (twin, "accuracy", "-", "C1"), (twin, "val_accuracy", "--", "C1")):
            vals = [r.get(key) for r in records]
            if any(isinstance(v, (int, float)) for v in vals):
                axis.plot(epochs, [v if isinstance(v, (int, float)) else np.nan for v in vals], style, color=color,
                          alpha=1.0 if len(histories) == 1 else 0.5, label=key if m == 0 else None)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (weighted, train / validation)")
    twin.set_ylabel("accuracy")
    lines, more = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
    # below the plot, in one row: inside it, the legend covered the curves
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18),
              ncol=4, frameon=False)
    members = f" ({len(histories)} ensemble members)" if len(histories) > 1 else ""
    ax.set_title("learning curves" + members)


def _confusion(ax, m):
    labels = m["confusion_matrix"]["labels"]
    cm = np.asarray(m["confusion_matrix"]["matrix"], dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1.0)
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    k = len(labels)
    ax.set_xticks(range(k), labels, rotation=90 if k > 6 else 0, fontsize=6 if k > 12 else 8)
    ax.set_yticks(range(k), labels, fontsize=6 if k > 12 else 8)
    if k <= 12:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j]):,}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix")


def _reliability(ax, m):
    r = m["reliability"]
    conf = np.array([np.nan if v is None else v for v in r["confidence"]], dtype=np.float64)
    acc = np.array([np.nan if v is None else v for v in r["accuracy"]], dtype=np.float64)
    edges = np.asarray(r["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    ax.bar(centers, np.nan_to_num(acc), width=edges[1] - edges[0], edgecolor="k", alpha=0.6, label="accuracy")
    ax.plot(conf, acc, "o", color="C3", ms=3, label="mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {_num(m['ece'])})")
    ax.legend(fontsize=8, loc="upper left")


def _risk_coverage(ax, m):
    for curve, label in ((m.get("risk_coverage"), m["split"]),
                         ((m.get("validation") or {}).get("risk_coverage"), "validation")):
        if curve:
            ax.plot(np.asarray(curve["review_share"]) * 100, curve["auto_accuracy"], marker=".", label=label)
    if m.get("review_share") is not None and m.get("auto_accuracy") is not None:
        ax.plot([m["review_share"] * 100], [m["auto_accuracy"]], "r*", ms=12, label="operating point")
    ax.set_xlabel("share sent to review (%)")
    ax.set_ylabel("accuracy of auto-decided flows")
    ax.set_title("risk-coverage")
    ax.legend(fontsize=8)


def _conf_hist(ax, m):
    h = m["confidence_histogram"]
    edges = np.asarray(h["edges"])
    width = edges[1] - edges[0]
    bottom = np.zeros(len(edges) - 1)
    for key, color in (("auto_correct", "C2"), ("auto_wrong", "C3"), ("review_correct", "C0"),
                       ("review_wrong", "C1")):
        counts = np.asarray(h[key], dtype=np.float64)
        ax.bar(edges[:-1], counts, width=width, bottom=bottom, align="edge", color=color,
               label=key.replace("_", " "))
        bottom += counts
    ax.set_yscale("symlog")
    ax.set_xlabel("confidence")
    ax.set_ylabel("flows")
    ax.set_title("confidence histogram")
    ax.legend(fontsize=8, loc="upper left")


# ------------------------------------------------------------------------------------------ helpers
def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100.0 * x:.2f} %"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _value(x) -> str:
    """A model-table cell: floats to 4 decimals (as everywhere in the report), None as n/a."""
    if x is None:
        return "n/a"
    return _num(x) if isinstance(x, float) else str(x)
