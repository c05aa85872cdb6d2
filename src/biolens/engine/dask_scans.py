"""Past one machine: the classical pair scans of `biolens associate` on a Dask cluster (`--dask`).

Every pair of sites is tested twice (PLINK's product term and the saturated 3 x 3 table): m (m - 1) / 2 tests over
all individuals, the part of an association run that grows fastest with the cohort and the region; both are run
again on every trait of the main-effects null (`scan_blocks`). The scans are
split into blocks of pairs; with `--dask` each block is a Dask task on the cluster's workers (the genotypes are
sent to every worker once), without it the blocks run here one after the other. The results are the same numbers
either way (tests/test_dask_scans.py). The network and its permutation copies train with TensorFlow
(`tf.distribute` for several GPUs or machines); Dask is not used for them.

`--dask local` starts a cluster of worker processes on this machine; `--dask tcp://HOST:8786` uses a running
scheduler (docs/scaling.md).
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Self

import numpy as np

from biolens.errors import InputError

PAIRS_PER_TASK = 100_000


@contextmanager
def dask_client(address: str | None):
    """A dask.distributed Client for `address` ("local": a cluster on this machine), or None without one."""
    if not address:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - dask[distributed] is a dependency
        raise InputError("--dask needs dask[distributed] (pip install 'dask[distributed]').") from None
    if address == "local":
        from biolens.hardware import usable_cores

        workers = min(usable_cores(), 8)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout="20s")
    except OSError as error:
        raise InputError(f"--dask {address}: no Dask scheduler answered ({error}). Start one (`dask scheduler`) and "
                         "workers (`dask worker ADDRESS`), or use --dask local.") from None
    with client:
        yield client


class DaskSession:
    """One Dask client for a whole run, started the first time a stage asks for it and closed with the run.

    Both the classical scans and the null scans of `associate` run on it (each stage opening its own started a second
    local cluster), and a run resumed past both stages starts none.
    """

    def __init__(self, address: str | None):
        self.address = address
        self._stack = ExitStack()
        self._client = None

    @property
    def where(self) -> str:
        """' on the Dask cluster ADDRESS' for a stage's progress line, or nothing when the scans run in process."""
        return f" on the Dask cluster {self.address}" if self.address else ""

    def client(self):
        """The client (started now if this is the first call), or None without an address."""
        if self.address and self._client is None:
            self._client = self._stack.enter_context(dask_client(self.address))
        return self._client

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        self._client = None


def describe(client) -> dict:
    """Where the scans ran, for run.json and the report."""
    if client is None:
        return {"engine": "in process"}
    workers = client.scheduler_info().get("workers", {})
    return {"engine": "dask", "scheduler": client.scheduler.address, "workers": len(workers),
            "threads": int(sum(w.get("nthreads", 1) for w in workers.values()))}


def _product_block(pairs, dosage, y, covariates, kind):
    from biolens.stats.regression import pair_tests

    return pair_tests(dosage, y, covariates, kind, pairs)


def _saturated_block(pairs, dosage, y, covariates):
    from biolens.stats.two_locus import saturated_pair_tests

    return saturated_pair_tests(dosage, y, covariates, pairs)


def pair_scans(dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, kind: str, pairs: np.ndarray,
               client=None, pairs_per_task: int = PAIRS_PER_TASK) -> dict[str, np.ndarray]:
    """Both classical scans of every pair: product beta and p, saturated F, df and p (in the order of `pairs`)."""
    blocks = _blocks(pairs, pairs_per_task)
    if client is None:
        product = [_product_block(b, dosage, y, covariates, kind) for b in blocks]
        saturated = [_saturated_block(b, dosage, y, covariates) for b in blocks]
    else:
        shared = _scattered(client, dosage, y, covariates)
        product_futures = client.map(_product_block, blocks, dosage=shared[0], y=shared[1], covariates=shared[2],
                                     kind=kind)
        saturated_futures = client.map(_saturated_block, blocks, dosage=shared[0], y=shared[1], covariates=shared[2])
        product, saturated = client.gather(product_futures), client.gather(saturated_futures)
    return {"pair_beta": np.concatenate([p[0] for p in product]), "p_epistasis": np.concatenate([p[1] for p in product]),
            "f_saturated": np.concatenate([s[0] for s in saturated]),
            "df_saturated": np.concatenate([s[1] for s in saturated]),
            "p_saturated": np.concatenate([s[2] for s in saturated])}


def scan_blocks(test, dosage: np.ndarray, traits: np.ndarray, covariates: np.ndarray, pairs: np.ndarray, client=None,
                pairs_per_task: int = PAIRS_PER_TASK) -> np.ndarray:
    """`test(dosage, traits, covariates, pairs)` -> traits x pairs p-values, run block by block: as Dask tasks with a
    client (the null traits of the pair readings: `two_locus.MainEffectsNull`), here without one."""
    blocks = _blocks(pairs, pairs_per_task)
    if client is None:
        return np.concatenate([test(dosage, traits, covariates, b) for b in blocks], axis=1)
    shared = _scattered(client, dosage, traits, covariates)
    futures = client.map(_test_block, blocks, test=test, dosage=shared[0], traits=shared[1], covariates=shared[2])
    return np.concatenate(client.gather(futures), axis=1)


def _test_block(pairs, test, dosage, traits, covariates):
    return test(dosage, traits, covariates, pairs)


def _blocks(pairs: np.ndarray, size: int) -> list[np.ndarray]:
    return [pairs[start:start + size] for start in range(0, len(pairs), size)] or [pairs]


def _scattered(client, *arrays):
    """The arrays on every worker once. hash=False: a second scan of the same arrays would otherwise reuse the keys
    the first is releasing, and its tasks fail with "lost dependencies"."""
    return client.scatter([np.asarray(a) for a in arrays], broadcast=True, hash=False)
