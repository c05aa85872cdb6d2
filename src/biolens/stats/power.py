"""What a cohort can detect: the smallest effect a test finds in 80% of studies of this size, at its multiple-test bar.

"No pair reaches q < 0.05" reads as "nothing there" unless the report also says how large an effect the study could
have seen. For a regression test of `df` degrees of freedom over n individuals, an effect explaining a share h2 of
the trait's variance gives the noncentral chi-square statistic lambda = n h2 / (1 - h2) (the usual large-sample
power calculation, as the Genetic Power Calculator and QUANTO make it); the bar is 0.05 / tests, the first line a
Benjamini-Hochberg procedure must cross when one effect stands alone.
"""
from __future__ import annotations

from scipy import optimize, stats

POWER = 0.8


def detectable_share(n: int, tests: float, df: int = 1, alpha: float = 0.05, power: float = POWER) -> float:
    """The share of trait variance an effect needs to be found with probability `power` at alpha / tests."""
    critical = stats.chi2.isf(alpha / max(float(tests), 1.0), df)
    if stats.chi2.sf(critical, df) >= power:  # cannot happen for alpha < power, kept for safety
        return 0.0
    noncentrality = optimize.brentq(lambda lam: stats.ncx2.sf(critical, df, lam) - power, 1e-9, 1e6)
    return float(noncentrality / (n + noncentrality))


def what_can_be_detected(n: int, site_tests: float, pair_tests: float) -> dict:
    """The detectable shares for the association report: one site (1 df), a pair's interaction of any form (the
    saturated 3 x 3 table beyond both sites' own effects, 4 df) and of one named form (1 df)."""
    return {"power": POWER, "individuals": int(n), "site_tests": float(site_tests), "pair_tests": float(pair_tests),
            "site_share": detectable_share(n, site_tests, 1),
            "pair_share_any_form": detectable_share(n, pair_tests, 4),
            "pair_share_one_form": detectable_share(n, pair_tests, 1)}


def reading(detectable: dict, binary: bool) -> str:
    """The plain-words sentence of the report."""
    scale = " (on the 0/1 scale of case status)" if binary else ""
    return (f"What this cohort can detect: with {detectable['individuals']:,} individuals, a single site explaining "
            f"at least {100 * detectable['site_share']:.1f}% of the trait's variance{scale}, or a pair whose "
            f"interaction explains at least {100 * detectable['pair_share_any_form']:.1f}% beyond both sites' own "
            f"effects ({100 * detectable['pair_share_one_form']:.1f}% for an interaction of one known form), would "
            f"be found in {100 * detectable['power']:.0f}% of studies this size, at the multiple-test bar of "
            f"{detectable['site_tests']:,.0f} independent site tests and {detectable['pair_tests']:,.0f} distinct "
            "pair tests. Weaker effects are easily missed: where nothing is found, effects below these sizes remain "
            "possible.")
