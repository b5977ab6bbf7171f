"""The run comparison summary as one self-contained HTML page, in the reconciliation report's
visual language (``html_kit``'s CSS and tables, ``plots``' figures).

``render_compare_report(summary)`` takes the dict of
``transforms.core.run_diff_summary.summarize`` and
returns one HTML string: verdict banner, cause and evidence, changes table, coverage and counts,
the top-1 flip matrix, the |diff| histogram, the drift of the top-1 class distribution and the
worst elements. Inline CSS and base64 PNG plots only: no scripts, no external URLs.
"""

from __future__ import annotations

from transforms.report import plots
from transforms.report.html_kit import (
    CSS,
    count_text,
    diff_text,
    escape,
    is_finite,
    percent_cell,
    png_img,
    row,
    table,
)

# "changed" (expected differences of a model or preprocessing change) is neither red nor green.
EXTRA_CSS = ".changed{background:#9a6700}td.hot{background:#ffebe9;font-weight:600}"
BANNERS = {
    "pass": ("PASS", "pass"),
    "fail": ("FAIL", "fail"),
    "changed": ("CHANGED", "changed"),
    "inconclusive": ("INCONCLUSIVE", "empty"),
}
CAUSE_LABELS = {
    "model_change": "Model change",
    "preprocessing_change": "Preprocessing change",
    "numeric": "Numeric (engine, hardware or batch shape)",
    "nondeterminism": "Nondeterminism",
    "none": "Nothing changed",
    "unknown": "Unknown (a run.json is missing)",
}
FLIP_CLASSES = 10


def _header(summary: dict) -> str:
    return (
        "<h1>Run comparison report</h1>"
        f'<div class="meta">baseline <code>{escape(summary.get("baseline", "—"))}</code> '
        f"({escape(summary.get('baseline_format', '—'))}) · candidate "
        f"<code>{escape(summary.get('candidate', '—'))}</code> "
        f"({escape(summary.get('candidate_format', '—'))})</div>"
        f'<div class="meta">atol {escape(summary.get("atol"))} · '
        f"rtol {escape(summary.get('rtol'))} · "
        f"{escape(summary.get('basis_note', ''))}"
        + (
            f" · a sample of {escape(summary.get('sample_fraction'))} of the keys"
            if (summary.get("sample_fraction") or 1.0) < 1.0
            else ""
        )
        + "</div>"
    )


def _banner(summary: dict) -> str:
    verdict, css = BANNERS.get(summary.get("verdict"), ("—", "empty"))
    compared = summary.get("compared") or 0
    sentence = escape(summary.get("verdict_reason", "")).capitalize()
    if compared:
        agree = (summary.get("identical") or 0) + (summary.get("within_tolerance") or 0)
        sentence += (
            f": {agree:,} of {compared:,} common keys agree "
            f"({summary.get('identical', 0):,} bitwise identical), "
            f"{summary.get('top1_flips', 0):,} top-1 flips, max |diff| "
            f"{diff_text(summary.get('max_abs_diff'))}."
        )
    return (
        f'<div class="banner {css}"><div class="verdict">{verdict}</div>'
        f'<div class="sentence">{sentence}</div></div>'
    )


def _cause(summary: dict) -> str:
    cause = str(summary.get("cause", ""))
    css = "cause-fail" if summary.get("verdict") == "fail" else "cause-note"
    evidence = "".join(f"<div>{escape(line)}</div>" for line in summary.get("evidence") or [])
    return (
        '<h2>Likely cause</h2><ul class="diagnosis">'
        f'<li class="{css}"><span class="cause">{escape(CAUSE_LABELS.get(cause, cause))}</span> '
        f"<code>{escape(cause)}</code>{evidence}</li></ul>"
    )


