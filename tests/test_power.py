"""The association report's "what this cohort can detect": the stated effect sizes are found about 80% of the time."""
import numpy as np
from scipy import stats

from biolens.stats.power import detectable_share, reading, what_can_be_detected


def _found_share(n, tests, df, share, replicates=600, seed=0):
    """How often an effect of `share` of the variance, carried by `df` predictors, passes the F test at 0.05/tests."""
    rng = np.random.default_rng(seed)
    found = 0
    for _ in range(replicates):
        x = rng.normal(size=(n, df))
        signal = x @ rng.normal(size=df)
        signal *= np.sqrt(share / signal.var())
        y = signal + rng.normal(scale=np.sqrt(1 - share), size=n)
        design = np.column_stack([np.ones(n), x])
        residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
        explained = ((y - y.mean()) ** 2).sum() - (residual ** 2).sum()
        f = (explained / df) / ((residual ** 2).sum() / (n - df - 1))
        found += stats.f.sf(f, df, n - df - 1) < 0.05 / tests
    return found / replicates


def test_the_stated_detectable_effects_are_found_in_about_80_percent_of_simulated_studies():
    for n, tests, df in ((1000, 200, 1), (600, 50_000, 4), (2000, 80_000, 1)):
        share = detectable_share(n, tests, df)
        assert _found_share(n, tests, df, 0.8 * share) < 0.75 and _found_share(n, tests, df, 1.25 * share) > 0.85
        assert abs(_found_share(n, tests, df, share) - 0.8) < 0.06


def test_more_individuals_detect_smaller_effects_and_more_tests_need_larger_ones():
    small, large = what_can_be_detected(500, 100, 10_000), what_can_be_detected(5000, 100, 10_000)
    assert large["site_share"] < small["site_share"] / 8  # about ten times the individuals, a tenth the share
    assert what_can_be_detected(1000, 10, 100)["pair_share_any_form"] < what_can_be_detected(1000, 10, 10**6)[
        "pair_share_any_form"]
    assert small["pair_share_one_form"] < small["pair_share_any_form"]  # a named form spends one df, not four
    text = reading(small, binary=True)
    assert "500 individuals" in text and "0/1 scale" in text and "remain possible" in text
