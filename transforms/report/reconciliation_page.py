"""The reconciliation summary as one self-contained HTML page that a person reads in a minute.

``render_report(summary, run_info)`` takes the summary dict of
``transforms.core.reconciliation_summary`` (``summarize``) and, optionally, the facts naming the
run, and returns a single HTML string: the run, the verdict with the guarantee it states, model
warnings, diagnosis, counts per reference and per batch size, a |diff| histogram per reference
and batch size, the worst elements with thumbnails, the batch-size sweep and the probes.
Everything is inline (CSS, base64 PNG plots and thumbnails, no scripts, no external URLs), so
the file can be opened from a bucket, mailed or attached to a ticket as it is.

Plots use ``matplotlib.figure.Figure`` directly: no pyplot global state and no interactive
backend, so rendering is safe on headless workers and in threads.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

PASS_COLOR, FAIL_COLOR = "#1a7f37", "#cf222e"
# Stable colours per batch size, shared by the histogram panels (tab10 without red/green,
# which already mean fail/pass on this page).
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
# 7.5 in at 125 dpi is ~940 px: the page width, shown 1:1 so text stays crisp.
FIGSIZE, DPI = (7.5, 3.0), 125

CAUSE_LABELS = {
    "stochastic_layers": "Stochastic layers",
    "batch_dependent_layers": "Batch-dependent layers",
    "numeric_batch_shape": "Float noise from the batch shape",
    "preprocessing_mismatch": "Preprocessing mismatch (serving path)",
    "decoder_skew": "Decoder skew (Pillow decode)",
    "non_finite_scores": "Non-finite scores (NaN or Inf)",
    "reference_failed": "The model failed on the reference call",
    "constant_output": "Constant output",
    "none": "No cause to report",
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1f2328;max-width:1080px;margin:20px auto;padding:0 16px;line-height:1.45}
h1{font-size:1.4em;margin:0 0 4px}
h2{font-size:1.15em;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a;font-size:.9em}
.banner{color:#fff;border-radius:8px;padding:14px 20px;margin:14px 0 18px}
.banner .verdict{font-size:2.2em;font-weight:700;letter-spacing:.05em;line-height:1.1}
.banner .sentence{font-size:1.1em;margin-top:4px}
.pass{background:#1a7f37}.fail{background:#cf222e}.inconclusive,.empty{background:#9a6700}
ul.warnings{margin:0 0 12px;padding-left:20px}
ul.warnings li{margin:0 0 6px}
table.run td{text-align:left;white-space:normal;overflow-wrap:anywhere}
td.thumb{padding:2px;width:100px}
td.thumb img{max-width:96px;max-height:96px;margin:0 auto}
ul.diagnosis{list-style:none;padding:0;margin:0}
ul.diagnosis li{border-left:4px solid #d0d7de;padding:4px 12px;margin:0 0 8px}
ul.diagnosis li.cause-fail{border-left-color:#cf222e}
ul.diagnosis li.cause-note{border-left-color:#bf8700}
ul.diagnosis .cause{font-weight:600}
code{font-size:.9em;color:#57606a;white-space:nowrap}
table{border-collapse:collapse;font-size:.88em;margin:6px 0 10px}
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;font-weight:600;white-space:normal;vertical-align:bottom}
td.l,th.l{text-align:left}
td.uri{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;white-space:normal;
 overflow-wrap:normal;word-break:keep-all;min-width:200px;max-width:420px}
.wide{max-width:100%;overflow-x:auto}
tr.bad td{background:#ffebe9}
.note{color:#57606a;font-size:.88em;margin:2px 0 10px}
.rec{font-weight:600}
img{max-width:100%;height:auto;display:block;margin:6px 0}
"""


# --- formatting -------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escaped text of any value: uris, causes and evidence are user or model data."""
    return html.escape(str(value), quote=True)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _diff(value: Any, empty: bool = False) -> str:
    """A |diff|: None means non-finite in the summary, unless nothing was compared at all."""
    if empty:
        return "—"
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "non-finite"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "—"


