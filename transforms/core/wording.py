"""Shares in words, one rounding rule for every sentence the summaries write.

A stated upper bound rounds up, so the words never claim more than the sample proves (a bound
of 0.94% reads 1.0%, not 0.9%); any other share rounds to nearest, except that a share below
one never reads as all of them. Pure Python.
"""

from __future__ import annotations

import math


def percent(share: float, upper_bound: bool = False) -> str:
    """A share in [0, 1] as a percentage: one decimal from 0.1% up, two significant digits
    below (0.013%), ``0%`` only for nothing at all.

    ``upper_bound``: the share is a bound, rounded up; otherwise rounded to nearest (halves
    up), and a share below one that would read ``100.0%`` reads ``>99.9%``.
    """
    value = 100 * share
    if value == 0:
        return "0%"
    # round(x, 9) first: 100 * 0.01 is 1.0000000000000002, which must not round up to 1.1%.
    to_int = math.ceil if upper_bound else _half_up
    if value >= 0.1:
        text = f"{to_int(round(value * 10, 9)) / 10:.1f}%"
    else:
        step = 10 ** (math.floor(math.log10(value)) - 1)
        text = f"{to_int(round(value / step, 9)) * step:.2g}%"
    if not upper_bound and text == "100.0%" and share < 1:
        return ">99.9%"
    return text


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)
