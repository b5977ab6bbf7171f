"""Comparing two runs' predictions key by key: the per-key maths of ``pipeline.compare``.

No Beam: one key's two prediction records -> an element record; element records -> a mergeable
accumulator. ``transforms.core.run_diff_summary`` turns the merged accumulator into the
summary, ``transforms.core.run_changes`` says what changed between the two ``run.json`` records.
Tested without a pipeline.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np

from transforms.core.tolerance import (
    IDENTICAL,
    MISMATCH,
    WITHIN_TOLERANCE,
    LogHistogram,
)

# The reconciliation statuses plus the two coverage statuses of a run comparison.
NON_FINITE = "non_finite"
ONLY_BASELINE = "only_baseline"
ONLY_CANDIDATE = "only_candidate"
# A key one run holds several records of, with different scores: which is the run's is unknown,
# so it is not compared (never one duplicate silently picked).
AMBIGUOUS = "ambiguous"
COMPARED_STATUSES = (IDENTICAL, WITHIN_TOLERANCE, MISMATCH, NON_FINITE)
STATUSES = (*COMPARED_STATUSES, ONLY_BASELINE, ONLY_CANDIDATE, AMBIGUOUS)

# What the comparison of one key was based on.
BASIS_SCORES = "scores"  # full score vectors from both runs
BASIS_TOP_K = "top_k"  # only the labels and scores both runs kept in their top-k

WORST_KEPT = 20
AMBIGUOUS_KEPT = 20


def _scores(record: dict) -> np.ndarray | None:
    scores = record.get("scores")
    if scores is None or isinstance(scores, np.ndarray):
        return scores
    return np.array([np.nan if v is None else v for v in scores], dtype=np.float32)


def pack(record: dict) -> tuple:
    """What a comparison needs of a prediction record, as a tuple of primitives (the scores as
    float32 bytes): a tenth of the record's size to shuffle and to hold in a join."""
    scores = record.get("scores")
    if scores is not None and not isinstance(scores, np.ndarray):
        scores = np.array(
            [np.nan if v is None else v for v in scores] if None in scores else scores,
            dtype=np.float32,
        )
    return (
        record.get("uri", record["key"]),
        None if scores is None else scores.tobytes(),
        tuple((e["index"], e["label"], e["score"]) for e in record["top_k"]),
        record.get("batch_size"),
        record.get("position"),
        record.get("batch_id"),
        bool(record.get("non_finite", False)),
    )


def unpack(key: str, packed: tuple) -> dict:
    """The record ``pack`` was given (scores as a float32 array, NaN where it was null)."""
    uri, scores, top, batch_size, position, batch_id, non_finite = packed
    record = {
        "key": key,
        "uri": uri,
        "top_k": [{"index": i, "label": label, "score": score} for i, label, score in top],
        "batch_size": batch_size,
        "position": position,
        "batch_id": batch_id,
    }
    if scores is not None:
        record["scores"] = np.frombuffer(scores, dtype=np.float32)
    if non_finite:
        record["non_finite"] = True
    return record


def _values(packed: tuple) -> tuple:
    """What a packed record says about its key (scores, top-k, non-finite), not where or in
    which batch it was scored: duplicates that agree on it are one prediction."""
    return packed[1], packed[2], packed[6]


def compare_key(
    key: str,
    baseline: list[tuple],
    candidate: list[tuple],
    atol: float,
    rtol: float,
    top_k_only: bool = False,
) -> dict[str, Any]:
    """The element record of one key from every packed record each run holds of it.

    Duplicates of a key in one run that agree on the scores are one prediction (compared once,
    counted in ``duplicates``); duplicates that disagree make the key ``ambiguous``: it is not
    compared, whichever order the records came in.
    """
    disagreeing = {
        side: len(records)
        for side, records in (("baseline", baseline), ("candidate", candidate))
        if len({_values(r) for r in records}) > 1
    }
    if disagreeing:
        uri = (baseline or candidate)[0][0]
        sides = " and ".join(f"the {side} holds {n} records" for side, n in disagreeing.items())
        return {
            "key": key,
            "uri": uri,
            "status": AMBIGUOUS,
            "baseline_records": len(baseline),
            "candidate_records": len(candidate),
            "note": f"{sides} of this key with different scores; not compared",
        }
    record = compare_records(
        key,
        unpack(key, baseline[0]) if baseline else None,
        unpack(key, candidate[0]) if candidate else None,
        atol,
        rtol,
        top_k_only,
    )
    duplicates = max(len(baseline) - 1, 0) + max(len(candidate) - 1, 0)
    if duplicates:
        record["duplicates"] = duplicates
    return record