def _pct(value: Any) -> str:
    if not _is_finite(value):
        return "—"
    if value >= 1.0:
        return "100%"
    text = f"{100 * value:.1f}%"
    # Never round a disagreement up to a perfect-looking 100.0%.
    return ">99.9%" if text == "100.0%" else text


def _rate(value: Any) -> str:
    return f"{value:,.1f}" if _is_finite(value) else "—"


def _size_key(size: str) -> tuple[int, Any]:
    """Batch-size keys are strings after JSON; sort them as numbers where they are."""
    try:
        return (0, int(size))
    except (TypeError, ValueError):
        return (1, str(size))


def _png(fig: Figure, alt: str = "plot") -> str:
    """The figure as an <img> with a base64 data URI (no metadata: it would carry a URL)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _table(headers: Iterable[str], rows: Iterable[str], left: int = 1) -> str:
    """A table; the first ``left`` columns are text (left-aligned), the rest numbers."""
    cells = "".join(
        f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>"
        for i, h in enumerate(headers)
    )
    table = f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    # A table wider than the page scrolls inside its box instead of widening the page.
    return f'<div class="wide">{table}</div>'


def _row(cells: Iterable[str], left: int = 1, bad: bool = False, first: str = "l") -> str:
    """One row of already-escaped cell texts; ``first`` is the first cell's CSS class."""
    classes = [first] + ["l"] * (left - 1)
    tds = "".join(
        f'<td class="{classes[i]}">{c}</td>' if i < left else f"<td>{c}</td>"
        for i, c in enumerate(cells)
    )
    return f'<tr class="bad">{tds}</tr>' if bad else f"<tr>{tds}</tr>"


# --- sections -----------------------------------------------------------------------------


def _header(summary: dict, run_info: dict | None) -> str:
    """The run's identity: what a ticket needs to reproduce it."""
    info = run_info or {}
    rows = []

    def add(name: str, value: str) -> None:
        rows.append(f'<tr><th class="l">{_e(name)}</th><td>{value}</td></tr>')

    if info.get("model"):
        add(
            "model",
            f"<b>{_e(info['model'])}</b>"
            + (f" ({_e(info['model_kind'])})" if info.get("model_kind") else ""),
        )
    if info.get("model_digest"):
        add("model digest", f"<code>{_e(info['model_digest'])}</code>")
    if info.get("inputs"):
        add("inputs", "<br>".join(_e(i) for i in info["inputs"] if i))
    counts = [
        f"{name} {_count(value)}"
        for name, value in (
            ("matched", info.get("matched", summary.get("matched"))),
            ("scored", info.get("scored", summary.get("predictions"))),
            ("errors", info.get("errors")),
        )
        if isinstance(value, int)
    ]
    if counts:
        add("images", " · ".join(counts))
    if _is_finite(info.get("images_per_second")):
        add("throughput", f"{_rate(info['images_per_second'])} images/s")
    if info.get("date"):
        add("date", _e(info["date"]))
    options = dict(info.get("options") or {})
    options.setdefault("batch_size", summary.get("batch_size"))
    options.setdefault("atol", summary.get("atol"))
    options.setdefault("rtol", summary.get("rtol"))
    options.setdefault("reconcile_fraction", summary.get("fraction"))
    if _is_finite(summary.get("effective_fraction")):
        options["effective sampled share"] = f"{summary['effective_fraction']:.4g}"
    add(
        "options",
        " · ".join(f"{_e(k)} <code>{_e(v)}</code>" for k, v in options.items() if v is not None),
    )
    for name in ("package_versions", "environment"):
        if info.get(name):
            add(
                name.replace("_", " "),
                " · ".join(f"{_e(k)} {_e(v)}" for k, v in info[name].items()),
            )
    return "<h1>Batch reconciliation report</h1>" + f'<table class="run">{"".join(rows)}</table>'


