"""The reports' HTML kit: the page CSS, escaping, number wording, tables and embedded PNGs.

Every page (``reconciliation_page``, ``comparison_page``, ``divergence_panel``) builds from
these, so the two reports share one visual language. Cells take already-escaped text: escape
user or model data with ``escape`` first. Nothing here imports matplotlib (``png_img`` takes any
figure with ``savefig``).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable
from typing import Any

from transforms.core import wording

PASS_COLOR, FAIL_COLOR = "#1a7f37", "#cf222e"
# Plots are drawn at this resolution and shown 1:1, so their text stays crisp.
DPI = 125

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


def escape(value: Any) -> str:
    """Escaped text of any value: uris, causes and evidence are user or model data."""
    return html.escape(str(value), quote=True)


def is_finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (not a bool, None or a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def diff_text(value: Any, empty: bool = False) -> str:
    """A |diff|: None means non-finite in a summary, unless nothing was compared at all."""
    if empty:
        return "—"
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "non-finite"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def count_text(value: Any) -> str:
    """A count with thousands separators; anything but an int is unknown (—)."""
    return f"{value:,}" if isinstance(value, int) else "—"


def rate_text(value: Any) -> str:
    """A throughput (images/s) to one decimal."""
    return f"{value:,.1f}" if is_finite(value) else "—"


def percent_cell(value: Any, bound: bool = False) -> str:
    """A share (0..1) as a percentage in the summaries' one wording (``core.wording.percent``):
    an upper bound (``bound``) rounds up, any other share to nearest; "—" when not a number."""
    return wording.percent(value, upper_bound=bound) if is_finite(value) else "—"


def size_key(size: Any) -> tuple[int, Any]:
    """Batch-size keys are strings after JSON; sort them as numbers where they are."""
    try:
        return (0, int(size))
    except (TypeError, ValueError):
        return (1, str(size))


def png_img(fig, alt: str = "plot") -> str:
    """A matplotlib figure as an <img> with a base64 data URI (no metadata: it would carry a
    URL)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def table(headers: Iterable[str], rows: Iterable[str], left: int = 1) -> str:
    """A table; the first ``left`` columns are text (left-aligned), the rest numbers."""
    cells = "".join(
        f'<th class="l">{escape(h)}</th>' if i < left else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    # A table wider than the page scrolls inside its box instead of widening the page.
    return f'<div class="wide">{body}</div>'


def row(cells: Iterable[str], left: int = 1, bad: bool = False, first: str = "l") -> str:
    """One row of already-escaped cell texts; ``first`` is the first cell's CSS class."""
    classes = [first] + ["l"] * (left - 1)
    tds = "".join(
        f'<td class="{classes[i]}">{c}</td>' if i < left else f"<td>{c}</td>"
        for i, c in enumerate(cells)
    )
    return f'<tr class="bad">{tds}</tr>' if bad else f"<tr>{tds}</tr>"
