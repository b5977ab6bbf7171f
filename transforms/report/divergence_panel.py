"""The report's divergence section: each probed reference's |diff| by depth, layer by layer.

One panel per ``summary.json`` ``divergence`` entry: every layer's ``tolerance_ratio``
(max |a - b| / (atol + rtol * |b|) over the element's row) against its depth on a log scale, the
tolerance as the line at 1, and the first divergent layer marked and named. Exact zeros (rows
bitwise equal) are drawn on the bottom edge.
"""

from __future__ import annotations

import html

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from transforms.report.reconciliation_page import FAIL_COLOR, FIGSIZE, PASS_COLOR, _png

ZERO_FLOOR = 1e-9  # where a bitwise-equal layer sits on the log axis
NON_FINITE = 1e12  # where a null (non-finite) ratio is drawn: far above any tolerance


def _ratio(layer: dict) -> float:
    value = layer.get("tolerance_ratio")
    return NON_FINITE if value is None else max(value, ZERO_FLOOR)


def _number(value) -> str:
    return "non-finite" if value is None else f"{value:.3g}"


def _panel(entry: dict) -> str:
    layers = entry.get("layers") or []
    if not layers:
        return ""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    depths = [layer["depth"] for layer in layers]
    ratios = [_ratio(layer) for layer in layers]
    ax.plot(depths, ratios, color="#57606a", linewidth=1, marker="o", markersize=3, zorder=1)
    ax.axhline(1.0, color=FAIL_COLOR, linewidth=1, linestyle="--", label="tolerance")
    first = entry.get("first_divergent_layer")
    if first is not None:
        # On the divergent layer's own point (its output); the label names the op that jumped.
        own = [layer for layer in layers if layer["name"] == first["name"]]
        y = _ratio(own[0] if own else first)
        ax.scatter([first["depth"]], [y], color=FAIL_COLOR, s=70, marker="X", zorder=3)
        ax.annotate(
            f"{first['name']} ({first['op']})",
            (first["depth"], y),
            textcoords="offset points",
            xytext=(8, -12),
            fontsize=8,
            color=FAIL_COLOR,
        )
    ax.set_yscale("log")
    top = max(max(ratios), 10.0) * 5
    ticks = [ZERO_FLOOR] + [10.0**e for e in range(-6, 20, 3) if 10.0**e < top]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.set_ylim(ZERO_FLOOR / 3, max(max(ratios), 10.0) * 5)
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: "0 (equal)" if v <= ZERO_FLOOR * 1.01 else f"{v:.0e}")
    )
    ax.set_xlabel("depth (layers from the model input)", fontsize=9)
    ax.set_ylabel("max |diff| / (atol + rtol·|value|)", fontsize=8)
    kind = "failing element" if entry.get("failed") else "noise profile of a sampled element"
    ax.set_title(f"{entry['reference']} reference, {kind}", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(True, axis="y", color="#eaeef2")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _png(fig)


def _caption(entry: dict) -> str:
    first = entry.get("first_divergent_layer")
    key = html.escape(str(entry.get("key")))
    if first is None:
        words = "no layer jumps beyond tolerance"
    else:
        where = (
            "the model input"
            if first["depth"] == 0
            else f"<code>{html.escape(first['name'])}</code>"
        )
        words = (
            f"first divergent layer: {where} ({html.escape(first['op'])}), depth "
            f"{first['depth']}, max |diff| {_number(first['max_abs_diff'])} (its inputs "
            f"{_number(first['inputs_max_abs_diff'])})"
        )
    color = FAIL_COLOR if first is not None else PASS_COLOR
    return f'<p class="meta">{key}: <span style="color:{color}">{words}</span></p>'


def divergence_section(summary: dict) -> str:
    """The section's HTML, or "" when the summary has no profile."""
    entries = summary.get("divergence") or []
    panels = [_panel(entry) + _caption(entry) for entry in entries if entry.get("layers")]
    if not panels:
        return ""
    intro = (
        '<p class="meta">Each layer\'s row of one element, in its batch and in its reference, '
        "as a multiple of the tolerance (above the dashed line: beyond it). The first "
        "divergent layer is the first to cross it while multiplying its inputs' difference "
        "at least tenfold; layers after it inherit the difference.</p>"
    )
    return "<h2>Where batch and reference part ways</h2>" + intro + "".join(panels)