def _banner(summary: dict) -> str:
    verdict = str(summary.get("verdict") or ("inconclusive" if not summary.get("compared") else ""))
    css = verdict if verdict in ("pass", "fail", "inconclusive") else "empty"
    sentence = summary.get("guarantee") or (
        "Nothing was compared: there is no evidence either way."
        if not summary.get("compared")
        else ""
    )
    prefix = f"{verdict.upper()}: "
    if sentence.startswith(prefix):
        sentence = sentence[len(prefix)].upper() + sentence[len(prefix) + 1 :]
    detail = ""
    if summary.get("compared"):
        # With two references the counts are the worst one's (the headline's), named: pooled
        # counts would dilute a reference that fails every comparison.
        by_reference = summary.get("by_reference") or {}
        worst = summary.get("worst_reference") if len(by_reference) > 1 else None
        counts = by_reference.get(worst) or summary
        detail = (
            (f"{_e(worst)} reference: " if worst else "")
            + f"{_count(counts.get('identical'))} bitwise identical · "
            f"{_count(counts.get('within_tolerance'))} within tolerance (atol "
            f"{_e(summary.get('atol'))}, rtol {_e(summary.get('rtol'))}) · "
            f"{_count(counts.get('mismatch'))} mismatch · "
            f"{_count(counts.get('non_finite', 0))} non-finite · top-1 agreement "
            f"{_pct(counts.get('top1_agreement'))} · max |diff| "
            f"{_diff(counts.get('max_abs_diff'))}"
        )
    return (
        f'<div class="banner {css}"><div class="verdict">{_e(verdict.upper() or "NO DATA")}'
        f'</div><div class="sentence">{_e(sentence)}</div>'
        + (f'<div class="meta" style="color:#fff">{detail}</div>' if detail else "")
        + "</div>"
    )


def _warnings(summary: dict) -> str:
    warnings = summary.get("model_warnings") or []
    if not warnings:
        return ""
    items = "".join(
        f"<li><b>{_e(w.get('kind'))}</b> at <code>{_e(w.get('where'))}</code>: "
        f"{_e(w.get('message'))}</li>"
        for w in warnings
    )
    return (
        '<h2>Model warnings</h2><p class="note">Found by reading the model before running '
        "it: faults this job's call masks or that change what the numbers mean.</p>"
        f'<ul class="warnings">{items}</ul>'
    )


def _diagnosis(summary: dict) -> str:
    items = []
    # A cause behind a failure is red; one found while everything passed is only a note.
    css = ' class="cause-fail"' if summary.get("verdict") != "pass" else ' class="cause-note"'
    for entry in summary.get("diagnosis") or []:
        cause = str(entry.get("cause", ""))
        label = CAUSE_LABELS.get(cause, cause.replace("_", " ").capitalize())
        item_css = "" if cause == "none" else css
        items.append(
            f'<li{item_css}><span class="cause">{_e(label)}</span> <code>{_e(cause)}</code>'
            f"<div>{_e(entry.get('evidence', ''))}</div></li>"
        )
    if not items:
        return ""
    return f'<h2>Diagnosis</h2><ul class="diagnosis">{"".join(items)}</ul>'


COUNT_HEADERS = (
    "compared",
    "identical",
    "within tolerance",
    "mismatch",
    "non-finite",
    "top-1 agreement",
    "max |diff|",
    "p50",
    "p90",
    "p99",
)


def _count_row(label: str, counts: dict) -> str:
    empty = not counts.get("compared")
    quantiles = counts.get("abs_diff_quantiles") or {}
    return _row(
        [
            _e(label),
            _count(counts.get("compared")),
            _count(counts.get("identical")),
            _count(counts.get("within_tolerance")),
            _count(counts.get("mismatch")),
            _count(counts.get("non_finite", 0)),
            "—" if empty else _pct(counts.get("top1_agreement")),
            _diff(counts.get("max_abs_diff"), empty),
            *(_diff(quantiles.get(q), empty) for q in ("p50", "p90", "p99")),
        ],
        bad=bool(
            counts.get("mismatch") or counts.get("non_finite") or counts.get("reference_error")
        ),
    )


REFERENCE_NAMES = {
    "single": "single (alone)",
    "serving": "serving (raw bytes)",
    "pillow": "pillow (Pillow decode)",
}
REFERENCE_NOTE = (
    '<p class="note">single: each sampled element scored again alone, through the same model '
    "call; serving: its raw bytes through the serving bundle's <code>serving_default</code> "
    "(tfx-bsl), as online clients send them; pillow: its raw bytes decoded by Pillow with the "
    "EXIF orientation applied, then the same resize, normalisation and model call.</p>"
)


