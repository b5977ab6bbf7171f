"""The reconciliation report's worst elements: the comparisons that differ most, grouped by
image, each image's thumbnail (from the sampled bytes) shown once beside its numbers.
"""

from __future__ import annotations

from typing import Any

from transforms.report.html_kit import diff_text, escape, table


def _label(index: Any, labels: list[str] | None) -> str:
    if not isinstance(index, int):
        return "—"
    if labels and 0 <= index < len(labels):
        return f"{escape(labels[index])} <code>{index}</code>"
    return escape(index)


def worst_section(summary: dict, labels: list[str] | None) -> str:
    """The section's HTML (``labels`` name top-1 indices), or "" when nothing was compared."""
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
            f'<img src="{escape(thumb)}" alt="thumbnail">'
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
    return "<h2>Worst elements</h2>" + table(headers, rows, left=4)


def _breakable_path(uri: str) -> str:
    """An escaped path that wraps only after a ``/`` (never inside a name)."""
    return "/<wbr>".join(escape(part) for part in uri.split("/"))


def _worst_row(w: dict, labels, image: str, uri: str, span: int) -> str:
    """One comparison of the worst list. The first of its image's group (``span`` > 0 rows)
    carries the thumbnail and the uri, spanning the group; the others start at the reference."""
    source = "sweep" if w.get("sweep") else w.get("reference", "—")
    cells = [
        f'<td class="l">{escape(source)}</td>',
        f'<td class="l">{escape(w.get("status", "—"))}</td>',
        *(
            f"<td>{value}</td>"
            for value in (
                escape(w.get("batch_size", "—")),
                escape(w.get("position", "—")),
                diff_text(w.get("max_abs_diff")),
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
