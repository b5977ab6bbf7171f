"""Report thumbnails: a small PNG of an element's image, made only for the worst comparisons.

Shared by every step that makes comparisons (rescoring, the sweep, the serving reference),
each keeping a heap of its bundle's worst so far.
"""

from __future__ import annotations

import base64
import heapq
import io

from PIL import Image

from transforms.core import reconciliation_summary, tolerance
from transforms.core.comparisons import ElementComparison

THUMBNAIL_PIXELS = 96  # the longer side of a report thumbnail


def thumbnail(raw: bytes | None) -> str | None:
    """A small PNG data URI of an encoded image (bounded size), or None if it cannot be made."""
    if not raw:
        return None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.draft("RGB", (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))  # JPEG: decode small
            small = image.convert("RGB")
            small.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            small.save(buffer, "PNG", optimize=True)
    except Exception:  # noqa: BLE001 - a thumbnail is decoration; the comparison stands without
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def with_thumbnail(worst_ranks: list[tuple], c: ElementComparison, raw: bytes | None):
    """``c`` with a thumbnail of ``raw`` when it ranks among the bundle's worst so far (the
    heap ``worst_ranks``), so a bundle makes a handful of thumbnails, not one per comparison.

    The summary keeps the job's worst ``WORST_KEPT`` by the same ``rank`` and drops the rest,
    thumbnails with them. Each of the job's worst is among its bundle's worst so far when it
    comes (else ``WORST_KEPT`` worse ones came before it), so each has its thumbnail, and the
    thumbnails the summary keeps are the same however a runner cuts its bundles."""
    if c.status == tolerance.IDENTICAL:
        return c  # the report singles out no identical element
    entry = reconciliation_summary.rank(c)
    if len(worst_ranks) < reconciliation_summary.WORST_KEPT:
        heapq.heappush(worst_ranks, entry)
    elif entry > worst_ranks[0]:
        heapq.heapreplace(worst_ranks, entry)
    else:
        return c
    c.thumbnail = thumbnail(raw)
    return c