def _counts(summary: dict, run_info: dict | None) -> str:
    if not summary.get("compared"):
        return ""
    by_reference = summary.get("by_reference") or {}
    rows = [
        _count_row(REFERENCE_NAMES.get(name, name), by_reference[name])
        for name in sorted(by_reference)
    ]
    if not rows:
        rows = [_count_row("all", summary)]
    bounds = ""
    if summary.get("compared") and _is_finite(summary.get("mismatch_rate_upper")):
        kind = (
            "exact rates"
            if summary.get("exhaustive")
            else (f"{_pct(summary.get('confidence'))} upper bounds")
        )
        rates = [
            (f"{_e(name)}: " if len(by_reference) > 1 else "")
            + f"beyond tolerance {_pct(counts.get('mismatch_rate_upper'))}, top-1 changed "
            f"{_pct(counts.get('top1_flip_rate_upper'))}"
            for name, counts in (by_reference or {"all": summary}).items()
        ]
        bounds = (
            f'<p class="note">Over all the job\'s predictions ({kind}), per reference: '
            f"{'; '.join(rates)}.</p>"
        )
    by_size = summary.get("by_batch_size") or {}
    size_rows = [
        _count_row(f"batch {size}", by_size[size]) for size in sorted(by_size, key=_size_key)
    ]
    note = (
        '<p class="note">Per comparison, |diff| is the largest absolute difference over the '
        "classes; quantiles come from log-spaced bins (within a factor 1.8).</p>"
    )
    oriented = summary.get("exif_oriented")
    exif_note = (
        f'<p class="note">{_count(oriented)} predictions are of images with an EXIF '
        "orientation other than the default: TensorFlow's decoder ignores it, so they were "
        "scored as stored, not as a viewer (or a Pillow service with exif_transpose) shows "
        "them.</p>"
        if oriented
        else ""
    )
    return (
        "<h2>Counts by reference</h2>"
        + _table(("reference", *COUNT_HEADERS), rows)
        + (REFERENCE_NOTE if len(by_reference) > 1 else "")
        + exif_note
        + bounds
        + "<h2>Counts by the batch size each element was scored in</h2>"
        + (
            '<p class="note">Both references together: the batch size is that of the '
            "element's batched score.</p>"
            if len(by_reference) > 1
            else ""
        )
        + _table(("batch", *COUNT_HEADERS), size_rows)
        + _final_batch_note(summary, (run_info or {}).get("options") or {})
        + note
    )


def _final_batch_note(summary: dict, options: dict) -> str:
    job = summary.get("batch_size")
    smaller = {
        size: counts.get("compared", 0)
        for size, counts in (summary.get("by_batch_size") or {}).items()
        if _size_key(size)[0] == 0 and isinstance(job, int) and int(size) < job
    }
    if not smaller:
        return ""
    sizes = ", ".join(sorted(smaller, key=_size_key))
    padded = options.get("pad_batches")
    return (
        f'<p class="note">Batches of {_e(sizes)} are smaller than the job\'s batch size '
        f"{_e(job)}: the job's last batch holds what is left, and a batch that lost a bad "
        "file holds the rest of it. "
        + (
            "They were padded to the full size, so every call had one shape."
            if padded
            else "Without <code>--pad_batches</code> they run at their own shape, which can "
            "round differently; <code>--pad_batches</code> pads them to the full size."
        )
        + "</p>"
    )


def _bin_edges(upper_edges: list[float]) -> list[float]:
    """Lower and upper edges of bins 1..n (bin 0 is exact zeros), for ``Axes.stairs``."""
    ratio = upper_edges[2] / upper_edges[1] if len(upper_edges) > 2 else 10**0.25
    return [upper_edges[1] / ratio, *upper_edges[1:]]


def mark_no_differences(ax, atol: float | None) -> None:
    """An empty |diff| panel says so, centred on the tolerance if there is one."""
    ax.text(
        0.5,
        0.5,
        "no non-zero differences",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=10,
        color="#57606a",
    )
    if _is_finite(atol) and atol > 0:
        ax.set_xlim(atol / 1e3, atol * 1e3)


