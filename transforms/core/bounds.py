"""The one statistical bound both summaries state: a one-sided exact (Clopper-Pearson) upper
bound on a rate seen in a sample, at the one confidence both report.

The reconciliation summary bounds the share of the job's predictions that fail from a hash
sample; the run comparison bounds the share of common keys that differ when it compared only
a sample. Pure (scipy, no Beam).
"""

from __future__ import annotations

from scipy.stats import beta

CONFIDENCE = 0.95


def clopper_pearson_upper(failures: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """One-sided exact upper bound on a binomial proportion: the p with
    P(X <= failures | trials, p) = 1 - confidence; 1.0 when nothing was tried or all failed."""
    if trials <= 0 or failures >= trials:
        return 1.0
    return float(beta.ppf(confidence, failures + 1, trials - failures))


def finite_or_none(value: float | None) -> float | None:
    """A statistic as JSON states it: None (null) where it is missing or infinite, since strict
    JSON has no Infinity."""
    return None if value is None or value == float("inf") else value
