"""The reconciliation summary as one self-contained HTML page that a person reads in a minute.

``render_report(summary, run_info)`` takes the summary dict of
``transforms.core.reconciliation_summary`` (``summarize``) and, optionally, the facts naming the
run, and returns a single HTML string: the run, the verdict with the guarantee it states, model
warnings, diagnosis, counts per reference and per batch size, a |diff| histogram per reference
and batch size, the worst elements with thumbnails, the batch-size sweep (``sweep_panel``), the
probes and the layer divergence (``divergence_panel``). Everything is inline (CSS, base64 PNG
plots and thumbnails, no scripts, no external URLs), so the file can be opened from a bucket,
mailed or attached to a ticket as it is. Built from ``html_kit`` and ``plots``.
"""

from __future__ import annotations

from transforms.report import plots
from transforms.report.divergence_panel import divergence_section
from transforms.report.html_kit import (
    CSS,
    count_text,
    diff_text,
    escape,
    is_finite,
    percent_cell,
    png_img,
    rate_text,
    row,
    size_key,
    table,
)
from transforms.report.sweep_panel import sweep_section
from transforms.report.worst_elements import worst_section

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


def _header(summary: dict, run_info: dict | None) -> str:
    """The run's identity: what a ticket needs to reproduce it."""
    info = run_info or {}
    rows = []

    def add(name: str, value: str) -> None:
        rows.append(f'<tr><th class="l">{escape(name)}</th><td>{value}</td></tr>')

    if info.get("model"):
        add(
            "model",
            f"<b>{escape(info['model'])}</b>"
            + (f" ({escape(info['model_kind'])})" if info.get("model_kind") else ""),
        )
    if info.get("model_digest"):
        add("model digest", f"<code>{escape(info['model_digest'])}</code>")
    if info.get("inputs"):
        add("inputs", "<br>".join(escape(i) for i in info["inputs"] if i))
    counts = [
        f"{name} {count_text(value)}"
        for name, value in (
            ("matched", info.get("matched", summary.get("matched"))),
            ("scored", info.get("scored", summary.get("predictions"))),
            ("errors", info.get("errors")),
        )
        if isinstance(value, int)
    ]
    if counts:
        add("images", " · ".join(counts))
    if is_finite(info.get("images_per_second")):
        add("throughput", f"{rate_text(info['images_per_second'])} images/s")
    if info.get("date"):
        add("date", escape(info["date"]))
    options = dict(info.get("options") or {})
    options.setdefault("batch_size", summary.get("batch_size"))
    options.setdefault("atol", summary.get("atol"))
    options.setdefault("rtol", summary.get("rtol"))
    options.setdefault("reconcile_fraction", summary.get("fraction"))
    if is_finite(summary.get("effective_fraction")):
        options["effective sampled share"] = f"{summary['effective_fraction']:.4g}"
    add(
        "options",
        " · ".join(
            f"{escape(k)} <code>{escape(v)}</code>" for k, v in options.items() if v is not None
        ),
    )
    for name in ("package_versions", "environment"):
        if info.get(name):
            add(
                name.replace("_", " "),
                " · ".join(f"{escape(k)} {escape(v)}" for k, v in info[name].items()),
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
            (f"{escape(worst)} reference: " if worst else "")
            + f"{count_text(counts.get('identical'))} bitwise identical · "
            f"{count_text(counts.get('within_tolerance'))} within tolerance (atol "
            f"{escape(summary.get('atol'))}, rtol {escape(summary.get('rtol'))}) · "
            f"{count_text(counts.get('mismatch'))} mismatch · "
            f"{count_text(counts.get('non_finite', 0))} non-finite · top-1 agreement "
            f"{percent_cell(counts.get('top1_agreement'))} · max |diff| "
            f"{diff_text(counts.get('max_abs_diff'))}"
        )
    return (
        f'<div class="banner {css}"><div class="verdict">{escape(verdict.upper() or "NO DATA")}'
        f'</div><div class="sentence">{escape(sentence)}</div>'
        + (f'<div class="meta" style="color:#fff">{detail}</div>' if detail else "")
        + "</div>"
    )


