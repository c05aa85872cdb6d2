"""The classical pair scans on a real Dask cluster (worker processes on this machine) give the same numbers as in
process, and `--dask` is checked at the door."""
from __future__ import annotations

import numpy as np
import pytest

from biolens.engine.dask_scans import dask_client, describe, pair_scans, scan_blocks


def _cohort(n=600, m=30, seed=0):
    """Genotypes with an 'exactly one carrier' pair (sites 3 and 17): invisible to the product term."""
    rng = np.random.default_rng(seed)
    maf = rng.uniform(0.1, 0.5, m)
    dosage = rng.binomial(2, maf, size=(n, m)).astype(np.float64)
    one_carrier = (dosage[:, 3] > 0) ^ (dosage[:, 17] > 0)
    y = 0.6 * one_carrier + rng.normal(0, 1, n)
    covariates = rng.normal(size=(n, 2))
    return dosage, y, covariates


def test_pair_scans_on_a_local_dask_cluster_match_the_scans_in_process():
    """Both scans, the null traits' scans of the readings against main effects (several traits a task), and the
    stepwise rescans that count claims once per signal."""
    from functools import partial

    from biolens.stats.two_locus import MainEffectsNull, product_pair_tests, saturated_p, stepwise_signals

    dosage, y, covariates = _cohort()
    pairs = np.stack(np.triu_indices(dosage.shape[1], 1), axis=1)
    traits = np.random.default_rng(1).normal(size=(len(y), 3)) + y[:, None]
    here = pair_scans(dosage, y, covariates, "quantitative", pairs)
    nulls_here = [test(dosage, traits, covariates, pairs) for test in (saturated_p, product_pair_tests)]
    null = MainEffectsNull(saturated_p, dosage, pairs, np.random.default_rng(2).normal(size=(len(y), 5)), covariates,
                           np.random.default_rng(0))
    marginal = null.read(here["p_saturated"])[:2]
    stepwise_here = stepwise_signals(saturated_p, null, dosage, y, covariates, pairs, marginal)
    with dask_client("local") as client:
        where = describe(client)
        there = pair_scans(dosage, y, covariates, "quantitative", pairs, client, pairs_per_task=50)  # 9 tasks
        nulls_there = [scan_blocks(test, dosage, traits, covariates, pairs, client, pairs_per_task=50)
                       for test in (saturated_p, product_pair_tests)]
        stepwise_there = stepwise_signals(saturated_p, null, dosage, y, covariates, pairs, marginal,
                                          scan=partial(scan_blocks, client=client, pairs_per_task=50))
    assert len(stepwise_here[2]) >= 1 and stepwise_there[2] == stepwise_here[2]
    np.testing.assert_allclose(stepwise_there[0], stepwise_here[0], rtol=1e-10, equal_nan=True)
    for null_here, null_there in zip(nulls_here, nulls_there):
        assert null_there.shape == (3, len(pairs))
        np.testing.assert_allclose(null_there, null_here, rtol=1e-10, equal_nan=True)
    assert where["engine"] == "dask" and where["workers"] >= 1
    for key in here:
        np.testing.assert_allclose(there[key], here[key], rtol=1e-10, equal_nan=True)
    planted = np.flatnonzero((pairs[:, 0] == 3) & (pairs[:, 1] == 17))[0]
    assert np.nanargmin(there["p_saturated"]) == planted  # the saturated table finds the form the product misses


def test_one_dask_session_serves_every_stage_and_starts_only_when_asked():
    """A run holds one session: no cluster until a stage asks for the client (a run resumed past its scans starts
    none), the same client for every later stage, closed with the run; without an address there is none."""
    from biolens.engine.dask_scans import DaskSession

    with DaskSession(None) as nothing:
        assert nothing.client() is None
    with DaskSession("local") as session:
        assert session._client is None  # nothing started yet
        first = session.client()
        assert session.client() is first and describe(first)["engine"] == "dask"
    assert first.status == "closed"


def test_dask_address_is_checked_at_the_config_gate(tmp_path):
    from biolens.config import AssociateConfig
    from biolens.errors import InputError

    with pytest.raises(InputError, match=r"--dask somewhere: expected 'local' or a scheduler address such as tcp://"):
        AssociateConfig(genotypes=str(tmp_path / "g.vcf"), phenotypes=str(tmp_path / "p.tsv"), trait="t",
                        dask="somewhere").validate()
