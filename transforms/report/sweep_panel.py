"""The reconciliation report's batch-size sweep section: the sample rescored at each
``--sweep_batch_sizes`` size, as a recommendation, a table and a throughput plot.
"""

from __future__ import annotations

from transforms.report import plots
from transforms.report.html_kit import (
    count_text,
    diff_text,
    escape,
    is_finite,
    png_img,
    rate_text,
    row,
    size_key,
    table,
)


def _recommendation(summary: dict, sweep: dict) -> str:
    clean = [
        (entry["images_per_second"], size)
        for size, entry in sweep.items()
        if not entry.get("mismatch") and is_finite(entry.get("images_per_second"))
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
        f"Recommended batch size: {escape(size)}, the fastest swept size with zero mismatches "
        f"({rate_text(rate)} images/s"
    )
    job = str(summary.get("batch_size"))
    job_entry = sweep.get(job) or {}
    job_rate = job_entry.get("images_per_second")
    if job != str(size) and is_finite(job_rate) and job_rate > 0:
        if job_entry.get("mismatch"):
            text += (
                f"; the job's batch size {escape(job)} runs at {rate_text(job_rate)} images/s "
                f"but has {job_entry['mismatch']:,} mismatches"
            )
        else:
            text += f", {rate / job_rate:.2f}× the throughput at the job's batch size {escape(job)}"
    return f'<p class="rec">{text}).</p>'


def sweep_section(summary: dict) -> str:
    """The section's HTML, or "" when the job swept no batch size."""
    sweep = summary.get("sweep") or {}
    if not sweep:
        return ""
    sizes = sorted(sweep, key=size_key)
    rows = []
    for size in sizes:
        entry = sweep[size]
        empty = not entry.get("compared")
        rows.append(
            row(
                [
                    escape(size),
                    count_text(entry.get("images")),
                    f"{entry['seconds']:.3g}" if is_finite(entry.get("seconds")) else "—",
                    rate_text(entry.get("images_per_second")),
                    count_text(entry.get("compared")),
                    count_text(entry.get("identical")),
                    count_text(entry.get("within_tolerance")),
                    count_text(entry.get("mismatch")),
                    diff_text(entry.get("max_abs_diff"), empty),
                ],
                bad=bool(entry.get("mismatch")),
            )
        )
    sweep_table = table(
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
    points = [
        (size_key(size)[1], sweep[size]["images_per_second"], sweep[size].get("mismatch") or 0)
        for size in sizes
        if size_key(size)[0] == 0 and is_finite(sweep[size].get("images_per_second"))
    ]
    plot = png_img(plots.sweep_plot(points)) if points else ""
    note = (
        '<p class="note">Throughput is model-call time only, on the reconciliation sample '
        "rescored at each size (no reading or decoding); mismatches are against the same "
        "single-element reference.</p>"
    )
    return "<h2>Batch-size sweep</h2>" + _recommendation(summary, sweep) + sweep_table + plot + note
