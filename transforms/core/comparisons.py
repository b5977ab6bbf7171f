"""The typed records reconciliation passes between its steps: element comparisons (from the
single-element reference, the serving reference and the sweep), probe results and sweep timings.

A neutral module (no Beam, no TensorFlow): the stages that make these records and the summary
that reads them all import it, and none imports another stage.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

SINGLE = "single"
SERVING = "serving"
PILLOW = "pillow"  # --decode_reference pillow: the sample decoded by Pillow, EXIF applied


@dataclasses.dataclass
class ElementComparison:
    """One element's batched scores against one reference (the element record of the contract).

    ``batch_scores`` (the batched score vector, to tell a constant-output model) and
    ``thumbnail`` (a small data URI for the report) travel to the summary, not to the records.
    """

    uri: str
    batch_size: int
    position: int
    reference: str
    status: str
    top1_batch: int | None
    top1_reference: int | None
    top1_match: bool
    bitwise_equal: bool
    max_abs_diff: float | None
    max_rel_diff: float | None
    sweep: bool = False
    serving_error: str | None = None
    error: str | None = None  # why the reference failed (status reference_error)
    input_max_abs_diff: float | None = None
    batch_preprocessing: str | None = None
    serving_preprocessing: str | None = None
    exif_orientation: int | None = None  # the image's EXIF orientation (pillow reference)
    key: str | None = None  # the record key; None: the URI (an image file's key)
    batch_scores: np.ndarray | None = dataclasses.field(default=None, repr=False)
    thumbnail: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def of(
        cls, uri: str, batch_size: int, position: int, reference: str, comparison: dict, **extra
    ) -> ElementComparison:
        """From ``transforms.core.tolerance.compare_scores``'s dict and the element's provenance."""
        return cls(
            uri=uri,
            batch_size=batch_size,
            position=position,
            reference=reference,
            **comparison,
            **extra,
        )

    def to_record(self) -> dict[str, Any]:
        """The JSON record of ``reconciliation/elements``."""
        record = {
            "key": self.uri if self.key is None else self.key,
            "uri": self.uri,
            "batch_size": self.batch_size,
            "position": self.position,
            "reference": self.reference,
            "status": self.status,
            "top1_batch": self.top1_batch,
            "top1_reference": self.top1_reference,
            "top1_match": self.top1_match,
            "bitwise_equal": self.bitwise_equal,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
        }
        if self.sweep:
            record["sweep"] = True
        if self.error is not None:
            record["error"] = self.error
        if self.reference == SERVING:
            record["input_max_abs_diff"] = self.input_max_abs_diff
            if self.serving_error is not None:
                record["serving_error"] = self.serving_error
        if self.reference == PILLOW:
            record["input_max_abs_diff"] = self.input_max_abs_diff
            record["exif_orientation"] = self.exif_orientation
        return record


@dataclasses.dataclass(frozen=True)
class ProbeDiff:
    """One probe: the same image scored two ways (see ``transforms.core.diagnosis``)."""

    max_abs_diff: float | None
    beyond_tolerance: bool
    top1_changed: bool
    bitwise_equal: bool
    non_finite: bool = False
    batch_size: int | None = None


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """The probes run on one element, by name (``repeat``, ``neighbours``, ``shape``)."""

    probes: dict[str, ProbeDiff]


@dataclasses.dataclass(frozen=True)
class SweepTiming:
    """Model seconds spent scoring ``images`` sampled elements at a swept batch size."""

    batch_size: int
    images: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class LayerDiff:
    """One layer's row of an element, scored two ways (see ``transforms.core.layer_probe``)."""

    name: str
    op: str
    depth: int
    max_abs_diff: float
    max_rel_diff: float
    tolerance_ratio: float
    inputs_max_abs_diff: float

    def to_record(self, first: bool = False) -> dict[str, Any]:
        """The summary's layer entry; the first divergent layer also names its op and inputs."""
        record = {
            "name": self.name,
            "depth": self.depth,
            "max_abs_diff": _finite(self.max_abs_diff),
            "max_rel_diff": _finite(self.max_rel_diff),
            "tolerance_ratio": _finite(self.tolerance_ratio),
        }
        if first:
            record = {"name": self.name, "op": self.op, **record}
            record["inputs_max_abs_diff"] = _finite(self.inputs_max_abs_diff)
        return record


def _finite(value: float) -> float | None:
    """JSON has no Inf: a difference against a non-finite value is written as null."""
    return value if np.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """Where one element's batched and reference scores part ways, layer by layer.

    ``failed``: the element's comparison with this reference failed (a clean profile is of
    an element that agreed). ``agreed_before``: the largest |diff| of every layer before the
    first divergent one.
    """

    reference: str
    key: str
    first_divergent_layer: LayerDiff | None
    layers: tuple[LayerDiff, ...]
    agreed_before: float | None = None
    failed: bool = True
    method: str = "all_layers"
    seconds: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The summary's ``divergence`` entry."""
        first = self.first_divergent_layer
        return {
            "reference": self.reference,
            "key": self.key,
            "failed": self.failed,
            "method": self.method,
            "first_divergent_layer": None if first is None else first.to_record(first=True),
            "agreed_before": None if self.agreed_before is None else _finite(self.agreed_before),
            "layers": [layer.to_record() for layer in self.layers],
        }
