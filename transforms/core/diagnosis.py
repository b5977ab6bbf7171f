"""Telling the causes of batch/single disagreement apart.

Probes run through the same model call as the job, once a job, on the elements first in key
order (``transforms.core.probe_choice``): the first compared element (repeat) and the first
mismatch (all three), where there is a disagreement to explain; a clean job pays one
batch-of-1 call for them:
- repeat: the same input scored twice alone. A difference means random state
  (active dropout, random ops): ``stochastic_layers``.
- neighbours: the same input at the job's batch size, once among zeros and once among other
  images. A difference beyond noise means the batch changes the element's result (BatchNorm
  in training mode, normalisation over the batch axis): ``batch_dependent_layers``.
- shape: the same input alone and at the job's batch size. A float-noise difference that the
  other probes do not explain is ``numeric_batch_shape`` (kernel choice, reduction order).
The serving reference adds ``preprocessing_mismatch`` (batch agrees with its own single
reference, not with the serving path), the Pillow decode reference ``decoder_skew`` (batch agrees
with its single reference, not with the same bytes decoded by Pillow). Pure functions: the model
is any batch -> scores callable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from transforms.core.comparisons import ProbeDiff, ProbeResult

STOCHASTIC = "stochastic_layers"
BATCH_DEPENDENT = "batch_dependent_layers"
NUMERIC = "numeric_batch_shape"
PREPROCESSING = "preprocessing_mismatch"
DECODER = "decoder_skew"
NON_FINITE = "non_finite_scores"
REFERENCE_FAILED = "reference_failed"
CONSTANT = "constant_output"
NONE = "none"

PROBE_NAMES = ("repeat", "neighbours", "shape")


def neighbours(x: np.ndarray, count: int) -> np.ndarray:
    """Deterministic, plausible neighbours made from x itself: flips, rolls and rescalings."""
    variants = [x[::-1], x[:, ::-1], np.roll(x, x.shape[0] // 3, axis=0), 0.5 * x, -x]
    if count <= 0:
        return np.zeros((0,) + x.shape, x.dtype)
    return np.stack([variants[i % len(variants)] for i in range(count)]).astype(x.dtype)


def _diff(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> ProbeDiff:
    """Two scorings of one image. Non-finite scores are their own finding: they say nothing
    about randomness or batch neighbours, so they are never "beyond tolerance" here."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
        return ProbeDiff(None, False, False, a.tobytes() == b.tobytes(), non_finite=True)
    diff = np.abs(a64 - b64)
    return ProbeDiff(
        max_abs_diff=float(diff.max()),
        beyond_tolerance=bool(np.any(diff > atol + rtol * np.abs(b64))),
        top1_changed=int(np.argmax(a)) != int(np.argmax(b)),
        bitwise_equal=a.tobytes() == b.tobytes(),
    )


def run_probes(
    score: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    batch_size: int,
    atol: float,
    rtol: float,
    alone: np.ndarray | None = None,
    among_images: np.ndarray | None = None,
    batch_probes: bool = True,
) -> ProbeResult:
    """Runs the probes on one preprocessed element x [H, W, C]: repeat, and with
    ``batch_probes`` also neighbours and shape (a call of ``batch_size`` rows).

    Scores the caller already has are reused instead of computed again (each saved call of
    ``batch_size`` rows is a batch's worth of model work, per probe):

    Args:
      alone: x's scores from a call of ``score`` on x alone (the reconciliation reference).
      among_images: x's scores from a call of ``batch_size`` rows whose other rows were other
        images (x's own batch in the job).
    """
    alone_1 = score(x[None])[0] if alone is None else alone
    alone_2 = score(x[None])[0]
    probes = {"repeat": _diff(alone_2, alone_1, atol, rtol)}
    if not batch_probes:
        return ProbeResult(probes)
    size = max(batch_size, 2)
    among_zeros = np.concatenate([x[None], np.zeros((size - 1,) + x.shape, x.dtype)])
    in_zeros = score(among_zeros)[0]
    if among_images is None:
        in_images = score(np.concatenate([x[None], neighbours(x, size - 1)]))[0]
    else:
        in_images = among_images
    probes["neighbours"] = _diff(in_images, in_zeros, atol, rtol)
    probes["shape"] = dataclasses.replace(_diff(in_zeros, alone_1, atol, rtol), batch_size=size)
    return ProbeResult(probes)


