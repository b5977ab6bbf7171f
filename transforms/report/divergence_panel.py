"""The report's divergence section: each probed reference's |diff| by depth, layer by layer.

One panel per ``summary.json`` ``divergence`` entry (``plots.divergence_plot``): every layer's
``tolerance_ratio`` (max |a - b| / (atol + rtol * |b|) over the element's row) against its depth
on a log scale, the tolerance as the line at 1, and the first divergent layer marked and named.
Exact zeros (rows bitwise equal) are drawn on the bottom edge.
"""

from __future__ import annotations

from transforms.report import plots
from transforms.report.html_kit import FAIL_COLOR, PASS_COLOR, diff_text, escape, png_img


def _caption(entry: dict) -> str:
    first = entry.get("first_divergent_layer")
    key = escape(entry.get("key"))
    if first is None:
        words = "no layer jumps beyond tolerance"
    else:
        where = (
            "the model input" if first["depth"] == 0 else f"<code>{escape(first['name'])}</code>"
        )
        words = (
            f"first divergent layer: {where} ({escape(first['op'])}), depth "
            f"{first['depth']}, max |diff| {diff_text(first['max_abs_diff'])} (its inputs "
            f"{diff_text(first['inputs_max_abs_diff'])})"
        )
    color = FAIL_COLOR if first is not None else PASS_COLOR
    return f'<p class="meta">{key}: <span style="color:{color}">{words}</span></p>'


def divergence_section(summary: dict) -> str:
    """The section's HTML, or "" when the summary has no profile."""
    entries = summary.get("divergence") or []
    panels = [
        png_img(plots.divergence_plot(entry)) + _caption(entry)
        for entry in entries
        if entry.get("layers")
    ]
    if not panels:
        return ""
    intro = (
        '<p class="meta">Each layer\'s row of one element, in its batch and in its reference, '
        "as a multiple of the tolerance (above the dashed line: beyond it). The first "
        "divergent layer is the first to cross it while multiplying its inputs' difference "
        "at least tenfold; layers after it inherit the difference.</p>"
    )
    return "<h2>Where batch and reference part ways</h2>" + intro + "".join(panels)
