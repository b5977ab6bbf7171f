"""Reconcile: rescore sampled elements alone, compare with their batched scores, summarise.

The plan, chosen for cost: the sampled elements (a stable hash of the key under the fraction)
leave the scoring step still holding their preprocessed tensor; the very next, fused step
rescores each alone with the same shared model on the same worker. Nothing is shuffled but the
small comparison records, and no element's score vectors outlive its own comparison. The
extra model work is about ``fraction`` x (cost of a batch-of-1 call / per-row cost in a batch).

With ``pad_batches`` the reference is the same padded shape among other neighbours at other
positions: sampled elements are regrouped half a batch at a time, in reverse order, with zeros
filling the rest. Even when every element is sampled, no element keeps its batch neighbours or
its position, and demanding bitwise identity costs about ``2 x fraction`` extra model work, not
``batch_size`` times more.
"""

from __future__ import annotations

import heapq
import json
import time
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from transforms import compare, diagnosis
from transforms.common import METRICS_NAMESPACE
from transforms.compare import LogHistogram
from transforms.model import ModelConfig
from transforms.records import Scored
from transforms.scoring import call_model

PROBES = "probes"
TIMINGS = "timings"
SINGLE = "single"
SERVING = "serving"
WORST_KEPT = 10


def element_record(
    uri: str,
    batch_size: int,
    position: int,
    reference: str,
    comparison: dict[str, Any],
    key: str | None = None,
) -> dict[str, Any]:
    """The reconciliation element record of the output contract (``key`` defaults to the uri,
    an image file's key)."""
    return {
        "key": uri if key is None else key,
        "uri": uri,
        "batch_size": batch_size,
        "position": position,
        "reference": reference,
        **comparison,
    }