def _fmt(value: float | None) -> str:
    return "non-finite" if value is None or value == float("inf") else f"{value:.3g}"


def diagnose(
    probes: dict,
    by_reference: dict[str, dict[str, Any]],
    preprocessing_evidence: str | None = None,
    constant_output: bool = False,
    exif_oriented: int | None = None,
) -> list[dict[str, str]]:
    """The list of causes, each with its evidence in plain words and numbers.

    Args:
      probes: merged probe statistics by probe name
        (``transforms.core.reconciliation_summary.ProbeStats`` as dicts: probes,
        beyond_tolerance, top1_changed, bitwise, non_finite, max).
      by_reference: per reference ("single", "serving"), the summary counts
        (compared, identical, within_tolerance, mismatch, non_finite, max_abs_diff,
        top1_agreement).
      preprocessing_evidence: what differs between the batch and serving preprocessing.
      constant_output: every sampled image got the same scores.
      exif_oriented: predictions of images with a non-default EXIF orientation.
    """
    causes = []
    non_finite = sum(r.get("non_finite", 0) for r in by_reference.values())
    if non_finite:
        compared = sum(r["compared"] for r in by_reference.values())
        causes.append(
            {
                "cause": NON_FINITE,
                "evidence": (
                    f"{non_finite} of {compared} comparisons hold NaN or Inf scores: the model "
                    "(or its input) produces non-finite values, which no tolerance can compare"
                ),
            }
        )
    failed = {ref: r.get("reference_error", 0) for ref, r in by_reference.items()}
    if any(failed.values()):
        compared = sum(r["compared"] for r in by_reference.values())
        where = ", ".join(f"{n} {ref}" for ref, n in sorted(failed.items()) if n)
        causes.append(
            {
                "cause": REFERENCE_FAILED,
                "evidence": (
                    f"{sum(failed.values())} of {compared} comparisons could not be made "
                    f"({where}): the model raised on the reference call (the image scored "
                    "alone, or through the serving path) though it scored the image in its "
                    "batch; a service that scores such images that way fails on them (see "
                    "each element's error)"
                ),
            }
        )
    if constant_output:
        causes.append(
            {
                "cause": CONSTANT,
                "evidence": (
                    "the model gives every image the same scores; the comparison cannot see "
                    "skew (untrained weights, a wrong input range or dtype?)"
                ),
            }
        )
    repeat, neighbours, shape = probes["repeat"], probes["neighbours"], probes["shape"]
    if repeat["probes"] and repeat["beyond_tolerance"]:
        causes.append(
            {
                "cause": STOCHASTIC,
                "evidence": (
                    f"the same image scored twice alone gave different scores in "
                    f"{repeat['beyond_tolerance']} of {repeat['probes']} probes "
                    f"(max |diff| {_fmt(repeat['max'])}, "
                    f"top-1 changed in {repeat['top1_changed']}): "
                    "something random runs at inference (dropout left on, random ops)"
                ),
            }
        )
    elif neighbours["probes"] and neighbours["beyond_tolerance"]:
        causes.append(
            {
                "cause": BATCH_DEPENDENT,
                "evidence": (
                    f"an image's scores changed with its batch neighbours at the same batch size "
                    f"in {neighbours['beyond_tolerance']} of {neighbours['probes']} probes "
                    f"(max |diff| {_fmt(neighbours['max'])}, top-1 changed in "
                    f"{neighbours['top1_changed']}): a layer uses batch statistics "
                    "(BatchNorm in training mode, normalisation over the batch axis)"
                ),
            }
        )
    single, serving = by_reference.get("single"), by_reference.get("serving")
    if serving and serving["mismatch"] and not (single and single["mismatch"]):
        causes.append(
            {
                "cause": PREPROCESSING,
                "evidence": (
                    f"{serving['mismatch']} of {serving['compared']} elements disagree with the "
                    f"serving path (max |diff| {_fmt(serving['max_abs_diff'])}, top-1 agreement "
                    f"{serving['top1_agreement']:.1%}) while the batch path agrees with its own "
                    f"single-element reference"
                    + (f"; {preprocessing_evidence}" if preprocessing_evidence else "")
                ),
            }
        )
    pillow = by_reference.get("pillow")
    if pillow and pillow["mismatch"] and not (single and single["mismatch"]):
        rotated = (
            f"; {exif_oriented:,} predictions are of images with an EXIF orientation, which "
            "Pillow's decode applied (ImageOps.exif_transpose) and TensorFlow's ignores"
            if exif_oriented
            else ""
        )
        causes.append(
            {
                "cause": DECODER,
                "evidence": (
                    f"{pillow['mismatch']} of {pillow['compared']} elements disagree with the "
                    f"same bytes decoded by Pillow (EXIF orientation applied; max |diff| "
                    f"{_fmt(pillow['max_abs_diff'])}, top-1 agreement "
                    f"{pillow['top1_agreement']:.1%}) while the batch path agrees with its own "
                    "single-element reference: an online service that decodes with Pillow "
                    "scores these images differently" + rotated
                ),
            }
        )
    if causes:
        return causes
    compared = sum(r["compared"] for r in by_reference.values())
    identical = sum(r["identical"] for r in by_reference.values())
    if compared and identical == compared and (not shape["probes"] or shape["bitwise"]):
        return [
            {
                "cause": NONE,
                "evidence": f"all {compared} comparisons were bitwise identical",
            }
        ]
    if compared or shape["probes"]:
        worst = max([r["max_abs_diff"] or 0.0 for r in by_reference.values()] + [shape["max"]])
        mismatches = sum(r["mismatch"] for r in by_reference.values())
        return [
            {
                "cause": NUMERIC,
                "evidence": (
                    f"{compared - identical} of {compared} comparisons differ at float-noise level "
                    f"(max |diff| {_fmt(worst)}); "
                    + (
                        "scores do not depend on batch neighbours or on repetition, only on the "
                        "batch shape (kernel choice, reduction order)"
                        if neighbours["probes"]
                        else "repeated scoring agrees; the batch shape changes the rounding "
                        "(kernel choice, reduction order)"
                    )
                    + (
                        f"; {mismatches} exceed the tolerance: loosen --atol/--rtol or use "
                        "--pad_batches"
                        if mismatches
                        else "; top-1 stable, all within tolerance"
                    )
                ),
            }
        ]
    return [{"cause": NONE, "evidence": "nothing was compared (empty sample)"}]


