"""SampleForReconciliation: which elements reconciliation rescores alone, decided once.

An element is in the sample when the stable hash of its key falls under
``max(fraction, min(1, minimum / (matched - skipped)))`` (``transforms.core.records``), with
``matched`` and ``skipped`` counted inside the job and read here as side inputs. The sample
keeps its encoded bytes (the serving and Pillow references decode them, the report shows the
worst as thumbnails); every other element drops them here.

Why here, just before scoring, and not after it: the step must see the encoded bytes, which
every element holds only until this step. Deciding after scoring would keep every element's
bytes alive through the batch buffer and the model call (or ship them between stages on a
runner that does not fuse) to rescore 1% of them. Decided here, the cost plan stays the
design's: only sampled elements leave scoring holding their tensor and bytes, and the
rescoring step right after it, in the same worker, reads them.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from transforms.core import records


class _MarkSampleDoFn(beam.DoFn):
    def __init__(self, fraction: float, minimum: int):
        self._fraction = fraction
        self._minimum = minimum

    def process(self, element: records.Preprocessed, matched=None, skipped=0):
        share = records.sample_share(self._fraction, self._minimum, matched, skipped)
        if records.is_sampled(element.key, share):
            yield dataclasses.replace(element, sampled=True)
        else:
            yield dataclasses.replace(element, raw=None, sampled=False)


@beam.typehints.with_input_types(records.Preprocessed)
@beam.typehints.with_output_types(records.Preprocessed)
class SampleForReconciliation(beam.PTransform):
    """Marks the reconciliation sample among Preprocessed elements; the rest lose their bytes.

    Args:
      fraction, minimum: ``--reconcile_fraction`` and ``--reconcile_min``; ``fraction`` 0
        samples nothing.
      matched: optional singleton PCollection of the job's matched count (a side input);
        without it the share is ``fraction``.
      skipped: optional singleton PCollection of the inputs ``--skip_existing`` left out
        (a side input); without it none were.

    Returns:
      The same Preprocessed elements, ``sampled`` set, ``raw`` kept only where it is.
    """

    def __init__(self, fraction: float, minimum: int, matched=None, skipped=None):
        super().__init__()
        self._dofn = _MarkSampleDoFn(fraction, minimum)
        self._counts = {"matched": matched, "skipped": skipped}

    def expand(self, images):
        side = {k: beam.pvalue.AsSingleton(v) for k, v in self._counts.items() if v is not None}
        return images | "MarkSample" >> beam.ParDo(self._dofn, **side)
