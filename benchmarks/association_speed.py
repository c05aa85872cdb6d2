"""Where a 1,000 x 2 kb association run spends its time, each part against its baseline in the same process.

    .venv/bin/python benchmarks/association_speed.py              # 1,000 individuals, the grid's default region
    .venv/bin/python benchmarks/association_speed.py --individuals 10000

1. The replicated genotype network (`genotype_training.fit_copies`): its input pipeline, built once per fit with one
   compiled call per epoch, against Keras's `fit` on the same arrays (the code before session 49), for the
   cross-validation model (5 copies) and the discovery model (41 copies). The two must reach the same weights.
2. The product scans (`two_locus.product_pair_tests`) for the real trait and 20 null traits over every pair: each
   pair's cross-products from matrix products of the sites' columns, against building each pair's n x 4 design and
   solving it (`regression.linear_last`, the code before session 49). The two must agree wherever the pair has a
   product to test, up to the old design's float32 product column.
3. The 3 x 3 pair tables behind every saturated scan (`regression.pair_cell_tables`) for 41 traits (the network's
   screen: the real trait and 40 null copies) over every pair: the four carrier cells from products against the
   block's second sites and the other five from each site's class totals, against all nine cells from the products of
   every site's 0/1/2 indicators (the code before session 57). The two must agree to rounding.
4. One training step of the discovery model (41 copies: forward, gradient, Adam) with the hidden layer as one matrix
   product, against the per-copy einsum it replaced (session 57); the same outputs from the same weights.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import keras
import numpy as np

from biolens.engine.genotype_training import fit_copies
from biolens.models.genotype import build_genotype_model, packed_loss
from biolens.readers.variants import read_vcf
from biolens.simulate import simulate_cohort
from biolens.stats.regression import _ELEMENTS_PER_CHUNK, design, linear_last, pair_tests, wald_last
from biolens.stats.two_locus import product_pair_tests, residualise


def _keras_fit_on_arrays(x, products, covariates, targets, *, seed, epochs, batch_size, learning_rate, **network):
    keras.utils.set_random_seed(seed)
    model = build_genotype_model(x.shape[1], products.shape[2], covariates.shape[2], targets.shape[1], **network)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=packed_loss("binary"))
    packed = np.concatenate([targets, np.ones_like(targets)], axis=1).astype(np.float32)
    model.fit([x, products, covariates], packed, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return model


def network(x: np.ndarray, copies: int, epochs: int) -> dict:
    rng = np.random.default_rng(copies)
    n = len(x)
    products = rng.standard_normal((n, copies, 128)).astype(np.float32)  # 32 candidate pairs x 4 terms
    covariates = np.zeros((n, copies, 1), np.float32)
    targets = (rng.random((n, copies)) < 1 / (1 + np.exp(-x[:, :1]))).astype(np.float64)
    options = {"seed": 1, "epochs": epochs, "batch_size": 64, "learning_rate": 1e-3, "hidden": 16, "l1": 1e-2,
               "l2": 1e-2, "pair_penalty": 0.05}
    timings = {}
    for name, train in (("keras_fit_on_arrays", lambda: _keras_fit_on_arrays(x, products, covariates, targets,
                                                                             **options)),
                        ("fit_copies", lambda: fit_copies(x, products, covariates, targets, np.ones((n, copies)),
                                                          kind="binary", **options)[0])):
        started = time.perf_counter()
        model = train()
        timings[name] = time.perf_counter() - started
        timings[name + "_weights"] = [keras.ops.convert_to_numpy(w) for w in model.get_layer("networks").weights]
    same = all(np.array_equal(a, b) for a, b in zip(timings.pop("keras_fit_on_arrays_weights"),
                                                     timings.pop("fit_copies_weights")))
    return {"copies": copies, "epochs": epochs, **{k: round(v, 2) for k, v in timings.items()}, "same_weights": same}


def _products_by_design(dosage, traits, covariates, pairs, block=4_000_000):
    """The product scan as it was: each pair's n x 4 design built and solved (float32 dosages keep their product in
    float32, as the old code did)."""
    resid = residualise(traits, covariates)
    centred = dosage - dosage.mean(0)
    n = len(resid)
    pvalues = np.full((resid.shape[1], len(pairs)), np.nan)
    size = max(1, block // (4 * n))
    from scipy import stats

    for start in range(0, len(pairs), size):
        a, b = pairs[start:start + size, 0], pairs[start:start + size, 1]
        X = np.stack([np.ones((len(a), n)), centred[:, a].T, centred[:, b].T, (centred[:, a] * centred[:, b]).T], axis=2)
        beta, se, dof = linear_last(X, resid, absorbed=covariates.shape[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            pvalues[:, start:start + len(a)] = (2 * stats.t.sf(np.abs(beta / se), dof)).T
    return pvalues


def product_scan(dosage: np.ndarray, traits: int = 21) -> dict:
    rng = np.random.default_rng(0)
    pairs = np.stack(np.triu_indices(dosage.shape[1], 1), axis=1)
    y = rng.standard_normal((len(dosage), traits))
    covariates = rng.standard_normal((len(dosage), 2))
    result = {"pairs": len(pairs), "traits": traits}
    for name, scan in (("by_design", _products_by_design), ("cross_products", product_pair_tests)):
        started = time.perf_counter()
        result[name] = scan(dosage, y, covariates, pairs)
        result[name + "_s"] = round(time.perf_counter() - started, 2)
    old, new = result.pop("by_design"), result.pop("cross_products")
    tested = np.isfinite(new)
    result["untested_pairs"] = int((~tested[0]).sum())
    relative = np.abs(old[tested] - new[tested]) / new[tested]
    # the old design's product column was float32 for float32 dosages; where the two sites are mirror images
    # (complete LD) the design is singular and its p was decided by that rounding
    result["relative_difference_median_p99_max"] = [float(f"{v:.2g}") for v in np.quantile(relative, [0.5, 0.99, 1])]
    return result


def _plink_by_design(dosage, y, covariates, pairs):
    """PLINK's scan as it was before session 50: each pair's n x (covariates + 4) design built and solved."""
    centred = dosage.astype(np.float64) - dosage.mean(0)
    base = design(covariates)
    pvalues = np.empty(len(pairs))
    block = max(1, _ELEMENTS_PER_CHUNK // (len(dosage) * (base.shape[1] + 3)))
    for start in range(0, len(pairs), block):
        a, b = pairs[start:start + block, 0], pairs[start:start + block, 1]
        tested = np.stack([centred[:, a].T, centred[:, b].T, (centred[:, a] * centred[:, b]).T], axis=2)
        pvalues[start:start + block] = wald_last(base, tested, y, "quantitative")[1]
    return pvalues


def plink_scan(dosage: np.ndarray) -> dict:
    rng = np.random.default_rng(1)
    pairs = np.stack(np.triu_indices(dosage.shape[1], 1), axis=1)
    y = rng.standard_normal(len(dosage))
    covariates = rng.standard_normal((len(dosage), 3))
    result = {"pairs": len(pairs), "covariates": covariates.shape[1]}
    for name, scan in (("by_design", _plink_by_design),
                       ("cross_products", lambda *a: pair_tests(a[0], a[1], a[2], "quantitative", a[3])[1])):
        started = time.perf_counter()
        result[name] = scan(dosage, y, covariates, pairs)
        result[name + "_s"] = round(time.perf_counter() - started, 2)
    old, new = result.pop("by_design"), result.pop("cross_products")
    tested = np.isfinite(new) & np.isfinite(old)
    result["untested_pairs"] = int((~np.isfinite(new)).sum())
    relative = np.abs(old[tested] - new[tested]) / new[tested]
    # pairs of identical sites have a singular design either way; their p differs in the fourth digit
    result["relative_difference_median_p99_max"] = [float(f"{v:.2g}") for v in np.quantile(relative, [0.5, 0.99, 1])]
    return result


def _tables_from_all_cells(dosage, pairs, values, block_pairs=50_000):
    """`pair_cell_tables` as it was before session 57: all nine cells from 0/1/2 indicators of every site."""
    from biolens.stats.regression import genotype_classes

    classes = genotype_classes(dosage)
    n, m = classes.shape
    indicators = np.zeros((n, 3 * m))
    indicators[np.arange(n)[:, None], 3 * np.arange(m)[None, :] + classes] = 1.0
    order = np.argsort(pairs[:, 0], kind="stable")
    for start in range(0, len(order), block_pairs):
        chosen = order[start:start + block_pairs]
        first = np.unique(pairs[chosen, 0])
        block = indicators[:, (3 * first[:, None] + np.arange(3)).ravel()]
        rows = 3 * np.searchsorted(first, pairs[chosen, 0])[:, None, None] + np.arange(3)[None, :, None]
        columns = 3 * pairs[chosen, 1][:, None, None] + np.arange(3)[None, None, :]
        counts = (block.T @ indicators)[rows, columns].reshape(-1, 9)
        sums = np.stack([((block * v[:, None]).T @ indicators)[rows, columns].reshape(-1, 9) for v in values.T],
                        axis=-1)
        yield chosen, counts, sums


def tables(dosage: np.ndarray, traits: int = 41) -> dict:
    from biolens.stats.regression import pair_cell_tables

    rng = np.random.default_rng(2)
    pairs = np.stack(np.triu_indices(dosage.shape[1], 1), axis=1)
    values = rng.standard_normal((len(dosage), traits))
    result = {"pairs": len(pairs), "traits": traits}
    for name, build in (("all_nine_cells", _tables_from_all_cells), ("carrier_cells", pair_cell_tables)):
        started = time.perf_counter()
        result[name] = list(build(dosage.astype(np.float64), pairs, values))
        result[name + "_s"] = round(time.perf_counter() - started, 2)
    old, new = result.pop("all_nine_cells"), result.pop("carrier_cells")
    result["same_counts"] = all(np.array_equal(a[1], b[1]) for a, b in zip(old, new))
    result["largest_sum_difference"] = float(f"{max(np.abs(a[2] - b[2]).max() for a, b in zip(old, new)):.2g}")
    return result


def hidden_layer(x: np.ndarray, copies: int = 41, steps: int = 200, rounds: int = 3) -> dict:
    import tensorflow as tf
    from keras import ops

    from biolens.models.genotype import GenotypeNetworks

    class EinsumNetworks(GenotypeNetworks):
        def call(self, inputs, training=None):
            x, products, covariates = inputs
            additive = ops.matmul(x, ops.transpose(self.linear))
            pairwise = ops.sum(products * self.pair_weights, axis=-1)
            z = ops.einsum("bs,msh->bmh", x, self.hidden_kernel) + self.hidden_bias
            nonlinear = ops.sum(self.hidden_dropout(ops.tanh(z), training=training) * self.output_kernel, axis=-1)
            return self.bias + additive + pairwise + nonlinear + ops.sum(covariates * self.covariate_kernel, axis=-1)

    rng = np.random.default_rng(3)
    batch = [tf.constant(x[:64]), tf.constant(rng.standard_normal((64, copies, 128)).astype(np.float32)),
             tf.constant(np.zeros((64, copies, 1), np.float32))]
    target = tf.constant(np.concatenate([rng.random((64, copies)) < 0.5, np.ones((64, copies))], 1).astype(np.float32))
    loss = packed_loss("binary")
    layers = {}
    for name, kind in (("einsum", EinsumNetworks), ("one_matrix_product", GenotypeNetworks)):
        layer = kind(copies, hidden=16, l1=1e-2, l2=1e-2, pair_penalty=0.05)
        layer(batch)
        layers[name] = layer
    for a, b in zip(layers["einsum"].weights, layers["one_matrix_product"].weights):
        b.assign(a)
    same = np.allclose(layers["einsum"](batch), layers["one_matrix_product"](batch), rtol=1e-5, atol=1e-5)
    result = {"copies": copies, "same_outputs": bool(same)}
    steps_of = {}
    for name, layer in layers.items():
        optimizer = keras.optimizers.Adam(1e-3)

        @tf.function
        def step(layer=layer, optimizer=optimizer):
            with tf.GradientTape() as tape:
                value = loss(target, layer(batch, training=True)) + tf.add_n(layer.losses)
            optimizer.apply(tape.gradient(value, layer.trainable_weights), layer.trainable_weights)

        step()
        steps_of[name] = step
        result[name + "_ms_per_step"] = np.inf
    for _ in range(rounds):  # alternating, the best of each
        for name, step in steps_of.items():
            started = time.perf_counter()
            for _ in range(steps):
                step()
            result[name + "_ms_per_step"] = round(min(result[name + "_ms_per_step"],
                                                      1000 * (time.perf_counter() - started) / steps), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--individuals", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--parts", choices=["all", "network", "scans", "tables", "hidden"], default="all")
    args = parser.parse_args()
    cohort = simulate_cohort("pair", trait="quantitative", seed=1020, n_individuals=args.individuals, length=2000)
    with tempfile.TemporaryDirectory() as folder:
        dosage = read_vcf(cohort.write(folder)["genotypes"]).dosage.astype(np.float32)
    dosage = dosage[:, (dosage.mean(0) > 0.02) & (dosage.mean(0) < 1.98)]
    x = ((dosage - dosage.mean(0)) / dosage.std(0)).astype(np.float32)
    print(f"{len(dosage)} individuals x {dosage.shape[1]} sites")
    if args.parts in ("all", "network"):
        for copies in (5, 41):
            print(network(x, copies, args.epochs), flush=True)
    if args.parts in ("all", "scans"):
        print(product_scan(dosage), flush=True)
        print(plink_scan(dosage), flush=True)
    if args.parts in ("all", "tables"):
        print(tables(dosage), flush=True)
    if args.parts in ("all", "hidden"):
        print(hidden_layer(x), flush=True)


if __name__ == "__main__":
    main()