def _short(value: float) -> str:
    """One significant digit, exponent unpadded: 1e-07 reads 1e-7."""
    mantissa, _, exponent = f"{value:.0e}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent and not 1e-3 <= value < 1e3 else f"{value:.1g}"


def divergence_sentence(profile) -> str | None:
    """Where a failing element's batched and reference scores part ways, in words, from a
    ``transforms.core.comparisons.LayerProfile``; None when no layer jumps."""
    first = profile.first_divergent_layer
    if first is None:
        return None
    if first.depth == 0:
        return (
            f"batch and {profile.reference} part ways at the model input "
            f"(max |diff| {_fmt(first.max_abs_diff)}): the preprocessing differs"
        )
    before = profile.agreed_before
    agreed = (
        "every layer before it is bitwise equal"
        if not before
        else f"every layer before it agrees to {_short(before)}"
    )
    return (
        f"batch and {profile.reference} part ways at `{first.name}` ({first.op}), depth "
        f"{first.depth}; {agreed}"
    )


def with_divergence(causes: list[dict[str, str]], profiles) -> list[dict[str, str]]:
    """The causes with each failing reference's layer sentence added to the evidence of the
    cause it explains (the serving reference's to ``preprocessing_mismatch`` if present)."""
    causes = [dict(c) for c in causes]
    for profile in profiles:
        sentence = divergence_sentence(profile) if profile.failed else None
        if sentence is None or not causes:
            continue
        names = [c["cause"] for c in causes]
        wanted = PREPROCESSING if profile.reference != "single" else None
        if wanted in names:
            target = causes[names.index(wanted)]
        else:
            target = next((c for c in causes if c["cause"] != PREPROCESSING), causes[0])
        target["evidence"] += "; " + sentence
    return causes
