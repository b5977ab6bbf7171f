"""The reports' plots: each function draws one ``matplotlib.figure.Figure`` from summary data.

``Figure`` directly: no pyplot global state and no interactive backend, so drawing is safe in
threads and without a display. The pages embed the figures with ``html_kit.png_img``.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

from transforms.report.html_kit import FAIL_COLOR, PASS_COLOR, is_finite

# Stable colours per series, shared by the histogram panels (tab10 without red/green, which
# already mean fail/pass on the pages).
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
# 7.5 in at html_kit.DPI (125) is ~940 px: the page width, shown 1:1 so text stays crisp.
FIGSIZE = (7.5, 3.0)
ZERO_FLOOR = 1e-9  # where a bitwise-equal layer sits on the divergence panel's log axis
NON_FINITE = 1e12  # where a null (non-finite) ratio is drawn: far above any tolerance


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
    if is_finite(atol) and atol > 0:
        ax.set_xlim(atol / 1e3, atol * 1e3)


def _log_diff_axis(ax) -> None:
    ax.set_xscale("log")
    # Plain "1e-7" labels: the default ones are mathtext, whose parser is most of the render time.
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{value:.0e}".replace("e-0", "e-"))
    )
    ax.xaxis.set_minor_formatter(NullFormatter())


def _bin_edges(upper_edges: list[float]) -> list[float]:
    """Lower and upper edges of bins 1..n (bin 0 is exact zeros), for ``Axes.stairs``."""
    ratio = upper_edges[2] / upper_edges[1] if len(upper_edges) > 2 else 10**0.25
    return [upper_edges[1] / ratio, *upper_edges[1:]]


def _bin_index(upper: list[float], value: float) -> int:
    """Index of the histogram bin holding value (bins are (previous edge, upper edge])."""
    for index in range(1, len(upper)):
        if value <= upper[index]:
            return index
    return len(upper) - 1


def reconciliation_histogram(
    series: dict[str, list[int]], sizes: list[str], upper: list[float], atol
) -> Figure:
    """The |diff| histogram of each series (a reference and batch size, in ``sizes`` order):
    a bar panel of bitwise-identical counts, where any, beside the log-scale curves of
    non-zero differences over the bins of upper edges ``upper``."""
    colors = {size: SERIES_COLORS[i % len(SERIES_COLORS)] for i, size in enumerate(sizes)}
    fig = Figure(figsize=FIGSIZE)
    zero_counts = [series[size][0] for size in sizes]
    if not any(zero_counts):
        # No comparison was bitwise identical: an empty panel would only take room.
        _curves(fig.subplots(1, 1), series, sizes, colors, upper, atol)
        return fig
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
    _curves(ax, series, sizes, colors, upper, atol)
    return fig


def _curves(ax, series, sizes, colors, upper, atol) -> None:
    """The log-scale panel of non-zero differences, one curve per series."""
    edges = _bin_edges(upper)
    nonzero = [i for size in sizes for i, c in enumerate(series[size]) if i > 0 and c]
    _log_diff_axis(ax)
    if nonzero:
        # Show only the occupied decades (plus atol), not all fifteen of them.
        low, high = min(nonzero), max(nonzero)
        if is_finite(atol) and atol > 0:
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
    if is_finite(atol) and atol > 0:
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


def sweep_plot(points: list[tuple[int, float, int]]) -> Figure:
    """Throughput per swept batch size, from (batch size, images/s, mismatches) points; a size
    with mismatches is a red cross labelled with their number."""
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
    return fig


def comparison_histogram(counts: list[int], upper: list[float], atol) -> Figure:
    """A run comparison's |diff| histogram: identical keys as a bar, the rest as a log-scale
    curve over the bins of upper edges ``upper`` (at least three)."""
    fig = Figure(figsize=FIGSIZE)
    zeros_ax, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 5.5], "wspace": 0.25})
    bars = zeros_ax.bar([0], [counts[0]], color=SERIES_COLORS[0])
    zeros_ax.bar_label(bars, fontsize=8)
    zeros_ax.set_xticks([])
    zeros_ax.set_title("identical\n(|diff| = 0)", fontsize=9)
    zeros_ax.set_ylim(0, max(counts[0], 1) * 1.25)
    zeros_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    zeros_ax.tick_params(labelsize=8)
    ratio = upper[2] / upper[1]
    edges = [upper[1] / ratio, *upper[1:]]
    nonzero = [i for i, c in enumerate(counts) if i and c]
    _log_diff_axis(ax)
    if nonzero:
        low, high = min(nonzero), max(nonzero)
        if is_finite(atol) and atol > 0:
            position = next((i for i, u in enumerate(upper) if u >= atol), len(upper) - 1)
            low, high = min(low, position), max(high, position)
        low, high = max(1, low - 2), min(len(upper) - 1, high + 2)
        ax.stairs(
            counts[low : high + 1], edges[low - 1 : high + 1], color=SERIES_COLORS[0], linewidth=1.8
        )
        ax.set_xlim(edges[low - 1], edges[high])
    else:
        mark_no_differences(ax, atol)
    if is_finite(atol) and atol > 0:
        ax.axvline(atol, color=FAIL_COLOR, linestyle="--", linewidth=1.2, label=f"atol {atol:g}")
        ax.legend(fontsize=8, loc="best", framealpha=0.9, edgecolor="#d0d7de")
    ax.set_xlabel("|candidate − baseline|  (max over compared classes, log scale)", fontsize=9)
    ax.set_ylabel("keys", fontsize=9)
    ax.set_title("Non-zero differences", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", axis="x", color="#eaeef2")
    return fig


def drift_plot(classes: list, baseline: list[float], candidate: list[float]) -> Figure:
    """Side-by-side bars of each class's share of top-1 in the baseline and the candidate."""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.subplots()
    x = range(len(classes))
    ax.bar([i - 0.2 for i in x], baseline, 0.4, label="baseline", color=SERIES_COLORS[0])
    ax.bar([i + 0.2 for i in x], candidate, 0.4, label="candidate", color=SERIES_COLORS[1])
    ax.set_xticks(
        list(x), [str(k)[:14] for k in classes], fontsize=8, rotation=45 if len(classes) > 6 else 0
    )
    ax.set_ylabel("share of keys", fontsize=9)
    ax.set_title("Top-1 class distribution", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(True, axis="y", color="#eaeef2")
    ax.legend(fontsize=8, frameon=False)
    return fig


def _ratio(layer: dict) -> float:
    value = layer.get("tolerance_ratio")
    return NON_FINITE if value is None else max(value, ZERO_FLOOR)


def divergence_plot(entry: dict) -> Figure:
    """One ``divergence`` entry's layers: each one's tolerance ratio against its depth on a log
    scale, the tolerance as the line at 1, the first divergent layer marked and named."""
    layers = entry["layers"]
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
    return fig
