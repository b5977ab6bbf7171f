"""The summary.json record of a run comparison, from the merged accumulator of
``transforms.core.run_diff``: counts, coverage, top-1 flips, |diff| quantiles, drift of the
top-1 class distribution, exact upper bounds on rates from a sample, and the verdict and the
evidence for it in words. Pure Python and numpy (no Beam), tested without a pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transforms.core.bounds import CONFIDENCE, clopper_pearson_upper, finite_or_none
from transforms.core.run_changes import (
    MODEL_CHANGE,
    NO_CHANGE,
    NO_COMMON_KEYS,
    NON_FINITE_SCORES,
    NONDETERMINISM,
    NUMERIC,
    PREPROCESSING_CHANGE,
    UNKNOWN,
    likely_cause,
)
from transforms.core.run_diff import (
    AMBIGUOUS,
    BASIS_SCORES,
    BASIS_TOP_K,
    COMPARED_STATUSES,
    MISMATCH,
    NON_FINITE,
    ONLY_BASELINE,
    ONLY_CANDIDATE,
    STATUSES,
)
from transforms.core.tolerance import IDENTICAL, LogHistogram

# Population stability index of the top-1 class distribution at or above which we call it
# drift: the customary rule of thumb (< 0.1 no significant shift, 0.1-0.25 moderate, > 0.25 large).
PSI_THRESHOLD = 0.1
FLIPS_KEPT = 10


def drift(baseline: dict, candidate: dict) -> dict[str, float | None]:
    """PSI and Jensen-Shannon divergence (base 2, in [0, 1]) of two class-count tables.

    PSI needs every share positive: empty classes get a share of 1e-4 (the usual smoothing).
    """
    classes = sorted(baseline.keys() | candidate.keys())
    nb, nc = sum(baseline.values()), sum(candidate.values())
    if not classes or not nb or not nc:
        return {"psi": None, "js_divergence": None}
    p = np.array([baseline.get(k, 0) / nb for k in classes])
    q = np.array([candidate.get(k, 0) / nc for k in classes])
    ps, qs = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    psi = float(np.sum((qs - ps) * np.log(qs / ps)))
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return {"psi": psi, "js_divergence": (kl(p) + kl(q)) / 2}


def _batch_shape_evidence(acc: dict) -> str | None:
    """Plain words on whether differing keys follow the batch shape (size, position)."""
    same = [0, 0]
    other = [0, 0]
    for (b, c), (compared, differ) in acc["by_batch_shape"].items():
        target = same if b == c else other
        target[0] += compared
        target[1] += differ
    if not same[1] + other[1]:
        return None
    parts = []
    if same[0]:
        parts.append(
            f"{same[1]:,} of {same[0]:,} keys scored at the same batch size in both differ"
        )
    if other[0]:
        parts.append(f"{other[1]:,} of {other[0]:,} keys scored at different batch sizes differ")
    positions = acc["by_position"]
    differing = sorted(p for p, (_, d) in positions.items() if d and p is not None)
    clean = [p for p, (n, d) in positions.items() if n and not d]
    if differing and clean and len(differing) <= 4:
        parts.append(
            "differences sit only at candidate batch positions "
            + ", ".join(str(p) for p in differing)
        )
    return "; ".join(parts)


def _verdict(compared: int, bad: int, cause: str, ambiguous: int = 0) -> tuple[str, str]:
    unknown = (
        f"{ambiguous:,} keys hold duplicate records with different scores in one run, "
        "and were not compared"
    )
    if not compared:
        if ambiguous:
            return "inconclusive", unknown
        return "inconclusive", "the runs have no keys in common: nothing was compared"
    if not bad and ambiguous:
        return "inconclusive", f"every compared key agrees within tolerance, but {unknown}"
    if not bad:
        return "pass", "every compared key agrees within tolerance"
    if cause in (MODEL_CHANGE, PREPROCESSING_CHANGE):
        return (
            "changed",
            f"{bad:,} keys differ beyond tolerance, as expected from a {cause.replace('_', ' ')}",
        )
    return "fail", f"{bad:,} keys differ beyond tolerance without a model or preprocessing change"


def _evidence(
    cause: str,
    changes: list[dict],
    flips: int,
    bad: int,
    differ: int,
    shape: str | None,
    same_non_finite: int = 0,
) -> list[str]:
    lines = []
    if same_non_finite:
        lines.append(
            f"{same_non_finite:,} keys have NaN or Inf scores in both runs at the same classes: "
            "the runs agree on them, but the model gives them no finite score"
        )
    listed = ", ".join(c["what"] for c in changes[:8]) + (" ..." if len(changes) > 8 else "")
    if cause == NO_COMMON_KEYS:
        lines.append(
            "no key is in both runs: did they score the same inputs, named the same way "
            "(keys are the input URIs, or the shard records' keys)?"
        )
    elif cause == MODEL_CHANGE:
        lines.append("the model digest differs: differences are expected; report, not failure")
    elif cause == PREPROCESSING_CHANGE:
        names = [c["what"] for c in changes if c["kind"] == "preprocessing"]
        lines.append("the preprocessing spec differs (" + ", ".join(names) + ")")
    elif cause == NUMERIC:
        lines.append(
            f"same model and preprocessing; only {listed} changed: expect ulp-level differences"
        )
        if flips or bad:
            lines.append(
                f"finding: {flips:,} top-1 flips and {bad:,} keys beyond tolerance under a "
                "numeric-only change"
            )
    elif cause == UNKNOWN:
        lines.append("a run.json is missing: what changed between the runs is unknown")
    elif cause == NONDETERMINISM:
        lines.append(
            f"nothing recorded in run.json differs, yet {differ:,} keys are not bitwise equal "
            f"({bad:,} beyond tolerance): the job is not deterministic"
        )
    if shape and cause in (NUMERIC, NONDETERMINISM):
        lines.append(shape)
    return lines


def summarize(
    acc: dict,
    atol: float,
    rtol: float,
    sample_fraction: float,
    changes: list[dict],
    runs_known: bool = True,
) -> dict[str, Any]:
    """The summary.json record of a run comparison from a merged accumulator."""
    counts = acc["counts"]
    compared = sum(counts[s] for s in COMPARED_STATUSES)
    same_non_finite = acc["non_finite_same"]
    bad = counts[MISMATCH] + counts[NON_FINITE] - same_non_finite
    differ = compared - counts[IDENTICAL] - same_non_finite
    flips = sum(acc["flips"].values())
    observed_max = acc["max_abs_diff"]
    quantiles = {
        f"p{int(q * 100)}": finite_or_none(LogHistogram.quantile(acc["hist"], q, observed_max))
        for q in (0.5, 0.9, 0.99)
    }
    quantiles["max"] = finite_or_none(observed_max) if compared else None
    labels = acc["labels"]
    top_flips = sorted(acc["flips"].items(), key=lambda item: (-item[1], item[0]))[:FLIPS_KEPT]
    basis = acc["basis"]
    if basis[BASIS_TOP_K] and basis[BASIS_SCORES]:
        basis_name = "mixed"
    else:
        basis_name = BASIS_TOP_K if basis[BASIS_TOP_K] else BASIS_SCORES
    basis_note = {
        BASIS_SCORES: "full score vectors compared",
        BASIS_TOP_K: "compared on the top-k classes both runs kept (no full score vectors: "
        "run with --write_scores or --output_format tfrecord for a full comparison)",
        "mixed": f"{basis[BASIS_TOP_K]:,} keys compared on top-k only (one side lacks scores)",
    }[basis_name]
    # A bound from a sample; none where nothing was compared (no sample to speak for).
    bounded = sample_fraction < 1.0 and compared > 0
    shares = drift(acc["top1_baseline"], acc["top1_candidate"])
    psi = shares["psi"]
    in_common = compared or counts[AMBIGUOUS]
    cause = likely_cause(changes, differ, runs_known) if in_common else NO_COMMON_KEYS
    if cause == NO_CHANGE and same_non_finite:
        cause = NON_FINITE_SCORES
    verdict, reason = _verdict(compared, bad, cause, counts[AMBIGUOUS])
    shape = _batch_shape_evidence(acc)

    def table(counts: dict) -> dict[str, int]:
        return {labels.get(i, str(i)): n for i, n in sorted(counts.items(), key=lambda x: -x[1])}

    return {
        "verdict": verdict,
        "verdict_reason": reason,
        "cause": cause,
        "evidence": _evidence(cause, changes, flips, bad, differ, shape, same_non_finite),
        "changes": changes,
        "coverage": {
            "baseline": compared + counts[ONLY_BASELINE],
            "candidate": compared + counts[ONLY_CANDIDATE],
            "both": compared,
            ONLY_BASELINE: counts[ONLY_BASELINE],
            ONLY_CANDIDATE: counts[ONLY_CANDIDATE],
        },
        "compared": compared,
        **{status: counts[status] for status in STATUSES},
        "duplicate_keys": acc["duplicate_keys"],
        "non_finite_same": same_non_finite,
        "ambiguous_keys": acc["ambiguous_keys"],
        "basis": basis_name,
        "basis_note": basis_note,
        "top1_flips": flips,
        "top1_agreement": (compared - flips) / compared if compared else None,
        "flips": [
            {
                "from": b,
                "to": c,
                "from_label": labels.get(b, str(b)),
                "to_label": labels.get(c, str(c)),
                "count": n,
            }
            for (b, c), n in top_flips
        ],
        "max_abs_diff": finite_or_none(observed_max) if compared else None,
        "abs_diff_quantiles": quantiles,
        "abs_diff_histogram": {
            "bin_upper_edges": [LogHistogram.upper_edge(i) for i in range(LogHistogram.NUM_BINS)],
            "counts": acc["hist"],
        },
        "drift": {
            "metric": "psi",
            "psi": psi,
            "js_divergence": shares["js_divergence"],
            "threshold": PSI_THRESHOLD,
            "drifted": psi is not None and psi >= PSI_THRESHOLD,
            "top1_baseline": table(acc["top1_baseline"]),
            "top1_candidate": table(acc["top1_candidate"]),
        },
        "atol": atol,
        "rtol": rtol,
        "sample_fraction": sample_fraction,
        "confidence": CONFIDENCE,
        "mismatch_rate": bad / compared if compared else None,
        "top1_flip_rate": flips / compared if compared else None,
        # Exact bounds on the share of ALL common keys, when only a sample was compared.
        "mismatch_rate_upper": clopper_pearson_upper(bad, compared) if bounded else None,
        "top1_flip_rate_upper": clopper_pearson_upper(flips, compared) if bounded else None,
        "by_batch_shape": {
            f"{b}->{c}": {"compared": n, "differ": d}
            for (b, c), (n, d) in sorted(acc["by_batch_shape"].items(), key=str)
        },
        "by_position": {
            str(p): {"compared": n, "differ": d}
            for p, (n, d) in sorted(acc["by_position"].items(), key=lambda x: (x[0] is None, x[0]))
        },
        "batch_shape_evidence": shape,
        "worst": [
            e[1]
            for e in sorted(acc["worst"], key=lambda e: e[0], reverse=True)
            if e[1]["status"] != IDENTICAL
        ],
    }
