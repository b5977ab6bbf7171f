"""Which sampled elements the diagnosis probes, chosen from the data, never from bundles.

The probes (``transforms.core.diagnosis``) and the layer profile
(``transforms.core.layer_probe``) each run on one element of a kind, the one whose key comes
first (``probe_order``: the keys in order, which is also the order a files run reads them in):
the same element on every runner, however it cuts its bundles or retries them, and the same as
long as it stays in the sample. The kinds:

- ``first``: the first compared element (single reference): the repeat probe, so a clean job
  pays one batch-of-1 call for it;
- ``mismatch``: the first single-reference mismatch: all three probes and a layer profile;
- ``clean``: the first agreeing element: the noise profile of a job with no failure;
- ``serving_mismatch``: the first serving-reference mismatch: a profile against the serving
  path's model input.

The rescoring step offers an element only when it comes before every element of its kind that
its bundle offered so far (``FirstSoFar``): a bundle that meets its elements in key order (a
files run reads them so) offers one of each kind, one in random order about ``ln n`` of ``n``;
the global first of each kind is always among them. Merging
keeps the first of each kind (``keep_first``), whatever the order. Pure: no Beam, no TF.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FIRST = "first"
MISMATCH = "mismatch"
CLEAN = "clean"
SERVING_MISMATCH = "serving_mismatch"


def probe_order(key: str) -> str:
    """Where an element stands in line for a probe: its key, in order."""
    return key


@dataclasses.dataclass(frozen=True)
class ProbeCandidate:
    """A sampled element offered for a probe of ``kind``, with what the probes need.

    ``tensor`` is the preprocessed input, ``scores`` its row in its batch (of ``batch_size``
    real rows, at ``position``), ``reference`` its single reference's row (None when that was
    a padded regrouped call, which the probes redo), ``serving_input`` the serving path's
    model input (``serving_mismatch`` only).
    """

    kind: str
    key: str
    tensor: np.ndarray = dataclasses.field(repr=False)
    scores: np.ndarray = dataclasses.field(repr=False)
    batch_size: int
    position: int
    reference: np.ndarray | None = dataclasses.field(default=None, repr=False)
    serving_input: np.ndarray | None = dataclasses.field(default=None, repr=False)


def keep_first(chosen: dict[str, ProbeCandidate], candidate: ProbeCandidate) -> None:
    """Keeps in ``chosen`` (kind -> candidate) the candidate that comes first of its kind."""
    kept = chosen.get(candidate.kind)
    if kept is None or probe_order(candidate.key) < probe_order(kept.key):
        chosen[candidate.kind] = candidate


class FirstSoFar:
    """Per bundle: whether an element comes before every one of its kind offered so far."""

    def __init__(self):
        self._first: dict[str, str] = {}

    def offer(self, kind: str, key: str) -> bool:
        order = probe_order(key)
        if kind in self._first and self._first[kind] <= order:
            return False
        self._first[kind] = order
        return True