def _histogram(summary: dict) -> str:
    histogram = summary.get("abs_diff_histogram") or {}
    upper = histogram.get("bin_upper_edges") or []
    series = histogram.get("by_series") or histogram.get("by_batch_size") or {}
    if not series and histogram.get("counts"):
        series = {str(summary.get("batch_size", "all")): histogram["counts"]}
    series = {k: v for k, v in series.items() if v and sum(v)}
    if len(upper) < 3 or not series:
        return ""
    sizes = sorted(series, key=_series_key)
    colors = {size: SERIES_COLORS[i % len(SERIES_COLORS)] for i, size in enumerate(sizes)}
    edges = _bin_edges(upper)
    atol = summary.get("atol")

    fig = Figure(figsize=FIGSIZE)
    zero_counts = [series[size][0] for size in sizes]
    if not any(zero_counts):
        # No comparison was bitwise identical: an empty panel would only take room.
        ax = fig.subplots(1, 1)
        return _histogram_curves(summary, fig, ax, series, sizes, colors, upper, edges, atol)
    # One bar per series: the panel widens with them so their labels never collide.
    ratios = [1 + 0.3 * max(0, len(sizes) - 2), 5.5]
    zeros_ax, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": ratios, "wspace": 0.25})
    # Log scale cannot show |diff| = 0, so bitwise-identical comparisons get their own panel.
    bars = zeros_ax.bar(range(len(sizes)), zero_counts, color=[colors[s] for s in sizes])
    zeros_ax.bar_label(bars, fontsize=7 if len(sizes) > 2 else 8)
    # Series are "single · batch 32", "serving · batch 32", "sweep · batch 8": shorten them.
    short = [size.replace(" · batch ", " ") for size in sizes]
    zeros_ax.set_xticks(
        range(len(sizes)),
        short,
        fontsize=8,
        rotation=45 if len(sizes) > 1 else 0,
        ha="right" if len(sizes) > 1 else "center",
        rotation_mode="anchor",
    )
    zeros_ax.set_xlabel("reference, batch size", fontsize=8)
    zeros_ax.set_ylabel("comparisons", fontsize=9)
    zeros_ax.set_title("identical\n(|diff| = 0)", fontsize=9)
    zeros_ax.set_ylim(0, max(max(zero_counts), 1) * 1.25)  # no negative axis when all are 0
    zeros_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    zeros_ax.tick_params(labelsize=8)
    return _histogram_curves(summary, fig, ax, series, sizes, colors, upper, edges, atol)


def _series_key(name: str) -> tuple:
    """ "sweep · batch 8" before "sweep · batch 32": batch sizes in numeric order."""
    reference, _, size = name.rpartition(" · batch ")
    return (reference, int(size)) if size.isdigit() else (name, 0)