def _value(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return "—" if value is None else str(value)


def _changes(summary: dict) -> str:
    changes = summary.get("changes") or []
    if not changes:
        return "<h2>What changed</h2><p>Nothing recorded in the two run.json files differs.</p>"
    rows = [
        row(
            [
                escape(c["what"]),
                escape(c["kind"]),
                escape(_value(c["baseline"])),
                escape(_value(c["candidate"])),
            ],
            left=4,
        )
        for c in changes
    ]
    note = "From each run's run.json (the launching machine's environment)."
    if any(c["what"] == "environment.cpu_flags" for c in changes):
        note += " CPU flags: the numeric-kernel flags only that run's CPU has."
    return (
        "<h2>What changed</h2>"
        + table(("what", "kind", "baseline", "candidate"), rows, left=4)
        + f'<p class="note">{escape(note)}</p>'
    )


def _counts(summary: dict) -> str:
    coverage = summary.get("coverage") or {}
    quantiles = summary.get("abs_diff_quantiles") or {}
    empty = not summary.get("compared")
    keys = ("baseline", "candidate", "both", "only_baseline", "only_candidate")
    coverage_table = table(
        [name.replace("_", " ") for name in keys],
        [row([count_text(coverage.get(name)) for name in keys], left=0, first="")],
        left=0,
    )
    headers = (
        "identical",
        "within tolerance",
        "mismatch",
        "non-finite",
        "top-1 agreement",
        "p50",
        "p90",
        "p99",
        "max |diff|",
    )
    cells = [
        *(count_text(summary.get(name)) for name in ("identical", "within_tolerance", "mismatch")),
        count_text(summary.get("non_finite")),
        "—" if empty else percent_cell(summary.get("top1_agreement")),
        *(diff_text(quantiles.get(q), empty) for q in ("p50", "p90", "p99")),
        diff_text(summary.get("max_abs_diff"), empty),
    ]
    bad = bool(summary.get("mismatch") or summary.get("non_finite"))
    counts_table = table(headers, [row(cells, left=0, bad=bad, first="")], left=0)
    notes = [
        "Per key, |diff| is the largest absolute difference over the compared classes; "
        "quantiles come from log-spaced bins (within a factor 1.8)."
    ]
    if summary.get("mismatch_rate_upper") is not None:
        mismatch_bound = percent_cell(summary["mismatch_rate_upper"], bound=True)
        flip_bound = percent_cell(summary.get("top1_flip_rate_upper"), bound=True)
        notes.append(
            f"From this sample, with {escape(summary.get('confidence'))} confidence, at most "
            f"{mismatch_bound} of all common keys are beyond tolerance and at most "
            f"{flip_bound} flip top-1 (exact binomial)."
        )
    if summary.get("batch_shape_evidence"):
        notes.append("Batch shape: " + escape(summary["batch_shape_evidence"]) + ".")
    if summary.get("duplicate_keys"):
        notes.append(
            f"{summary['duplicate_keys']:,} duplicate records of a key that agree with each "
            "other: compared once."
        )
    if summary.get("ambiguous"):
        listed = ", ".join(escape(key) for key in summary.get("ambiguous_keys") or [])
        notes.append(
            f"{summary['ambiguous']:,} ambiguous keys (one run holds records of the key with "
            f"different scores), not compared: {listed}"
            + (" ..." if summary["ambiguous"] > len(summary.get("ambiguous_keys") or []) else "")
        )
    return (
        "<h2>Keys in each run</h2>"
        + coverage_table
        + "<h2>Common keys compared</h2>"
        + counts_table
        + "".join(f'<p class="note">{n}</p>' for n in notes)
    )


def _flip_matrix(summary: dict) -> str:
    flips = summary.get("flips") or []
    if not flips:
        return ""
    # The classes involved in the most frequent flips, as rows (baseline) and columns (candidate).
    labels: dict[int, str] = {}
    for f in flips:
        labels.setdefault(f["from"], f["from_label"])
        labels.setdefault(f["to"], f["to_label"])
    classes = sorted(labels)[:FLIP_CLASSES]
    counts = {(f["from"], f["to"]): f["count"] for f in flips}
    rows = []
    for b in classes:
        cells = [escape(labels[b])]
        for c in classes:
            n = counts.get((b, c))
            cells.append(f"{n:,}" if n else "·")
        rows.append(row(cells))
    headers = ("baseline ↓ / candidate →", *(labels[c] for c in classes))
    flips_table = table(headers, rows)
    shown = sum(counts.values())
    note = (
        f'<p class="note">{summary.get("top1_flips", 0):,} keys changed their top-1 class; the '
        f"{len(flips)} most frequent from → to pairs ({shown:,} keys) are shown.</p>"
    )
    return "<h2>Top-1 flips</h2>" + flips_table + note


def _histogram(summary: dict) -> str:
    histogram = summary.get("abs_diff_histogram") or {}
    upper, counts = histogram.get("bin_upper_edges") or [], histogram.get("counts") or []
    if len(upper) < 3 or not sum(counts):
        return ""
    fig = plots.comparison_histogram(counts, upper, summary.get("atol"))
    return "<h2>Distribution of differences</h2>" + png_img(fig)


def _drift(summary: dict) -> str:
    drift = summary.get("drift") or {}
    baseline, candidate = drift.get("top1_baseline") or {}, drift.get("top1_candidate") or {}
    if not baseline and not candidate:
        return ""
    nb, nc = sum(baseline.values()) or 1, sum(candidate.values()) or 1
    # Ties in share keep the classes' name order (a set's order changes from run to run).
    classes = sorted(
        sorted(baseline.keys() | candidate.keys()),
        key=lambda k: -(baseline.get(k, 0) / nb + candidate.get(k, 0) / nc),
    )[:15]
    fig = plots.drift_plot(
        classes,
        [baseline.get(k, 0) / nb for k in classes],
        [candidate.get(k, 0) / nc for k in classes],
    )
    psi, js = drift.get("psi"), drift.get("js_divergence")
    words = (
        f"PSI {psi:.3g} (drift at ≥ {drift.get('threshold')}: "
        f"{'yes' if drift.get('drifted') else 'no'}), Jensen-Shannon divergence {js:.3g} bits."
        if is_finite(psi) and is_finite(js)
        else "No drift measure: a side has no compared keys."
    )
    return f'<h2>Drift of the top-1 class</h2>{png_img(fig)}<p class="note">{escape(words)}</p>'


def _worst(summary: dict) -> str:
    worst = summary.get("worst") or []
    if not worst:
        return ""
    rows = [
        row(
            [
                escape(w.get("uri", w.get("key", ""))),
                escape(w.get("status")),
                diff_text(w.get("max_abs_diff")),
                escape(w.get("top1_label_baseline", "—")),
                escape(w.get("top1_label_candidate", "—")),
                escape(f"{w.get('baseline_batch_size')}/{w.get('baseline_position')}"),
                escape(f"{w.get('candidate_batch_size')}/{w.get('candidate_position')}"),
            ],
            left=2,
            bad=w.get("status") in ("mismatch", "non_finite"),
            first="l uri",
        )
        for w in worst
    ]
    headers = (
        "uri",
        "status",
        "max |diff|",
        "top-1 baseline",
        "top-1 candidate",
        "baseline batch/pos",
        "candidate batch/pos",
    )
    return "<h2>Worst elements</h2>" + table(headers, rows, left=2)


def render_compare_report(summary: dict) -> str:
    """The run comparison summary as one self-contained HTML page.

    Args:
      summary: the dict ``transforms.core.run_diff_summary.summarize`` returns (or summary.json
        loaded).

    Returns:
      A complete HTML document; every string from the data is HTML-escaped.
    """
    summary = summary or {}
    sections = [
        _header(summary),
        _banner(summary),
        _cause(summary),
        _changes(summary),
        _counts(summary),
        _flip_matrix(summary),
        _histogram(summary),
        _drift(summary),
        _worst(summary),
    ]
    body = "\n".join(section for section in sections if section)
    verdict = BANNERS.get(summary.get("verdict"), ("—", ""))[0]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Run comparison {verdict}</title><style>{CSS}{EXTRA_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
