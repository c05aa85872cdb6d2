"""How the replicated genotype networks are trained: the batches they see and the epochs they run."""
from __future__ import annotations

import keras
import numpy as np

from biolens.engine.genotype_training import (
    _shuffled_batches,
    fit_copies,
    predict_copies,
    settle_pair_lasso,
)
from biolens.models.genotype import build_genotype_model, packed_loss


def _data(n: int = 150, sites: int = 6, copies: int = 3):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, sites)).astype(np.float32)
    products = rng.standard_normal((n, copies, 8)).astype(np.float32)
    covariates = np.zeros((n, copies, 1), np.float32)
    targets = x[:, :1] + 0.5 * products[:, :, 0] + rng.standard_normal((n, copies))
    return x, products, covariates, targets


def test_every_epoch_holds_every_row_once_in_batches_of_the_asked_size():
    n, batch_size = 150, 64
    rows = np.arange(n, dtype=np.float32)[:, None]
    keras.utils.set_random_seed(4)
    batches = iter(_shuffled_batches([rows], rows, batch_size))
    epochs = []
    for _ in range(3):
        seen = [next(batches) for _ in range(-(-n // batch_size))]
        assert [len(labels) for _, labels in seen] == [64, 64, 22]
        for (inputs,), labels in seen:
            np.testing.assert_array_equal(inputs.numpy(), labels.numpy())  # inputs and targets stay paired
        order = np.concatenate([labels.numpy()[:, 0] for _, labels in seen]).astype(int)
        assert sorted(order) == list(range(n))
        epochs.append(order)
    assert not np.array_equal(epochs[0], np.arange(n))  # shuffled
    np.testing.assert_array_equal(epochs[0], epochs[1])  # one permutation kept, as Keras's fit on arrays does
    np.testing.assert_array_equal(epochs[0], epochs[2])


def test_the_copies_train_to_the_weights_keras_s_fit_on_arrays_gives():
    """The pipeline replaced `fit(arrays, shuffle=True)` for speed; the grid's earlier records must reproduce (both
    then settle the pair weights the same way)."""
    x, products, covariates, targets = _data()
    targets = (targets > 0).astype(np.float32)  # cases and controls: the log-loss the settling solves is bounded
    n, copies = targets.shape
    network = {"hidden": 4, "l2": 1e-2, "pair_penalty": 0.05, "l1": 1e-2}
    model, _ = fit_copies(x, products, covariates, targets, np.ones((n, copies)), kind="binary", seed=7, epochs=12,
                          batch_size=64, learning_rate=1e-3, **network)

    keras.utils.set_random_seed(7)
    reference = build_genotype_model(x.shape[1], products.shape[2], covariates.shape[2], copies, **network)
    reference.compile(optimizer=keras.optimizers.Adam(1e-3), loss=packed_loss("binary"))
    packed = np.concatenate([targets, np.ones((n, copies))], axis=1).astype(np.float32)
    reference.fit([x, products, covariates], packed, batch_size=64, epochs=12, shuffle=True, verbose=0)
    settle_pair_lasso(reference, x, products, covariates, targets, np.ones((n, copies)), kind="binary")

    for mine, theirs in zip(model.get_layer("networks").weights, reference.get_layer("networks").weights):
        # identical on a CPU; the tolerance leaves room for a GPU's reduction order, far below what another batch
        # order gives (the hidden layer's L1 norm 15-30% apart)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs), rtol=1e-4,
                                   atol=1e-5, err_msg=mine.path)


def test_cross_validation_gives_one_epoch_count_and_weights_that_predict_held_out_rows():
    x, products, covariates, targets = _data(n=300)
    n, copies = targets.shape
    rng = np.random.default_rng(2)
    inner = rng.random((n, copies)) < 0.2
    model, epochs = fit_copies(x, products, covariates, targets, (~inner).astype(float), kind="quantitative", seed=3,
                               epochs=60, val_weight=inner.astype(float), patience=15, batch_size=64,
                               learning_rate=3e-3, hidden=4, l2=1e-2, pair_penalty=0.01, l1=1e-3)
    assert len(set(epochs)) == 1 and 1 <= epochs[0] <= 60
    pred = predict_copies(model, x, products, covariates)
    validation = ((pred - targets) ** 2 * inner).sum(0) / inner.sum(0)
    baseline = ((targets - targets[~inner].mean()) ** 2 * inner).sum(0) / inner.sum(0)
    assert (validation < baseline).all(), (validation, baseline)  # the kept weights predict held-out rows


def test_a_binary_trait_s_pair_weights_settle_at_the_exact_group_lasso_solution_of_the_log_loss():
    """The settling solves mean log-loss + strength x sum of pair norms, checked by its optimality conditions
    (the problem is convex): a kept pair's gradient is -strength times its unit direction, a dropped pair's gradient
    is no longer than strength. Why it matters: Adam's jitter (~0.003 log-odds) was read as interactions on binary
    null cohorts; a settled pair is exactly zero or genuinely fitted."""
    from scipy.special import expit

    from biolens.engine.genotype_training import PAIR_TERMS, _block_group_lasso

    rng = np.random.default_rng(5)
    n, pairs = 1500, 12
    terms = rng.standard_normal((n, pairs * PAIR_TERMS))
    offset = 0.3 * rng.standard_normal(n)  # what the rest of the network fits
    truth = np.zeros(pairs * PAIR_TERMS)
    truth[:PAIR_TERMS] = [0.4, -0.3, 0.2, 0.0]  # one real interaction, eleven noise pairs
    target = (rng.random(n) < expit(offset + terms @ truth)).astype(float)
    strength = 0.25 * np.sqrt(2 * np.log(1000) / n)
    jitter = 0.003 * rng.standard_normal(pairs * PAIR_TERMS)  # where Adam leaves the weights
    beta = _block_group_lasso(terms, target, np.ones(n), offset, jitter, strength, 5000, 1e-10, "binary")
    gradient = terms.T @ ((expit(offset + terms @ beta) - target) / n)
    kept = []
    for k in range(pairs):
        group = slice(k * PAIR_TERMS, (k + 1) * PAIR_TERMS)
        norm = np.linalg.norm(beta[group])
        if norm > 0:
            kept.append(k)
            np.testing.assert_allclose(gradient[group], -strength * beta[group] / norm, atol=1e-6)
        else:
            assert np.linalg.norm(gradient[group]) <= strength + 1e-9
    assert kept[:1] == [0] and len(kept) < pairs  # the real pair is kept, noise pairs are set exactly to zero
    real = beta[:PAIR_TERMS]  # shrunk by the penalty, in the planted direction
    assert real @ truth[:PAIR_TERMS] / (np.linalg.norm(real) * np.linalg.norm(truth[:PAIR_TERMS])) > 0.95


def test_the_network_s_dominance_inputs_are_mutated_with_their_site():
    """In-silico mutagenesis with the dominance codes in the main part: a site's effect per sample is the change of f
    over one SD of its dosage, the dominance code moving with the genotype. Checked against the network itself: f
    computed at the neighbouring genotype classes (the tanh part left out, whose change is read at +-0.5 SD). A site
    whose minor homozygotes are too few to carry a dominance weight steadily has none."""
    from biolens.engine.genotype_training import DOMINANCE_MIN_CLASS, PairCodes

    rng = np.random.default_rng(3)
    n, sites = 400, 6
    dosage = rng.binomial(2, [0.5, 0.3, 0.25, 0.4, 0.2, 0.1], size=(n, sites)).astype(float)
    dosage[:, 5] = np.minimum(dosage[:, 5], 1)
    dosage[: DOMINANCE_MIN_CLASS - 1, 5] = 2  # one class short of the minimum
    codes = PairCodes(dosage)
    assert codes.has_dominance.all()
    np.testing.assert_array_equal(codes.dominance_sites, [0, 1, 2, 3, 4])
    k = len(codes.dominance_sites)
    model = build_genotype_model(sites + k, 4, 1, 1, dominance=k, hidden=3)
    layer = model.get_layer("networks")
    linear = rng.standard_normal((1, sites + k)).astype(np.float32)
    layer.linear.assign(linear)
    class_code = {(s, c): codes.d[np.flatnonzero(dosage[:, s] == c)[0], s] for s in range(k) for c in range(3)}

    def f(genotypes: np.ndarray) -> np.ndarray:
        """The network's output for these genotypes, with the codes the cohort's genotype classes have."""
        a = (genotypes - dosage.mean(0)) / dosage.std(0)
        d = np.array([[class_code[s, int(c)] for s, c in enumerate(row[:k])] for row in genotypes])
        inputs = [np.hstack([a, d]).astype(np.float32), np.zeros((len(genotypes), 1, 4), np.float32),
                  np.zeros((len(genotypes), 1, 1), np.float32)]
        return model.predict_on_batch(inputs)[:, 0]

    rows = np.arange(60)
    effects = np.zeros((len(rows), sites))
    for s in range(sites):
        up, down = dosage[rows].copy(), dosage[rows].copy()
        up[:, s] = np.minimum(up[:, s] + 1, 2)
        down[:, s] = np.maximum(down[:, s] - 1, 0)
        effects[:, s] = (f(up) - f(down)) / (up[:, s] - down[:, s]) * dosage[:, s].std()
    # without the tanh part (its output kernel starts at zero) the mutagenesis is exactly that change
    expected = np.abs(effects).mean(0)
    measured = layer.site_effects(codes.a[rows], 0, np.zeros((0, 2), int), np.zeros((len(rows), 0)),
                                  codes.dominance_sites, codes.dominance_slope(rows))
    np.testing.assert_allclose(measured, expected, rtol=1e-4)
    additive_only = np.abs(linear[0, :sites]).astype(float)
    assert not np.allclose(measured[:k], additive_only[:k], rtol=1e-2)  # the dominance weights count
    np.testing.assert_allclose(measured[k:], additive_only[k:], rtol=1e-5)  # and the site without one is additive


def test_the_tanh_part_s_mutagenesis_is_the_network_s_own_change_over_one_sd():
    """The closed form in `site_effects` (tanh(z + k/2) - tanh(z - k/2) from one division) against the network's own
    output at x_i +- 0.5, with units that saturate (large weights) beside units that do not."""
    rng = np.random.default_rng(5)
    n, sites, hidden = 80, 7, 5
    x = rng.standard_normal((n, sites))
    model = build_genotype_model(sites, 4, 1, 1, hidden=hidden, dropout=0.0)
    layer = model.get_layer("networks")
    kernel = rng.standard_normal((1, sites, hidden)) * 0.5
    kernel[0, :2, 0] *= 200  # a unit the first two sites drive far into saturation
    layer.hidden_kernel.assign(kernel.astype(np.float32))
    layer.hidden_bias.assign(rng.standard_normal((1, hidden)).astype(np.float32))
    layer.output_kernel.assign(rng.standard_normal((1, hidden)).astype(np.float32))
    layer.linear.assign(rng.standard_normal((1, sites)).astype(np.float32))

    def f(genotypes):
        inputs = [genotypes.astype(np.float32), np.zeros((len(genotypes), 1, 4), np.float32),
                  np.zeros((len(genotypes), 1, 1), np.float32)]
        return model.predict_on_batch(inputs)[:, 0].astype(np.float64)

    expected = np.empty(sites)
    for s in range(sites):
        up, down = x.copy(), x.copy()
        up[:, s] += 0.5
        down[:, s] -= 0.5
        expected[s] = np.abs(f(up) - f(down)).mean()
    measured = layer.site_effects(x, 0, np.zeros((0, 2), int), np.zeros((n, 0)))
    np.testing.assert_allclose(measured, expected, rtol=2e-3, atol=1e-4)  # the network computes in float32


def test_a_strong_dominance_effect_is_fitted_by_the_main_part_not_by_pairs():
    """A binary trait with main effects only (one site's strong dominance and additive effects, another site's
    additive effect): with the dominance codes in its main part
    the network leaves the pairs at about noise level; without them it takes part of the dominance through a pair
    holding a tag of the site and another strong site (why the codes are there: docs/association.md, "The network's
    main part holds every site's dominance")."""
    from biolens.engine.genotype_training import PairCodes

    rng = np.random.default_rng(8)
    n = 3000
    base = rng.binomial(2, 0.4, n).astype(float)
    tag = np.where(rng.random(n) < 0.85, base, rng.binomial(2, 0.4, n)).astype(float)  # a partial tag of site 0
    others = rng.binomial(2, rng.uniform(0.2, 0.5, 4), size=(n, 4)).astype(float)
    dosage = np.column_stack([base, tag, others])
    codes = PairCodes(dosage)
    logit = 2.0 * codes.d[:, 0] + 1.2 * codes.a[:, 0] + 0.8 * codes.a[:, 2]
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)[:, None]
    pairs = np.array([[1, 2], [1, 3], [3, 4]])
    products = codes.terms(pairs)[:, None, :].astype(np.float32)
    covariates = np.zeros((n, 1, 1), np.float32)
    kept = {}
    for name, (inputs, dominance) in {"additive": (codes.a, 0),
                                      "with dominance": (np.hstack([codes.a, codes.dominance_inputs()]),
                                                         codes.dominance_inputs().shape[1])}.items():
        model, _ = fit_copies(inputs.astype(np.float32), products, covariates, target, np.ones((n, 1)), kind="binary",
                              seed=1, epochs=40, learning_rate=3e-3, hidden=4, l2=1e-4, pair_penalty=0.01, l1=1e-2,
                              dominance=dominance)
        weights = keras.ops.convert_to_numpy(model.get_layer("networks").pair_weights)[0].reshape(-1, 4)
        kept[name] = np.linalg.norm(weights, axis=1)
    # pair 0 holds the site's tag and the other strong site, whose effect sets the individuals' weights p(1 - p)
    assert kept["additive"].argmax() == 0, kept
    assert kept["with dominance"][0] < 0.3 * kept["additive"][0], kept


def test_the_dominance_weights_carry_their_own_l2_strength():
    """The network's linear weights: the dosages' L2 strength on the first columns, the dominance codes' on the rest
    (each cross-validated for its own classical model, `associate._additive_penalty`)."""
    from biolens.models.genotype import ColumnsL2

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((3, 7)).astype(np.float32)
    penalty = float(keras.ops.convert_to_numpy(ColumnsL2(0.5, 4, 2.0)(weights)))
    expected = 0.5 * (weights[:, :4] ** 2).sum() + 2.0 * (weights[:, 4:] ** 2).sum()
    np.testing.assert_allclose(penalty, expected, rtol=1e-5)
    model = build_genotype_model(7, 4, 1, 3, dominance=3, l2=0.5, dominance_l2=2.0)
    layer = model.get_layer("networks")
    layer.linear.assign(weights)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(layer.losses[0])), expected, rtol=1e-5)
