"""The reconciliation's guarantee in words: the verdict and what it proves about the whole job.

The sentence is ``summary.json``'s ``guarantee`` (and the report's headline): the counts each
reference agrees on, worst first, and the share of all predictions that can differ beyond
tolerance (an exact share where every prediction was compared, else the sample's upper bound,
rounded up). Pure Python, from the summary's plain values.
"""

from __future__ import annotations

from transforms.core.wording import percent


def worst_reference(by_reference: dict) -> str | None:
    """The reference the headline speaks for: the highest mismatch bound, then the most
    failures, then the name (so ties pick the same one every time)."""
    if not by_reference:
        return None
    return max(
        sorted(by_reference),
        key=lambda ref: (
            by_reference[ref]["mismatch_rate_upper"],
            _failed(by_reference[ref]),
        ),
    )


def _failed(counts: dict) -> int:
    return counts["mismatch"] + counts["non_finite"] + counts.get("reference_error", 0)


def _agree_phrase(counts: dict, what: str) -> str:
    compared, failed = counts["compared"], _failed(counts)
    phrase = f"{compared - failed:,} of {compared:,} {what}"
    if failed:
        phrase += f" ({counts['mismatch']:,} mismatch, {counts['non_finite']:,} non-finite"
        if counts.get("reference_error"):
            phrase += f", {counts['reference_error']:,} whose reference failed"
        phrase += ")"
    return phrase


def guarantee_sentence(summary: dict) -> str:
    """The verdict and what it proves about the whole job, in one sentence.

    With two references (single and serving) the guarantee holds per reference: the sentence
    gives each one's counts, worst first, and states the worst one's rate, naming it (pooling
    the two would halve a skew that fails every serving comparison)."""
    compared, predictions = summary["compared"], summary.get("predictions")
    population = f"the {predictions:,} predictions" if predictions else "the job's predictions"
    verdict_word = summary["verdict"].upper()
    if not compared:
        return f"{verdict_word}: nothing was compared, so nothing is proven about {population}."
    by_reference = summary.get("by_reference") or {}
    if len(by_reference) < 2:
        counts, against = summary, ""
        head = f"{verdict_word}: {_agree_phrase(summary, 'sampled agree')}"
    else:
        worst = worst_reference(by_reference)
        counts, others = by_reference[worst], [ref for ref in sorted(by_reference) if ref != worst]
        parts = [_agree_phrase(counts, f"sampled agree with the {worst} reference")]
        parts += [_agree_phrase(by_reference[ref], f"with the {ref} reference") for ref in others]
        head = f"{verdict_word}: {', '.join(parts)}"
        tied = all(
            by_reference[r]["mismatch_rate_upper"] == counts["mismatch_rate_upper"] for r in others
        )
        against = " from either reference" if tied else f" from the {worst} reference"
    failed, upper = _failed(counts), counts["mismatch_rate_upper"]
    if summary["verdict"] == "inconclusive":
        return (
            f"{head}, but the model gives every sampled image the same scores, so the "
            "comparison cannot see skew; nothing is proven."
        )
    if summary.get("exhaustive"):
        share = "none" if not failed else percent(failed / counts["compared"])
        return (
            f"{head}; every one of {population} was compared, so exactly {share} of them "
            f"differ beyond tolerance{against} (no sampling, no estimate)."
        )
    bound = percent(upper, upper_bound=True)
    return (
        f"{head}; with {summary['confidence']:.0%} confidence at most {bound} of "
        f"{population} differ beyond tolerance{against}."
    )
