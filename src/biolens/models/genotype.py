"""The genotype network: additive + screened pairwise + small non-linear part, replicated as independent copies.

One copy models  f(x) = b + w.x + v.d + sum_k u_k . t_k + a.tanh(W x + c) + g.covariates
over standardised dosages x and the sites' dominance codes d (so its main part holds every site's additive and
dominance effects, as the interaction null's main-effects model does), where t_k are four interaction terms of each
of K candidate pairs: an orthonormal basis of what the pair's 3 x 3 genotype table adds to its two sites' main effects
(the Cockerham products made orthogonal to both sites' additive and dominance codes), so any two-site function.
Gradient training cannot find one interacting pair among ~10^5 from n ~ 1,000 samples unaided (the noise in all pairs
outweighs the signal of one), so each copy first screens every pair by the saturated two-locus test of that copy's own
target, read within LD classes (sure independence screening, Fan & Lv 2008), and learns on the K best, one per signal;
permutation copies repeat the screening on their own targets, so the selection is part of the null. Because the
network is linear in x before the tanh, in-silico mutagenesis of every site has a closed form (`site_effects`), and so
does the interaction term of every pair.

The layer holds `n_models` copies with separate weights so that cross-validation folds, the final fit and all
permutation refits train together in one Keras `fit` (their losses add up; their gradients never mix).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="biolens")
class GroupL1(keras.regularizers.Regularizer):
    """Group lasso over each pair's `group` interaction weights: a pair enters the model whole or not at all.

    Screening picks the candidate pairs whose terms fit the training target best, so noise pairs arrive with in-sample
    correlations near sqrt(2 ln(pairs) / n); an L2 penalty only shrinks them all, a group L1 penalty of that size
    shrinks every pair's term by the same amount and sets those it exceeds to zero (with the squared loss, whose
    gradient is twice the correlation, the pairs whose correlation with the residual is under half of it). Training
    only follows the penalty's subgradient; `genotype_training.settle_pair_lasso` then solves for the pair weights
    exactly.
    """

    def __init__(self, strength: float, group: int = 4):
        self.strength, self.group = float(strength), int(group)

    def __call__(self, weights):
        grouped = ops.reshape(weights, (ops.shape(weights)[0], -1, self.group))
        return self.strength * ops.sum(ops.sqrt(ops.sum(ops.square(grouped), axis=-1) + 1e-12))

    def get_config(self):
        return {"strength": self.strength, "group": self.group}


@keras.saving.register_keras_serializable(package="biolens")
class ColumnsL2(keras.regularizers.Regularizer):
    """L2 on a (copies x columns) weight: `strength` on the first `columns` columns, `rest` on the others (the
    dominance weights, held as the classical additive + dominance model holds them)."""

    def __init__(self, strength: float, columns: int, rest: float):
        self.strength, self.columns, self.rest = float(strength), int(columns), float(rest)

    def __call__(self, weights):
        squares = ops.square(weights)
        return (self.strength * ops.sum(squares[:, : self.columns])
                + self.rest * ops.sum(squares[:, self.columns:]))

    def get_config(self):
        return {"strength": self.strength, "columns": self.columns, "rest": self.rest}


@keras.saving.register_keras_serializable(package="biolens")
class GenotypeNetworks(keras.layers.Layer):
    """`n_models` independent genotype networks.

    Inputs: [genotypes (B, sites + dominance), pair products (B, n_models, K), covariates (B, n_models, c)]; the
    last `dominance` genotype columns are dominance codes, which enter the linear part only, with their own L2
    strength `dominance_l2` (default `l2`).

    Why the dominance codes: the interaction null's traits carry every site's dominance effect, and a network whose
    main part is additive can only reach a strong site's dominance through other terms. Its pair terms are orthogonal
    to their own sites' codes, but not to those of the sites they tag, and a logistic fit weights individuals by
    p(1 - p), which varies with the other strong sites: on a 10,000-individual binary cohort every null copy's
    largest pair term (0.22-0.42 log-odds SD) held a planted site with a strong dominance effect, and the planted
    pair's tag (0.455) was not claimed; with the codes the copies' largest fell to 0-0.19 (docs/association.md).
    """

    def __init__(self, n_models: int, hidden: int = 16, l2: float = 1e-2, pair_penalty: float = 0.1, l1: float = 1e-2,
                 dropout: float = 0.2, pair_terms: int = 4, dominance: int = 0, dominance_l2: float | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_models, self.hidden, self.dropout = n_models, hidden, dropout
        self.l2, self.pair_penalty, self.l1, self.pair_terms = l2, pair_penalty, l1, pair_terms
        self.dominance = int(dominance)
        self.dominance_l2 = float(l2 if dominance_l2 is None else dominance_l2)
        self.hidden_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        columns, n_pairs, n_cov = input_shape[0][-1], input_shape[1][-1], input_shape[2][-1]
        self.sites = sites = columns - self.dominance
        models, decay, sparse = self.n_models, keras.regularizers.L2(self.l2), keras.regularizers.L1(self.l1)
        self.linear = self.add_weight(shape=(models, columns), initializer="zeros", name="linear",
                                      regularizer=ColumnsL2(self.l2, sites, self.dominance_l2))
        self.pair_weights = self.add_weight(shape=(models, n_pairs), initializer="zeros", name="pair_weights",
                                            regularizer=GroupL1(self.pair_penalty, self.pair_terms))
        self.hidden_kernel = self.add_weight(shape=(models, sites, self.hidden), regularizer=sparse, name="hidden_kernel",
                                             initializer=keras.initializers.RandomNormal(stddev=1 / np.sqrt(sites)))
        self.hidden_bias = self.add_weight(shape=(models, self.hidden), initializer="zeros", name="hidden_bias")
        self.output_kernel = self.add_weight(shape=(models, self.hidden), regularizer=decay, name="output_kernel",
                                             initializer="zeros")
        self.covariate_kernel = self.add_weight(shape=(models, n_cov), initializer="zeros", name="covariate_kernel")
        self.bias = self.add_weight(shape=(models,), initializer="zeros", name="bias")

    def call(self, inputs, training=None):
        x, products, covariates = inputs
        additive = ops.matmul(x, ops.transpose(self.linear))
        pairwise = ops.sum(products * self.pair_weights, axis=-1)
        sites = x[:, : self.sites] if self.dominance else x
        # one matrix product for all copies: the einsum this replaces spent 8-13% more per training step (session 57)
        kernel = ops.reshape(ops.transpose(self.hidden_kernel, (1, 0, 2)), (self.sites, -1))
        z = ops.reshape(ops.matmul(sites, kernel), (-1, self.n_models, self.hidden)) + self.hidden_bias
        nonlinear = ops.sum(self.hidden_dropout(ops.tanh(z), training=training) * self.output_kernel, axis=-1)
        adjustment = ops.sum(covariates * self.covariate_kernel, axis=-1)
        return self.bias + additive + pairwise + nonlinear + adjustment

    def get_config(self):
        return {**super().get_config(), "n_models": self.n_models, "hidden": self.hidden, "l2": self.l2,
                "pair_penalty": self.pair_penalty, "l1": self.l1, "dropout": self.dropout, "pair_terms": self.pair_terms,
                "dominance": self.dominance, "dominance_l2": self.dominance_l2}

    # -- explanation (numpy, from the weights of one copy) ---------------------------------------------------------
    def weights_of(self, model: int) -> dict[str, np.ndarray]:
        names = ("linear", "pair_weights", "hidden_kernel", "hidden_bias", "output_kernel")
        return {name: ops.convert_to_numpy(getattr(self, name)[model]).astype(np.float64) for name in names}

    def site_effects(self, x: np.ndarray, model: int, pairs: np.ndarray, pair_terms: np.ndarray,
                     dominance_sites: np.ndarray | None = None, dominance_slope: np.ndarray | None = None) -> np.ndarray:
        """In-silico mutagenesis: mean |f(x_i + 0.5) - f(x_i - 0.5)| per site, a one-SD change around each sample,
        plus the site's share of the learned interaction terms it is part of.

        x: the samples' standardised dosages (sites only). pairs: this copy's K candidate pairs; pair_terms: each pair's
        interaction term in f per sample (n x K), added to both of its sites. dominance_sites: the site of each
        dominance input; dominance_slope: how much each sample's dominance code changes per SD of that site's dosage
        (n x dominance, `PairCodes.dominance_slope`), so that a site's dominance weight counts where it acts. Averaging
        the absolute change keeps a site that acts only through an interaction (whose average signed effect is zero)
        visible.
        """
        w = self.weights_of(model)
        sites = x.shape[1]
        effects = np.tile(w["linear"][:sites], (len(x), 1))
        if self.dominance:
            effects[:, dominance_sites] += w["linear"][sites:] * dominance_slope  # one code per site
        np.add.at(effects.T, pairs[:, 0], pair_terms.T)
        np.add.at(effects.T, pairs[:, 1], pair_terms.T)
        # tanh(z + k/2) - tanh(z - k/2) = 2 sinh(k) / (cosh(2z) + cosh(k)): one division per sample, site and unit
        # where two tanh took about eight times as long (and lost digits where both saturate)
        with np.errstate(over="ignore"):  # cosh(2z) = inf past |z| ~ 355: the difference is then 0, as it should be
            spread = np.cosh(2 * (x @ w["hidden_kernel"] + w["hidden_bias"]))  # (n, hidden)
        for start in range(0, x.shape[1], 256):
            kernel = np.clip(w["hidden_kernel"][start:start + 256], -700, 700)  # sinh and cosh stay finite
            steps = 2 * np.sinh(kernel) * w["output_kernel"]  # (sites, hidden)
            effects[:, start:start + 256] += (steps[None] / (spread[:, None, :] + np.cosh(kernel)[None])).sum(2)
        return np.abs(effects).mean(0)


def build_genotype_model(n_sites: int, n_pairs: int, n_covariates: int, n_models: int, **options) -> keras.Model:
    genotypes = keras.Input((n_sites,), name="genotypes")
    products = keras.Input((n_models, n_pairs), name="pair_products")
    covariates = keras.Input((n_models, n_covariates), name="covariates")
    outputs = GenotypeNetworks(n_models, name="networks", **options)([genotypes, products, covariates])
    return keras.Model([genotypes, products, covariates], outputs, name="genotype_networks")


def packed_loss(kind: str):
    """Loss over all copies: y_true packs [targets | sample weights] so each copy sees only its own samples."""

    def loss(y_true, y_pred):
        models = ops.shape(y_pred)[-1]
        target, weight = y_true[:, :models], y_true[:, models:]
        if kind == "binary":
            per = ops.maximum(y_pred, 0) - y_pred * target + ops.log1p(ops.exp(-ops.abs(y_pred)))
        else:
            per = ops.square(y_pred - target)
        return ops.sum(ops.sum(per * weight, axis=0) / ops.maximum(ops.sum(weight, axis=0), 1.0))

    return loss