def _non_finite(record: dict, scores: np.ndarray | None) -> bool:
    return bool(record.get("non_finite")) or (
        scores is not None and not bool(np.all(np.isfinite(scores)))
    )


def _same_non_finite(b_scores: np.ndarray | None, c_scores: np.ndarray | None) -> bool:
    """Whether two non-finite predictions are the same value: NaN and Inf at the same classes
    and every other score equal (without both score vectors: both runs found them non-finite)."""
    if b_scores is None or c_scores is None:
        return True
    return b_scores.shape == c_scores.shape and np.array_equal(b_scores, c_scores, equal_nan=True)


def _top1(record: dict, scores: np.ndarray | None) -> tuple[int | None, str | None]:
    top = record.get("top_k") or []
    if top:
        return int(top[0]["index"]), str(top[0]["label"])
    if scores is not None and scores.size and np.all(np.isfinite(scores)):
        index = int(np.argmax(scores))
        return index, str(index)
    return None, None


def _compare_vectors(
    baseline: np.ndarray, candidate: np.ndarray, top1_match: bool, atol: float, rtol: float
) -> dict[str, Any]:
    """``transforms.core.tolerance.compare_scores``' rule (numpy's allclose on every class, with the
    baseline as reference, plus the same top-1), with the top-1 already known: a key costs a
    few vector operations, which matters at millions of keys."""
    reference = baseline.astype(np.float64)
    diff = np.abs(candidate.astype(np.float64) - reference)
    max_abs = float(diff.max()) if diff.size else 0.0
    if not math.isfinite(max_abs):
        return {"max_abs_diff": None, "max_rel_diff": None, "status": NON_FINITE}
    if baseline.tobytes() == candidate.tobytes():
        return {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "status": IDENTICAL}
    magnitude = np.abs(reference)
    rel = diff / np.maximum(magnitude, np.finfo(np.float32).tiny)
    close = top1_match and bool(np.all(diff <= atol + rtol * magnitude))
    return {
        "max_abs_diff": max_abs,
        "max_rel_diff": float(rel.max()),
        "status": WITHIN_TOLERANCE if close else MISMATCH,
    }


def _compare_top_k(baseline: dict, candidate: dict, atol: float, rtol: float) -> dict[str, Any]:
    """Compares the classes both runs kept in their top-k (the scores of the others are unknown)."""
    b = {int(e["index"]): float(e["score"]) for e in baseline["top_k"]}
    c = {int(e["index"]): float(e["score"]) for e in candidate["top_k"]}
    common = [i for i in b if i in c]
    top1_match = baseline["top_k"][0]["index"] == candidate["top_k"][0]["index"]
    record: dict[str, Any] = {"top_k_common": len(common)}
    if not common:
        return record | {"max_abs_diff": None, "max_rel_diff": None, "status": MISMATCH}
    ref = np.array([b[i] for i in common], dtype=np.float64)
    diff = np.abs(np.array([c[i] for i in common], dtype=np.float64) - ref)
    rel = diff / np.maximum(np.abs(ref), np.finfo(np.float32).tiny)
    # Runs may keep different k: the same ranking over the shorter list is the same ranking.
    shorter = min(len(baseline["top_k"]), len(candidate["top_k"]))
    b_order = [e["index"] for e in baseline["top_k"][:shorter]]
    same_order = b_order == [e["index"] for e in candidate["top_k"][:shorter]]
    if same_order and not diff.any():
        status = IDENTICAL
    elif top1_match and bool(np.all(diff <= atol + rtol * np.abs(ref))):
        status = WITHIN_TOLERANCE
    else:
        status = MISMATCH
    return record | {
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(rel.max()),
        "status": status,
    }