def _histogram_curves(summary, fig, ax, series, sizes, colors, upper, edges, atol) -> str:
    """The log-scale panel of non-zero differences, and a note naming curves that coincide
    (one is drawn over the other, so the plot alone would hide it)."""
    nonzero = [i for size in sizes for i, c in enumerate(series[size]) if i > 0 and c]
    ax.set_xscale("log")
    # Plain "1e-7" labels: the default ones are mathtext, whose parser is most of the render time.
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{value:.0e}".replace("e-0", "e-"))
    )
    ax.xaxis.set_minor_formatter(NullFormatter())
    if nonzero:
        # Show only the occupied decades (plus atol), not all fifteen of them.
        low, high = min(nonzero), max(nonzero)
        if _is_finite(atol) and atol > 0:
            low = min(low, _bin_index(upper, atol))
            high = max(high, _bin_index(upper, atol))
        low, high = max(1, low - 2), min(len(upper) - 1, high + 2)
        for size in sizes:
            counts = series[size][low : high + 1]
            if sum(counts):
                ax.stairs(
                    counts,
                    edges[low - 1 : high + 1],
                    label=size,
                    color=colors[size],
                    linewidth=1.8,
                )
        ax.set_xlim(edges[low - 1], edges[high])
        if series[sizes[0]] and any(series[s][-1] for s in sizes) and high == len(upper) - 1:
            ax.annotate(
                "last bin: ≥1e3 or non-finite",
                (0.99, 0.97),
                xycoords="axes fraction",
                ha="right",
                va="top",
                fontsize=8,
                color="#57606a",
            )
    else:
        mark_no_differences(ax, atol)
    if _is_finite(atol) and atol > 0:
        ax.axvline(atol, color=FAIL_COLOR, linestyle="--", linewidth=1.2, label=f"atol {atol:g}")
    ax.set_xlabel("|batched − reference|  (max over classes, log scale)", fontsize=9)
    ax.set_ylabel("comparisons", fontsize=9)
    ax.set_title("Non-zero differences per reference and batch size", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", axis="x", color="#eaeef2")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best", framealpha=0.9, edgecolor="#d0d7de")
    same: dict[tuple, list[str]] = {}
    for size in sizes:
        if sum(series[size][1:]):
            same.setdefault(tuple(series[size][1:]), []).append(size)
    notes = "".join(
        f'<p class="note">The curves of {_e(" and ".join(group))} are identical: one is drawn '
        "over the other.</p>"
        for group in same.values()
        if len(group) > 1
    )
    panels = len(fig.axes)
    alt = "identical counts and non-zero differences" if panels > 1 else "non-zero differences"
    return "<h2>Distribution of differences</h2>" + _png(fig, alt) + notes


def _bin_index(upper: list[float], value: float) -> int:
    """Index of the histogram bin holding value (bins are (previous edge, upper edge])."""
    for index in range(1, len(upper)):
        if value <= upper[index]:
            return index
    return len(upper) - 1


def _recommendation(summary: dict, sweep: dict) -> str:
    clean = [
        (entry["images_per_second"], size)
        for size, entry in sweep.items()
        if not entry.get("mismatch") and _is_finite(entry.get("images_per_second"))
    ]
    if not clean and any(not entry.get("mismatch") for entry in sweep.values()):
        return (
            '<p class="rec">No swept batch size without mismatches has a measured throughput.</p>'
        )
    if not clean:
        return (
            '<p class="rec">No swept batch size is free of mismatches: fix the cause above '
            "(or loosen the tolerance) before choosing a batch size for speed.</p>"
        )
    rate, size = max(clean, key=lambda pair: pair[0])
    text = (
        f"Recommended batch size: {_e(size)}, the fastest swept size with zero mismatches "
        f"({_rate(rate)} images/s"
    )
    job = str(summary.get("batch_size"))
    job_entry = sweep.get(job) or {}
    job_rate = job_entry.get("images_per_second")
    if job != str(size) and _is_finite(job_rate) and job_rate > 0:
        if job_entry.get("mismatch"):
            text += (
                f"; the job's batch size {_e(job)} runs at {_rate(job_rate)} images/s but has "
                f"{job_entry['mismatch']:,} mismatches"
            )
        else:
            text += f", {rate / job_rate:.2f}× the throughput at the job's batch size {_e(job)}"
    return f'<p class="rec">{text}).</p>'


def _sweep(summary: dict) -> str:
    sweep = summary.get("sweep") or {}
    if not sweep:
        return ""
    sizes = sorted(sweep, key=_size_key)
    rows = []
    for size in sizes:
        entry = sweep[size]
        empty = not entry.get("compared")
        rows.append(
            _row(
                [
                    _e(size),
                    _count(entry.get("images")),
                    f"{entry['seconds']:.3g}" if _is_finite(entry.get("seconds")) else "—",
                    _rate(entry.get("images_per_second")),
                    _count(entry.get("compared")),
                    _count(entry.get("identical")),
                    _count(entry.get("within_tolerance")),
                    _count(entry.get("mismatch")),
                    _diff(entry.get("max_abs_diff"), empty),
                ],
                bad=bool(entry.get("mismatch")),
            )
        )
    table = _table(
        (
            "batch size",
            "images",
            "model seconds",
            "images/s",
            "compared",
            "identical",
            "within tolerance",
            "mismatch",
            "max |diff|",
        ),
        rows,
    )
    plot = _sweep_plot(sweep, sizes)
    note = (
        '<p class="note">Throughput is model-call time only, on the reconciliation sample '
        "rescored at each size (no reading or decoding); mismatches are against the same "
        "single-element reference.</p>"
    )
    return "<h2>Batch-size sweep</h2>" + _recommendation(summary, sweep) + table + plot + note


def _sweep_plot(sweep: dict, sizes: list[str]) -> str:
    points = [
        (_size_key(size)[1], sweep[size]["images_per_second"], sweep[size].get("mismatch") or 0)
        for size in sizes
        if _size_key(size)[0] == 0 and _is_finite(sweep[size].get("images_per_second"))
    ]
    if not points:
        return ""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    xs, rates, mismatches = zip(*points, strict=True)
    ax.plot(xs, rates, color="#57606a", linewidth=1.5, zorder=1)
    clean = [(x, r) for x, r, m in points if not m]
    dirty = [(x, r) for x, r, m in points if m]
    if clean:
        ax.scatter(*zip(*clean, strict=True), color=PASS_COLOR, s=45, zorder=2, label="no mismatch")
    if dirty:
        ax.scatter(
            *zip(*dirty, strict=True),
            color=FAIL_COLOR,
            s=45,
            marker="X",
            zorder=2,
            label="mismatch",
        )
    for x, rate, mismatch in points:
        label = f"{mismatch:,} mismatch{'es' * (mismatch > 1)}" if mismatch else f"{rate:,.0f}/s"
        ax.annotate(
            label,
            (x, rate),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
            color=FAIL_COLOR if mismatch else "#1f2328",
        )
    if len(set(xs)) > 1 and min(xs) > 0:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.minorticks_off()
    ax.set_ylim(0, max(rates) * 1.2 if max(rates) > 0 else 1)
    ax.set_xlabel("batch size", fontsize=9)
    ax.set_ylabel("images / s", fontsize=9)
    ax.set_title("Model throughput and mismatches per batch size", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(True, axis="y", color="#eaeef2")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return _png(fig)


def _label(index: Any, labels: list[str] | None) -> str:
    if not isinstance(index, int):
        return "—"
    if labels and 0 <= index < len(labels):
        return f"{_e(labels[index])} <code>{index}</code>"
    return _e(index)


def _worst(summary: dict, labels: list[str] | None) -> str:
    worst = summary.get("worst") or []
    if not worst:
        return ""
    if all(w.get("status") == "identical" for w in worst):
        return (
            "<h2>Worst elements</h2><p>Every listed comparison is bitwise identical; "
            "there is nothing to single out.</p>"
        )
    # One group per image, in the order of its worst comparison: the same image compared
    # with several references (or swept sizes) is one block, its thumbnail shown once.
    groups: dict[str, list[dict]] = {}
    for w in worst:
        groups.setdefault(str(w.get("uri", w.get("key", ""))), []).append(w)
    rows = []
    for uri, members in groups.items():
        thumbs = [w.get("thumbnail") for w in members]
        thumb = next((x for x in thumbs if isinstance(x, str)), None)
        image = (
            f'<img src="{_e(thumb)}" alt="thumbnail">'
            if isinstance(thumb, str) and thumb.startswith("data:image/png;base64,")
            else "—"
        )
        for i, w in enumerate(members):
            rows.append(_worst_row(w, labels, image, uri, len(members) if i == 0 else 0))
    headers = (
        "image",
        "uri",
        "compared with",
        "status",
        "batch size",
        "position",
        "max |diff|",
        "top-1 batched",
        "top-1 reference",
    )
    return "<h2>Worst elements</h2>" + _table(headers, rows, left=4)


def _breakable_path(uri: str) -> str:
    """An escaped path that wraps only after a ``/`` (never inside a name)."""
    return "/<wbr>".join(_e(part) for part in uri.split("/"))


def _worst_row(w: dict, labels, image: str, uri: str, span: int) -> str:
    """One comparison of the worst list. The first of its image's group (``span`` > 0 rows)
    carries the thumbnail and the uri, spanning the group; the others start at the reference."""
    source = "sweep" if w.get("sweep") else w.get("reference", "—")
    cells = [
        f'<td class="l">{_e(source)}</td>',
        f'<td class="l">{_e(w.get("status", "—"))}</td>',
        *(
            f"<td>{value}</td>"
            for value in (
                _e(w.get("batch_size", "—")),
                _e(w.get("position", "—")),
                _diff(w.get("max_abs_diff")),
                _label(w.get("top1_batch"), labels),
                _label(w.get("top1_reference"), labels),
            )
        ),
    ]
    if span:
        rows = f' rowspan="{span}"' if span > 1 else ""
        cells[:0] = [
            f'<td class="thumb"{rows}>{image}</td>',
            f'<td class="l uri"{rows}>{_breakable_path(uri)}</td>',
        ]
    bad = ' class="bad"' if w.get("status") in ("mismatch", "non_finite", "reference_error") else ""
    return f"<tr{bad}>{''.join(cells)}</tr>"


def _probes(summary: dict) -> str:
    probes = summary.get("probes") or {}
    named = [(name, probes[name]) for name in ("repeat", "neighbours", "shape") if name in probes]
    if not any(p.get("probes") for _, p in named):
        return ""
    meaning = {
        "repeat": "alone, twice",
        "neighbours": "among zeros vs among images",
        "shape": "alone vs at the job's batch size",
    }
    rows = [
        _row(
            [
                _e(name),
                _e(meaning[name]),
                _count(p.get("probes")),
                _count(p.get("beyond_tolerance")),
                _count(p.get("top1_changed")),
                _count(p.get("bitwise")),
                _diff(p.get("max"), not p.get("probes")),
            ],
            left=2,
            bad=bool(p.get("beyond_tolerance")),
        )
        for name, p in named
    ]
    headers = (
        "probe",
        "one image scored",
        "probes",
        "beyond tolerance",
        "top-1 changed",
        "bitwise equal",
        "max |diff|",
    )
    note = ""
    if not any(p.get("probes") for name, p in named if name != "repeat"):
        single = (summary.get("by_reference") or {}).get("single") or {}
        failed = (summary.get("mismatch") or 0) + (summary.get("non_finite") or 0)
        if not failed:
            why = "no comparison failed, so none ran"
        elif single.get("mismatch"):
            why = "none ran on this run's workers"
        else:
            why = (
                f"{failed:,} comparisons failed, but none was a single-reference mismatch with "
                "finite scores (serving-path or non-finite failures), which is what they probe"
            )
        note = (
            '<p class="meta">The batch-sized probes (neighbours, shape) run on a worker\'s '
            f"first single-reference mismatch; {why}.</p>"
        )
    return "<h2>Probes</h2>" + _table(headers, rows, left=2) + note


def render_report(summary: dict, run_info: dict | None = None) -> str:
    """The reconciliation summary (and optional run.json facts) as one self-contained HTML page.

    Args:
      summary: the dict ``transforms.core.reconciliation_summary.summarize`` returns (or
        summary.json loaded).
      run_info: optional facts naming the run, shown in the header when present: model,
        model_kind, model_digest, inputs, matched, scored, errors, images_per_second, date,
        options (padding included), package_versions, environment; ``labels`` turn top-1
        indices into class names.

    Returns:
      A complete HTML document: inline CSS, plots as base64 PNG data URIs, no scripts and no
      external references; every string from the data is HTML-escaped.
    """
    # Its own module (this one is long); it draws with this module's kit, hence imported here.
    from transforms.report import divergence_panel

    summary = summary or {}
    verdict = str(summary.get("verdict") or "inconclusive").upper()
    labels = (run_info or {}).get("labels")
    sections = [
        _header(summary, run_info),
        _banner(summary),
        _warnings(summary),
        _diagnosis(summary),
        _counts(summary, run_info),
        _histogram(summary),
        _worst(summary, labels),
        _sweep(summary),
        _probes(summary),
        divergence_panel.divergence_section(summary),
    ]
    body = "\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Reconciliation {verdict}</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
