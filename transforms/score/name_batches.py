"""BatchNames: the names to read, regrouped so that every bundle holds whole scoring batches.

Scoring batches (RunInference's BatchElements) are exact only within a bundle, and each bundle's
last batch is short; a runner cuts bundles where it likes (Prism splits a stage into concurrent
bundles, Flink ends one every second). Reading, decoding and scoring are fused after this step,
and a runner never splits one element, so the names arrive as runs of exactly ``batch_size``
names, one element each: cut from the sorted names of a shard, only a shard's last run is
shorter. A bundle of whole runs then scores whole batches, so a job's short batches are its
shards' last runs (one shard up to 65,536 names) and the batches a dead letter shortened,
whatever the runner's bundles. Only names are shuffled, never image bytes.
"""

from __future__ import annotations

import zlib

import apache_beam as beam

NAMES_PER_SHARD = 1 << 16


def _key_by_shard(name: bytes, matched: int) -> tuple[int, bytes]:
    shards = max(1, -(-matched // NAMES_PER_SHARD))
    return zlib.crc32(name) % shards, name


def _cut_runs(shard_names: tuple[int, list[bytes]], batch_size: int):
    shard, names = shard_names
    ordered = sorted(names)
    for start in range(0, len(ordered), batch_size):
        yield (shard, start), ordered[start : start + batch_size]


def _names_of(keyed_runs):
    _, runs = keyed_runs
    for run in runs:
        yield from run


# The names' own coder stays FastPrimitivesCoder's: no output hint (``bytes`` would change it).
@beam.typehints.with_input_types(bytes)
class BatchNames(beam.PTransform):
    """Names (bytes) -> the same names, delivered in runs of ``batch_size`` that no bundle
    boundary cuts (the module docstring says why).

    Args:
      batch_size: the scoring batch size.
      matched: singleton PCollection of the number of names (sizes the shards).
    """

    def __init__(self, batch_size: int, matched):
        super().__init__()
        self._batch_size = batch_size
        self._matched = matched

    def expand(self, names):
        return (
            names
            | "KeyByShard" >> beam.Map(_key_by_shard, beam.pvalue.AsSingleton(self._matched))
            | "GroupShards" >> beam.GroupByKey()
            | "CutRuns" >> beam.FlatMap(_cut_runs, self._batch_size)
            # A run is one element from here on: the runner spreads runs, never splits one.
            | "SpreadRuns" >> beam.GroupByKey()
            | "TakeNames" >> beam.FlatMap(_names_of)
        )