def _provenance(prefix: str, record: dict) -> dict[str, Any]:
    return {f"{prefix}_{name}": record.get(name) for name in ("batch_size", "position", "batch_id")}


def compare_records(
    key: str,
    baseline: dict | None,
    candidate: dict | None,
    atol: float,
    rtol: float,
    top_k_only: bool = False,
) -> dict[str, Any]:
    """The element record of one key.

    Full score vectors are compared when both records carry them (and ``top_k_only`` is off);
    otherwise the scores of the classes both top-k lists hold. The baseline is the reference of
    the tolerance rule (|candidate - baseline| <= atol + rtol * |baseline|, same top-1). Either
    side non-finite is ``non_finite``, never identical.
    """
    if baseline is None or candidate is None:
        present = baseline or candidate
        status = ONLY_CANDIDATE if baseline is None else ONLY_BASELINE
        top1, label = _top1(present, _scores(present))
        side = "candidate" if baseline is None else "baseline"
        return {
            "key": key,
            "uri": present.get("uri", key),
            "status": status,
            f"top1_{side}": top1,
            f"top1_label_{side}": label,
            **_provenance(side, present),
        }
    b_scores, c_scores = _scores(baseline), _scores(candidate)
    b_top1, b_label = _top1(baseline, b_scores)
    c_top1, c_label = _top1(candidate, c_scores)
    record: dict[str, Any] = {
        "key": key,
        "uri": candidate.get("uri", key),
        "top1_baseline": b_top1,
        "top1_candidate": c_top1,
        "top1_label_baseline": b_label,
        "top1_label_candidate": c_label,
        "top1_match": b_top1 is not None and b_top1 == c_top1,
        **_provenance("baseline", baseline),
        **_provenance("candidate", candidate),
    }
    use_scores = not top_k_only and b_scores is not None and c_scores is not None
    record["basis"] = BASIS_SCORES if use_scores else BASIS_TOP_K
    non_finite = {"max_abs_diff": None, "max_rel_diff": None, "status": NON_FINITE}
    if (
        _non_finite(baseline, b_scores)
        and _non_finite(candidate, c_scores)
        and _same_non_finite(b_scores, c_scores)
    ):
        # NaN where the other run has NaN is the same prediction: counted non_finite, not a
        # difference between the runs.
        return record | non_finite | {"same_non_finite": True}
    if baseline.get("non_finite") or candidate.get("non_finite"):
        return record | non_finite
    if use_scores and b_scores.shape != c_scores.shape:
        return record | {
            "max_abs_diff": None,
            "max_rel_diff": None,
            "status": MISMATCH,
            "note": f"class counts differ: {b_scores.size} vs {c_scores.size}",
        }
    if use_scores:
        compared = _compare_vectors(b_scores, c_scores, record["top1_match"], atol, rtol)
    elif not baseline.get("top_k") or not candidate.get("top_k"):
        return record | non_finite  # an empty top-k: the job found the scores non-finite
    else:
        compared = _compare_top_k(baseline, candidate, atol, rtol)
    return record | compared


# --- the mergeable accumulator ----------------------------------------------------------------


def empty_accumulator() -> dict[str, Any]:
    return {
        "counts": dict.fromkeys(STATUSES, 0),
        "basis": {BASIS_SCORES: 0, BASIS_TOP_K: 0},
        "flips": {},  # (baseline top-1, candidate top-1) -> count
        "labels": {},  # class index -> label seen in the records
        "top1_baseline": {},  # class index -> count, over compared keys
        "top1_candidate": {},
        "max_abs_diff": 0.0,
        "hist": LogHistogram.empty(),
        # Provenance: does a difference follow the batch shape?
        "by_batch_shape": {},  # (baseline batch size, candidate batch size) -> [compared, differ]
        "by_position": {},  # candidate position -> [compared, differ]
        "worst": [],  # heap of (rank, element record)
        "duplicate_keys": 0,  # extra records of a key in one run that agree with the first
        "non_finite_same": 0,  # non-finite keys whose scores are the same in both runs
        "ambiguous_keys": [],  # the first AMBIGUOUS_KEPT ambiguous keys, sorted
    }