def _warnings(summary: dict) -> str:
    warnings = summary.get("model_warnings") or []
    if not warnings:
        return ""
    items = "".join(
        f"<li><b>{escape(w.get('kind'))}</b> at <code>{escape(w.get('where'))}</code>: "
        f"{escape(w.get('message'))}</li>"
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
            f'<li{item_css}><span class="cause">{escape(label)}</span> <code>{escape(cause)}</code>'
            f"<div>{escape(entry.get('evidence', ''))}</div></li>"
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
    return row(
        [
            escape(label),
            count_text(counts.get("compared")),
            count_text(counts.get("identical")),
            count_text(counts.get("within_tolerance")),
            count_text(counts.get("mismatch")),
            count_text(counts.get("non_finite", 0)),
            "—" if empty else percent_cell(counts.get("top1_agreement")),
            diff_text(counts.get("max_abs_diff"), empty),
            *(diff_text(quantiles.get(q), empty) for q in ("p50", "p90", "p99")),
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
    if summary.get("compared") and is_finite(summary.get("mismatch_rate_upper")):
        kind = (
            "exact rates"
            if summary.get("exhaustive")
            else (f"{percent_cell(summary.get('confidence'))} upper bounds")
        )
        rates = [
            (f"{escape(name)}: " if len(by_reference) > 1 else "")
            + f"beyond tolerance {percent_cell(counts.get('mismatch_rate_upper'), bound=True)}, "
            f"top-1 changed {percent_cell(counts.get('top1_flip_rate_upper'), bound=True)}"
            for name, counts in (by_reference or {"all": summary}).items()
        ]
        bounds = (
            f'<p class="note">Over all the job\'s predictions ({kind}), per reference: '
            f"{'; '.join(rates)}.</p>"
        )
    by_size = summary.get("by_batch_size") or {}
    size_rows = [
        _count_row(f"batch {size}", by_size[size]) for size in sorted(by_size, key=size_key)
    ]
    note = (
        '<p class="note">Per comparison, |diff| is the largest absolute difference over the '
        "classes; quantiles come from log-spaced bins (within a factor 1.8).</p>"
    )
    oriented = summary.get("exif_oriented")
    exif_note = (
        f'<p class="note">{count_text(oriented)} predictions are of images with an EXIF '
        "orientation other than the default: TensorFlow's decoder ignores it, so they were "
        "scored as stored, not as a viewer (or a Pillow service with exif_transpose) shows "
        "them.</p>"
        if oriented
        else ""
    )
    return (
        "<h2>Counts by reference</h2>"
        + table(("reference", *COUNT_HEADERS), rows)
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
        + table(("batch", *COUNT_HEADERS), size_rows)
        + _final_batch_note(summary, (run_info or {}).get("options") or {})
        + note
    )


def _final_batch_note(summary: dict, options: dict) -> str:
    job = summary.get("batch_size")
    smaller = {
        size: counts.get("compared", 0)
        for size, counts in (summary.get("by_batch_size") or {}).items()
        if size_key(size)[0] == 0 and isinstance(job, int) and int(size) < job
    }
    if not smaller:
        return ""
    sizes = ", ".join(sorted(smaller, key=size_key))
    padded = options.get("pad_batches")
    return (
        f'<p class="note">Batches of {escape(sizes)} are smaller than the job\'s batch size '
        f"{escape(job)}: the job's last batch holds what is left, and a batch that lost a bad "
        "file holds the rest of it. "
        + (
            "They were padded to the full size, so every call had one shape."
            if padded
            else "Without <code>--pad_batches</code> they run at their own shape, which can "
            "round differently; <code>--pad_batches</code> pads them to the full size."
        )
        + "</p>"
    )


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
    fig = plots.reconciliation_histogram(series, sizes, upper, summary.get("atol"))
    # Curves that coincide are drawn one over the other: the plot alone would hide it.
    same: dict[tuple, list[str]] = {}
    for size in sizes:
        if sum(series[size][1:]):
            same.setdefault(tuple(series[size][1:]), []).append(size)
    notes = "".join(
        f'<p class="note">The curves of {escape(" and ".join(group))} are identical: one is '
        "drawn over the other.</p>"
        for group in same.values()
        if len(group) > 1
    )
    panels = len(fig.axes)
    alt = "identical counts and non-zero differences" if panels > 1 else "non-zero differences"
    return "<h2>Distribution of differences</h2>" + png_img(fig, alt) + notes


def _series_key(name: str) -> tuple:
    """ "sweep · batch 8" before "sweep · batch 32": batch sizes in numeric order."""
    reference, _, size = name.rpartition(" · batch ")
    return (reference, int(size)) if size.isdigit() else (name, 0)


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
        row(
            [
                escape(name),
                escape(meaning[name]),
                count_text(p.get("probes")),
                count_text(p.get("beyond_tolerance")),
                count_text(p.get("top1_changed")),
                count_text(p.get("bitwise")),
                diff_text(p.get("max"), not p.get("probes")),
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
    return "<h2>Probes</h2>" + table(headers, rows, left=2) + note


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
        worst_section(summary, labels),
        sweep_section(summary),
        _probes(summary),
        divergence_section(summary),
    ]
    body = "\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Reconciliation {verdict}</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