class _RescoreDoFn(beam.DoFn):
    """Sampled Scored -> element records (main), probe records, sweep timing records."""

    def __init__(
        self,
        model_config: ModelConfig,
        batch_size: int,
        pad_batches: bool,
        sweep_sizes: tuple[int, ...],
        atol: float,
        rtol: float,
        probes_per_worker: int,
    ):
        self._config = model_config
        self._batch_size = batch_size
        self._pad = pad_batches
        self._sweep_sizes = sweep_sizes
        self._atol, self._rtol = atol, rtol
        self._probes_per_worker = probes_per_worker
        self._compared = Metrics.counter(METRICS_NAMESPACE, "reconciled")
        self._mismatches = Metrics.counter(METRICS_NAMESPACE, "reconcile_mismatches")

    def setup(self):
        self._model = self._config.load()
        self._repeat_probed = False
        self._batch_probes_left = self._probes_per_worker

    def start_bundle(self):
        self._pending: list[Scored] = []  # awaiting a padded reference call
        self._sweep: dict[int, list[tuple[Scored, np.ndarray]]] = {s: [] for s in self._sweep_sizes}
        self._timing = {s: [0, 0.0] for s in self._sweep_sizes}

    def _score(self, tensors: list[np.ndarray], pad_size: int | None) -> np.ndarray:
        return call_model(self._model, np.stack(tensors), pad_size)

    def process(self, scored: Scored):
        if self._pad:
            self._pending.append(scored)
            if len(self._pending) == max(1, self._batch_size // 2):
                yield from self._flush_pending()
        else:
            yield from self._compare(scored, self._score([scored.tensor], None)[0])

    def _flush_pending(self):
        pending, self._pending = self._pending[::-1], []
        if pending:
            references = self._score([s.tensor for s in pending], self._batch_size)
            for scored, reference in zip(pending, references, strict=True):
                yield from self._compare(scored, reference)

    def _compare(self, scored: Scored, reference: np.ndarray):
        comparison = compare.compare_scores(scored.scores, reference, self._atol, self._rtol)
        self._compared.inc()
        mismatch = comparison["status"] == compare.MISMATCH
        if mismatch:
            self._mismatches.inc()
        yield from self._probe(scored, reference, mismatch)
        yield element_record(
            scored.uri, scored.batch_size, scored.position, SINGLE, comparison, scored.key
        )
        for size, buffer in self._sweep.items():
            buffer.append((scored, reference))
            if len(buffer) == size:
                yield from self._flush_sweep(size)

    def _probe(self, scored: Scored, reference: np.ndarray, mismatch: bool):
        """The repeat probe on the first element; all probes on the first mismatches."""
        batch_probes = mismatch and self._batch_probes_left > 0
        if self._repeat_probed and not batch_probes:
            return
        self._repeat_probed = True
        self._batch_probes_left -= batch_probes
        # x's own batch is a call of batch_size rows among other images when it was full:
        # the probes reuse it rather than score x among made-up neighbours.
        own_batch = scored.scores if scored.batch_size == self._batch_size > 1 else None
        yield beam.pvalue.TaggedOutput(
            PROBES,
            diagnosis.run_probes(
                # In padded mode every call, probes included, has the padded shape.
                lambda batch: self._score(list(batch), self._batch_size if self._pad else None),
                scored.tensor,
                self._batch_size,
                self._atol,
                self._rtol,
                # Unpadded, the reference is x alone; padded, it is a regrouped padded call.
                alone=None if self._pad else reference,
                among_images=own_batch,
                batch_probes=batch_probes,
            ),
        )

    def _flush_sweep(self, size: int):
        buffer, self._sweep[size] = self._sweep[size], []
        if not buffer:
            return
        start = time.perf_counter()
        rows = self._score([s.tensor for s, _ in buffer], size if self._pad else None)
        self._timing[size][0] += len(buffer)
        self._timing[size][1] += time.perf_counter() - start
        for position, ((scored, reference), row) in enumerate(zip(buffer, rows, strict=True)):
            comparison = compare.compare_scores(row, reference, self._atol, self._rtol)
            yield element_record(scored.uri, size, position, SINGLE, comparison, scored.key) | {
                "sweep": True
            }

    def finish_bundle(self):
        outputs = list(self._flush_pending())
        for size in self._sweep_sizes:
            outputs.extend(self._flush_sweep(size))
        for record in outputs:
            yield GlobalWindows.windowed_value(record)
        for size, (images, seconds) in self._timing.items():
            if images:
                timing = {"sweep_batch_size": size, "images": images, "seconds": seconds}
                yield beam.pvalue.TaggedOutput(TIMINGS, GlobalWindows.windowed_value(timing))


def _rank(record: dict) -> tuple:
    """Orders element records worst first; unique per record, so heaps never compare dicts."""
    diff = record["max_abs_diff"]
    return (
        float("inf") if diff is None else diff,
        record["uri"],
        record["reference"],
        record["batch_size"],
        record.get("sweep", False),
    )


def _empty_group() -> dict[str, Any]:
    return {
        "compared": 0,
        "identical": 0,
        "within_tolerance": 0,
        "mismatch": 0,
        "top1_agree": 0,
        "max_abs_diff": 0.0,
        "hist": LogHistogram.empty(),
    }


def _add_to_group(group: dict, record: dict) -> None:
    group["compared"] += 1
    group[record["status"]] += 1
    group["top1_agree"] += int(record["top1_match"])
    diff = record["max_abs_diff"]
    diff = float("inf") if diff is None else diff
    group["max_abs_diff"] = max(group["max_abs_diff"], diff)
    LogHistogram.add(group["hist"], diff)


def _merge_groups(a: dict, b: dict) -> dict:
    merged = {k: a[k] + b[k] for k in ("compared", "identical", "within_tolerance", "mismatch")}
    merged["top1_agree"] = a["top1_agree"] + b["top1_agree"]
    merged["max_abs_diff"] = max(a["max_abs_diff"], b["max_abs_diff"])
    merged["hist"] = LogHistogram.merge(a["hist"], b["hist"])
    return merged


def _finite_or_none(value: float) -> float | None:
    return None if value == float("inf") else value


def group_summary(group: dict) -> dict[str, Any]:
    """Counts of one slice (a reference, a batch size) as the summary reports them."""
    observed_max = group["max_abs_diff"]
    quantiles = {
        f"p{int(q * 100)}": _finite_or_none(LogHistogram.quantile(group["hist"], q, observed_max))
        for q in (0.5, 0.9, 0.99)
    }
    quantiles["max"] = _finite_or_none(observed_max) if group["compared"] else None
    return {
        "compared": group["compared"],
        "identical": group["identical"],
        "within_tolerance": group["within_tolerance"],
        "mismatch": group["mismatch"],
        "top1_agreement": group["top1_agree"] / group["compared"] if group["compared"] else 1.0,
        "max_abs_diff": _finite_or_none(observed_max),
        "abs_diff_quantiles": quantiles,
        "abs_diff_histogram": group["hist"],
    }


class SummarizeReconciliation(beam.CombineFn):
    """Element, probe and timing records -> one summary dict (mergeable, no element lists).

    Args:
      atol, rtol, fraction: reported as given.
      batch_size: the job's batch size (labels the main comparisons).
    """

    def __init__(
        self,
        atol: float,
        rtol: float,
        fraction: float,
        batch_size: int,
    ):
        self._atol, self._rtol, self._fraction = atol, rtol, fraction
        self._batch_size = batch_size

    def create_accumulator(self):
        return {
            "groups": {},
            "probes": diagnosis.empty_probe_stats(),
            "timings": {},
            "worst": [],
            "preprocessing": None,
        }

    def add_input(self, acc, record):
        if "status" in record:
            key = (record["reference"], record["batch_size"], record.get("sweep", False))
            group = acc["groups"].setdefault(key, _empty_group())
            _add_to_group(group, record)
            if "serving_preprocessing" in record:
                acc["preprocessing"] = _merge_preprocessing(
                    acc["preprocessing"], _preprocessing_of(record)
                )
            entry = (_rank(record), record)
            if len(acc["worst"]) < WORST_KEPT:
                heapq.heappush(acc["worst"], entry)
            elif entry[0] > acc["worst"][0][0]:
                heapq.heapreplace(acc["worst"], entry)
        elif "sweep_batch_size" in record:
            images, seconds = acc["timings"].get(record["sweep_batch_size"], (0, 0.0))
            acc["timings"][record["sweep_batch_size"]] = (
                images + record["images"],
                seconds + record["seconds"],
            )
        else:
            diagnosis.add_probe(acc["probes"], record)
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            for key, group in acc["groups"].items():
                merged["groups"][key] = _merge_groups(
                    merged["groups"].get(key, _empty_group()), group
                )
            merged["probes"] = diagnosis.merge_probe_stats(merged["probes"], acc["probes"])
            for size, (images, seconds) in acc["timings"].items():
                old = merged["timings"].get(size, (0, 0.0))
                merged["timings"][size] = (old[0] + images, old[1] + seconds)
            merged["worst"] = heapq.nlargest(
                WORST_KEPT, merged["worst"] + acc["worst"], key=lambda e: e[0]
            )
            heapq.heapify(merged["worst"])
            merged["preprocessing"] = _merge_preprocessing(
                merged["preprocessing"], acc["preprocessing"]
            )
        return merged

    def extract_output(self, acc):
        return summarize(acc, self._atol, self._rtol, self._fraction, self._batch_size)


def _preprocessing_of(record: dict) -> dict:
    return {
        "batch": record["batch_preprocessing"],
        "serving": record["serving_preprocessing"],
        "input_max_abs_diff": record.get("input_max_abs_diff"),
    }


def _merge_preprocessing(a: dict | None, b: dict | None) -> dict | None:
    """Keeps the specs (one job, one pair) and the largest model-input difference seen."""
    if a is None or b is None:
        return a or b
    diffs = [d for d in (a["input_max_abs_diff"], b["input_max_abs_diff"]) if d is not None]
    return a | {"input_max_abs_diff": max(diffs) if diffs else None}


def preprocessing_evidence(preprocessing: dict | None) -> str | None:
    """Plain words for how the batch and serving preprocessing differ."""
    if preprocessing is None:
        return None
    batch = json.loads(preprocessing["batch"])
    serving = json.loads(preprocessing["serving"])
    differences = [
        f"{name}: batch {batch.get(name)!r} vs serving {serving.get(name)!r}"
        for name in sorted(set(batch) | set(serving))
        if batch.get(name) != serving.get(name)
    ]
    words = (
        "preprocessing specs differ (" + "; ".join(differences) + ")"
        if differences
        else "preprocessing specs are identical"
    )
    diff = preprocessing["input_max_abs_diff"]
    if diff is not None:
        words += f"; the model inputs differ by up to {diff:.3g}"
    return words


def _fold(groups) -> dict:
    total = _empty_group()
    for group in groups:
        total = _merge_groups(total, group)
    return total


def summarize(
    acc: dict,
    atol: float,
    rtol: float,
    fraction: float,
    batch_size: int,
) -> dict[str, Any]:
    """The summary.json record from a merged accumulator.

    The verdict, counts, ``by_batch_size`` and ``by_reference`` describe the job as it ran;
    ``sweep`` reports each swept batch size on its own, so exploring sizes the job does not use
    never fails it.
    """
    job = {key: g for key, g in acc["groups"].items() if not key[2]}
    swept = {key: g for key, g in acc["groups"].items() if key[2]}
    overall = group_summary(_fold(job.values()))
    by_reference = {
        ref: group_summary(_fold(g for (r, _, _), g in job.items() if r == ref))
        for ref in sorted({ref for ref, _, _ in job})
    }
    by_batch_size = {
        str(size): group_summary(_fold(g for (_, s, _), g in job.items() if s == size))
        for size in sorted({size for _, size, _ in job})
    }
    sweep, sweep_histograms = {}, {}
    for size, (images, seconds) in sorted(acc["timings"].items()):
        counts = group_summary(_fold(g for (_, s, _), g in swept.items() if s == size))
        sweep_histograms[f"{size} (sweep)"] = counts.pop("abs_diff_histogram")
        sweep[str(size)] = {
            "images": images,
            "seconds": seconds,
            "images_per_second": images / seconds if seconds > 0 else None,
            **counts,
        }
    overall_histogram = overall.pop("abs_diff_histogram")
    summary = {
        **overall,
        "atol": atol,
        "rtol": rtol,
        "fraction": fraction,
        "batch_size": batch_size,
        "verdict": "fail" if overall["mismatch"] else "pass",
        "by_batch_size": by_batch_size,
        "by_reference": by_reference,
        "sweep": sweep,
        "diagnosis": diagnosis.diagnose(
            acc["probes"], by_reference, preprocessing_evidence(acc["preprocessing"])
        ),
        "preprocessing": acc["preprocessing"],
        "probes": acc["probes"],
        "worst": [e[1] for e in sorted(acc["worst"], key=lambda e: e[0], reverse=True)],
        "abs_diff_histogram": {
            "bin_upper_edges": [LogHistogram.upper_edge(i) for i in range(LogHistogram.NUM_BINS)],
            "counts": overall_histogram,
        },
    }
    for slice_ in list(by_reference.values()):
        slice_.pop("abs_diff_histogram")
    summary["abs_diff_histogram"]["by_batch_size"] = {
        size: counts.pop("abs_diff_histogram") for size, counts in by_batch_size.items()
    } | sweep_histograms
    return summary


class Reconcile(beam.PTransform):
    """Rescores sampled Scored elements alone and summarises the differences.

    Args:
      model_config: the same model the job scores with (shared, loaded once per worker).
      batch_size, pad_batches: how the job scored, so the reference matches it.
      sweep_sizes: also score the sample at these batch sizes.
      atol, rtol: tolerance for ``within_tolerance``.
      fraction: the sampled share (reported in the summary).
      extra_elements: optional PCollection of element records from other references
        (the serving path), summarised alongside.
      probes_per_worker: mismatching elements per worker that get the batch-sized probes
        (each a batch-sized call); the first sampled element always gets the repeat probe
        (a batch-of-1 call). One finds each fault the probes know; a clean job runs none.

    Returns:
      {"elements": element records, "summary": a single summary dict}.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        batch_size: int,
        pad_batches: bool,
        sweep_sizes: tuple[int, ...],
        atol: float,
        rtol: float,
        fraction: float,
        extra_elements=None,
        probes_per_worker: int = 1,
    ):
        super().__init__()
        self._rescore = _RescoreDoFn(
            model_config, batch_size, pad_batches, sweep_sizes, atol, rtol, probes_per_worker
        )
        self._summarize = SummarizeReconciliation(atol, rtol, fraction, batch_size)
        self._extra = extra_elements

    def expand(self, scored):
        rescored = (
            scored
            | "KeepSampled" >> beam.Filter(lambda s: s.tensor is not None)
            | "RescoreAlone"
            >> beam.ParDo(self._rescore).with_outputs(PROBES, TIMINGS, main="elements")
        )
        elements = rescored.elements
        if self._extra is not None:
            elements = (elements, self._extra) | "MergeReferences" >> beam.Flatten()
        summary = (
            (elements, rescored[PROBES], rescored[TIMINGS])
            | "GatherRecords" >> beam.Flatten()
            | "Summarize" >> beam.CombineGlobally(self._summarize)
        )
        return {"elements": elements, "summary": summary}