def _rank(record: dict) -> tuple:
    diff = record.get("max_abs_diff")
    severity = 0 if record["status"] in (IDENTICAL, WITHIN_TOLERANCE) else 1
    return (severity, float("inf") if diff is None else diff, record["key"])


def _bump(table: dict, key, index: int) -> None:
    pair = table.setdefault(key, [0, 0])
    pair[index] += 1


def add_element(acc: dict, record: dict) -> dict:
    """Adds one element record (any status) to the accumulator."""
    status = record["status"]
    acc["counts"][status] += 1
    acc["duplicate_keys"] += record.get("duplicates", 0)
    if status == AMBIGUOUS:
        acc["ambiguous_keys"] = sorted([*acc["ambiguous_keys"], record["key"]])[:AMBIGUOUS_KEPT]
    if status in (ONLY_BASELINE, ONLY_CANDIDATE, AMBIGUOUS):
        return acc
    same = bool(record.get("same_non_finite"))
    acc["non_finite_same"] += same
    acc["basis"][record["basis"]] += 1
    b, c = record["top1_baseline"], record["top1_candidate"]
    for index, label in ((b, record["top1_label_baseline"]), (c, record["top1_label_candidate"])):
        if index is not None:
            acc["labels"].setdefault(index, label)
    if b is not None:
        acc["top1_baseline"][b] = acc["top1_baseline"].get(b, 0) + 1
    if c is not None:
        acc["top1_candidate"][c] = acc["top1_candidate"].get(c, 0) + 1
    if b is not None and c is not None and b != c:
        acc["flips"][(b, c)] = acc["flips"].get((b, c), 0) + 1
    diff = record["max_abs_diff"]
    diff = float("inf") if diff is None else diff
    if not same:  # the same NaN in both runs is no difference
        acc["max_abs_diff"] = max(acc["max_abs_diff"], diff)
        LogHistogram.add(acc["hist"], diff)
    differ = int(status != IDENTICAL and not same)
    shape = (record["baseline_batch_size"], record["candidate_batch_size"])
    _bump(acc["by_batch_shape"], shape, 0)
    acc["by_batch_shape"][shape][1] += differ
    _bump(acc["by_position"], record["candidate_position"], 0)
    acc["by_position"][record["candidate_position"]][1] += differ
    entry = (_rank(record), record)
    if len(acc["worst"]) < WORST_KEPT:
        heapq.heappush(acc["worst"], entry)
    elif entry[0] > acc["worst"][0][0]:
        heapq.heapreplace(acc["worst"], entry)
    return acc


def _merge_counts(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def _merge_pairs(a: dict, b: dict) -> dict:
    return {
        k: [x + y for x, y in zip(a.get(k, [0, 0]), b.get(k, [0, 0]), strict=True)]
        for k in a.keys() | b.keys()
    }


def merge_accumulators(accumulators) -> dict:
    merged = empty_accumulator()
    for acc in accumulators:
        for name in ("counts", "basis", "flips", "top1_baseline", "top1_candidate"):
            merged[name] = _merge_counts(merged[name], acc[name])
        merged["labels"] = acc["labels"] | merged["labels"]
        merged["max_abs_diff"] = max(merged["max_abs_diff"], acc["max_abs_diff"])
        merged["duplicate_keys"] += acc["duplicate_keys"]
        merged["non_finite_same"] += acc["non_finite_same"]
        merged["ambiguous_keys"] = sorted(merged["ambiguous_keys"] + acc["ambiguous_keys"])[
            :AMBIGUOUS_KEPT
        ]
        merged["hist"] = LogHistogram.merge(merged["hist"], acc["hist"])
        for name in ("by_batch_shape", "by_position"):
            merged[name] = _merge_pairs(merged[name], acc[name])
        merged["worst"] = heapq.nlargest(
            WORST_KEPT, merged["worst"] + acc["worst"], key=lambda e: e[0]
        )
        heapq.heapify(merged["worst"])
    return merged
