"""Training the replicated genotype networks: per-copy early stopping, then fixed-length refits.

Cross-validation copies pick their epoch on an inner validation slice of their own training fold. The final copy and
every permutation copy then train for the median of those epochs on all samples, so the real fit and its nulls follow
exactly the same procedure (a null that stopped earlier would have smaller scores and inflate significance); their
pair weights are then settled at the exact group-lasso solution of their loss (`settle_pair_lasso`).
"""
from __future__ import annotations

import keras
import numpy as np

from biolens.models.genotype import build_genotype_model, packed_loss
from biolens.stats.linkage import r_squared

CLUMP_R2 = 0.5  # candidate pairs whose sites both tag an already chosen pair's sites at this r^2 are skipped
PAIR_TERMS = 4  # additive x additive, additive x dominance, dominance x additive, dominance x dominance
# a site's dominance code enters the network's main part when each of its genotype classes holds this many individuals
DOMINANCE_MIN_CLASS = 10
POOL_PER_CANDIDATE = 4  # pairs screened (one per tagged pair of sites) per network candidate, before `_distinct_fits`
SCREEN_CONTESTS = 8  # the first signals of each copy's screen whose pair is chosen by mutual conditioning
CONTENDERS = 6  # pairs contending to stand for one signal in the screen
CONTEST_ROUNDS = 4  # contests for one signal at most: a winner's own tags with a better own p contend again


def _pair_matrix(values: np.ndarray, pairs: np.ndarray, m: int) -> np.ndarray:
    """m x m matrix of a value per pair (i < j) at [i, j]; -1 elsewhere and where the value is NaN (no test)."""
    matrix = np.full((m, m), -1.0)
    matrix[pairs[:, 0], pairs[:, 1]] = np.where(np.isfinite(values), values, -1.0)
    return matrix


class PairCodes:
    """Cockerham codes of every site and the interaction terms of any pair of sites built from them.

    Per site: a = standardised dosage, d = heterozygote indicator made orthogonal to a and standardised. For sites i
    and j the four products a_i a_j, a_i d_j, d_i a_j, d_i d_j span every departure of the 3 x 3 genotype table from
    main effects, so a network given these four terms can represent any two-site function (a product, exactly one
    carrier, both dominant, both recessive, a threshold) and not only the dosage product PLINK tests.
    """

    def __init__(self, dosage: np.ndarray):
        classes = np.clip(np.rint(dosage), 0, 2)
        centre, scale = dosage.mean(0), np.where(dosage.std(0) > 0, dosage.std(0), 1)
        a = (dosage - centre) / scale
        d = (classes == 1).astype(np.float64)
        heterozygous = d.mean(0)
        d -= heterozygous
        slope = (a * d).mean(0)
        d -= a * slope  # orthogonal to a within each site
        spread = d.std(0)
        self.has_dominance = spread > 1e-6
        self.a, self.d = a, d / np.where(self.has_dominance, spread, 1)
        self.r2 = r_squared(dosage)
        # the d code of each genotype class (3 x sites), and how it changes per SD of dosage from each class
        genotype = np.arange(3.0)[:, None]
        code = ((genotype == 1) - heterozygous - (genotype - centre) / scale * slope) / np.where(self.has_dominance,
                                                                                                  spread, 1)
        self._classes = classes.astype(np.int8)
        smallest = np.stack([(classes == genotype).sum(0) for genotype in range(3)]).min(0)
        self._network_dominance = self.has_dominance & (smallest >= DOMINANCE_MIN_CLASS)
        self._slope_of_class = scale * np.stack([code[1] - code[0], (code[2] - code[0]) / 2, code[2] - code[1]])

    @property
    def dominance_sites(self) -> np.ndarray:
        """The sites whose dominance code the genotype network's main part takes: those with DOMINANCE_MIN_CLASS
        individuals in each genotype class. Why not every site with a code: a code made orthogonal to the dosage
        and standardised is large where a class is nearly empty (about sqrt(n) for one minor homozygote), and a few
        such inputs made the network's training erratic (validation loss 0.836-0.863 against 0.815 without them on a
        10,000-individual cohort, which stopped cross-validation at 6 epochs)."""
        return np.flatnonzero(self._network_dominance)

    def dominance_inputs(self) -> np.ndarray:
        """The dominance codes the genotype network's main part takes beside the dosages (n x dominance sites)."""
        return self.d[:, self._network_dominance]

    def dominance_slope(self, rows: np.ndarray) -> np.ndarray:
        """How much each sample's dominance code changes per SD of its site's dosage (the mean of the steps to the
        neighbouring genotype classes), for in-silico mutagenesis: rows x dominance sites."""
        sites = self.dominance_sites
        return self._slope_of_class[self._classes[np.ix_(rows, sites)], sites]

    def screen(self, evidence: np.ndarray, pairs: np.ndarray, k: int, allowed: np.ndarray, target: np.ndarray,
               rows: np.ndarray, own: np.ndarray | None = None, first_unexplained=None) -> np.ndarray:
        """The k pairs (i < j, `allowed`) with the most `evidence` (-log10 p; NaN or -1: no test) of an interaction given
        their own main effects, one per signal: the saturated 3 x 3 test of the copy's own `target` (given on its
        `rows`), read within its LD class against the main-effects null (`MainEffectsNull.screening_evidence`).

        Screening is what lets gradient training find one interacting pair among ~10^5 (sure independence screening,
        Fan & Lv 2008). It first ranked pairs by the summed squared correlations of their four raw product terms with
        the trait; that let main effects and rare sites through: on two cohorts with a both-recessive pair (saturated
        -log10 p 28) the planted pair ranked 2,340th and 3,532nd, behind products of a causal site with unrelated
        sites (correlated with the trait through that site's own effect) and products of rare sites (a few carriers
        give heavy-tailed correlations). The saturated test adjusts for both sites' main effects and its p accounts
        for the cells' sizes; read within LD classes, pairs of linked sites that together describe a third site's
        effect do not crowd out real interactions. One per signal: pairs whose sites tag a chosen pair's
        (`_clumped`), and then pairs whose fitted interaction repeats a chosen pair's (`_distinct_fits`), are passed
        over. Where `own` (the test's own -log10 p) and `first_unexplained` (contender site pairs -> the position of the
        first that no other explains, `two_locus.first_unexplained` on this copy's target) are given, a signal's pair is
        one its partial tags do not explain, as the stepwise reading chooses its leads.
        """
        m = self.a.shape[1]
        strength = _pair_matrix(evidence, pairs, m)
        upper = np.triu(np.ones(strength.shape, bool), 1)
        mine = _pair_matrix(own, pairs, m) if own is not None and first_unexplained is not None else None
        pool = self._clumped(np.where(upper & allowed, strength, -1.0), POOL_PER_CANDIDATE * k, mine, first_unexplained)
        return self._distinct_fits(pool, target, rows, k, mine, first_unexplained)

    def _distinct_fits(self, pool: np.ndarray, target: np.ndarray, rows: np.ndarray, k: int,
                       own: np.ndarray | None = None, first_unexplained=None) -> np.ndarray:
        """The first k pairs of `pool` (best first) whose fitted interaction with `target` (given on `rows`) is not
        largely (r^2 >= CLUMP_R2) one that an earlier chosen pair fits.

        A recessive interaction lives in one cell of the 3 x 3 table (11 individuals in one cohort). Any pair whose
        table isolates the same individuals fits it, whether or not its sites tag the planted ones; the network,
        given several such pairs, spread the effect over four of them, none strong enough to be claimed.

        Where `own` and `first_unexplained` are given (as for `_clumped`), a later pair that repeats one chosen pair's
        fit with a better own p contends with it, and the first that the other does not explain stands for the fit
        (two that explain each other: settled as `first_unexplained` is asked to). Why: pairs are pooled in order of
        the tail of their LD class, read far past the null's largest scores, and on a product grid cohort (seed 1022)
        a partial tag of the planted pair (own p 4e-16, read 8e-15) came before the planted pair (own p 1e-28, read
        2e-13 in a class with a heavier tail); its fit repeated the planted pair's, and the planted pair was passed
        over.
        """
        if len(pool) == 0:
            return pool
        centred = target - target.mean()
        fits = []
        for start in range(0, len(pool), 64):
            basis = self.terms(pool[start:start + 64], rows).reshape(len(rows), -1, PAIR_TERMS) / np.sqrt(len(rows))
            fits.append(np.einsum("nkf,kf->nk", basis, np.einsum("nkf,n->kf", basis, centred)))
        fits = np.concatenate(fits, axis=1)
        norms = np.linalg.norm(fits, axis=0)
        chosen: list[int] = []
        for c in range(len(pool)):
            if len(chosen) == k:
                break
            if chosen and norms[c] > 0:
                overlap = fits[:, chosen].T @ fits[:, c] / np.maximum(norms[chosen] * norms[c], 1e-300)
                repeated = np.flatnonzero(overlap ** 2 >= CLUMP_R2)
                if len(repeated) == 1 and own is not None and first_unexplained is not None:
                    earlier = chosen[repeated[0]]
                    if own[tuple(pool[c])] > own[tuple(pool[earlier])] and first_unexplained(pool[[earlier, c]]) == 1:
                        chosen[repeated[0]] = c
                if len(repeated):
                    continue
            chosen.append(c)
        return pool[chosen]

    def _clumped(self, strength: np.ndarray, k: int, own: np.ndarray | None = None,
                 first_unexplained=None) -> np.ndarray:
        """The k strongest pairs (upper triangle of `strength`; negative = not a candidate), best first, skipping a
        pair whose two sites both tag (r^2 >= 0.5) an accepted pair's.

        In a region without recombination one interaction is seen through dozens of tagging pairs; given them all,
        the network spreads the effect over them. One pair per signal keeps the effect in one place. Every
        pair stays in the running (a first version clumped a pool of the 1,600 strongest, which the tags of one or
        two strong signals could fill entirely: a real interaction further down then never became a candidate).

        Which of a signal's tagging pairs is strongest was decided by the tails fitted to their LD classes: on a
        product grid cohort a partial tag of the planted pair came first, and the planted pair, tagged by it, was
        passed over. So for the first SCREEN_CONTESTS signals, where pairs the strongest would pass over have a
        better own p (`own`, -log10 p), the strongest and up to CONTENDERS - 1 of them (best own p first) contend,
        and the first that no other explains (`first_unexplained`; associate asks it to settle two that explain each
        other by their own fit: a partial tag read strongest otherwise stood for a signal its planted pair fits
        better, docs/association.md) stands for the signal. Where another pair wins, its own tags with a better own
        p than it contend in turn (at most CONTEST_ROUNDS contests, each pair once): the winner's tags are passed
        over with it, and on a rare-allele product cohort (seed 1022) the planted pair, which explains the winner
        (p left 0.75, and the winner explains nothing of it), was a tag of the winner but not of the strongest pair,
        so it never contended and never became a candidate (docs/association.md, session 50).
        """
        strength = strength.copy()
        tags = self.r2 >= CLUMP_R2
        chosen: list[tuple[int, int]] = []
        contests = 0
        while len(chosen) < k:
            best = int(np.argmax(strength))
            i, j = divmod(best, strength.shape[1])
            if strength[i, j] < 0:
                break
            tagged = np.outer(tags[i], tags[j]) | np.outer(tags[j], tags[i])  # (a, b) with a~i, b~j or a~j, b~i
            if own is not None and contests < SCREEN_CONTESTS:
                contended = np.zeros(strength.shape, bool)
                mine = tagged
                for round_ in range(CONTEST_ROUNDS):  # until the winner's own tags hold no better pair not yet asked
                    rivals = np.flatnonzero((mine & ~contended & (strength >= 0) & (own > own[i, j])).ravel())
                    if not len(rivals):
                        break
                    contests += round_ == 0  # SCREEN_CONTESTS counts signals, not rounds
                    rivals = rivals[np.argsort(-own.ravel()[rivals], kind="stable")[: CONTENDERS - 1]]
                    contenders = np.array([(i, j), *(divmod(int(r), strength.shape[1]) for r in rivals)])
                    contended[contenders[:, 0], contenders[:, 1]] = True
                    winner = first_unexplained(contenders)
                    if winner == 0:
                        break
                    i, j = (int(v) for v in contenders[winner])
                    mine = np.outer(tags[i], tags[j]) | np.outer(tags[j], tags[i])
                    tagged |= mine
            chosen.append((i, j))
            strength[tagged] = -1
        return np.asarray(chosen, dtype=np.int64).reshape(-1, 2)

    def terms(self, pairs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Four interaction terms per pair: an orthonormal basis (unit variance, uncorrelated) of what the pair's
        3 x 3 genotype table can add to its two sites' main effects; rows x (K * 4), pair-major.

        The four Cockerham products span that space once made orthogonal to both sites' additive and dominance codes
        (raw, they carry part of each site's own effect whenever allele frequencies are not 1/2 or the sites are in
        LD, and the network, whose main part is additive, fitted a strong site's dominance through its pairs, in the
        real fit and every null copy alike). Made orthonormal, the group lasso's penalty on a pair is the size of its
        learned term whatever the basis (Simon & Tibshirani 2012): with the products each standardised alone, the
        penalty favoured pairs whose table happened to line up with one product, and on a both-recessive cohort the
        network put the interaction (11 individuals in one cell) on a pair of weaker fit (saturated p 9e-6) than the
        planted one (2e-14). A table with empty cells has fewer than four such directions; the rest are zero.
        """
        i, j = pairs[:, 0], pairs[:, 1]
        a, d = (self.a, self.d) if rows is None else (self.a[rows], self.d[rows])
        full = np.stack([a[:, i] * a[:, j], a[:, i] * d[:, j], d[:, i] * a[:, j], d[:, i] * d[:, j]], axis=2)
        main = np.stack([np.ones_like(a[:, i]), a[:, i], d[:, i], a[:, j], d[:, j]], axis=2)  # n x K x 5
        gram = np.einsum("nkp,nkq->kpq", main, main)
        coefficients = np.linalg.pinv(gram, rcond=1e-10, hermitian=True) @ np.einsum("nkp,nkf->kpf", main, full)
        interaction = np.moveaxis(full - np.einsum("nkp,kpf->nkf", main, coefficients), 1, 0)  # K x n x 4
        basis, singular, _ = np.linalg.svd(interaction, full_matrices=False)  # K x n x 4, K x 4
        kept = singular > 1e-6 * np.maximum(singular[:, :1], 1e-12)
        basis = basis * np.sqrt(len(a)) * kept[:, None, :]  # unit variance: the columns have mean 0 and norm 1
        return np.moveaxis(basis, 0, 1).reshape(len(a), -1)


class _BestPerCopy(keras.callbacks.Callback):
    """Keep each copy's weights from the epoch with its lowest validation loss, and record every copy's curve.

    Training stops when the mean validation curve over copies has not improved for `patience` epochs; the epoch count
    for later refits is that mean curve's minimum (one cross-validated choice, as for a penalty, rather than the
    median of per-fold minima, which with small validation slices jumped between 1 and 150 epochs).
    """

    def __init__(self, inputs, targets, val_weight, kind: str, patience: int):
        super().__init__()
        # only the rows some copy validates on are predicted after each epoch (about half of them with 5 folds)
        rows = np.flatnonzero(val_weight.sum(1) > 0)
        self.inputs = [part[rows] for part in inputs]
        self.targets, self.val_weight = targets[rows], val_weight[rows]
        self.kind, self.patience = kind, patience
        self.best = np.full(targets.shape[1], np.inf)
        self.best_epoch = np.zeros(targets.shape[1], dtype=int)
        self.curve: list[np.ndarray] = []
        self.saved: dict[str, np.ndarray] = {}

    def _val_loss(self) -> np.ndarray:
        pred = _predict_in_chunks(self.model, self.inputs)
        if self.kind == "binary":
            per = np.maximum(pred, 0) - pred * self.targets + np.log1p(np.exp(-np.abs(pred)))
        else:
            per = (pred - self.targets) ** 2
        return (per * self.val_weight).sum(0) / np.maximum(self.val_weight.sum(0), 1)

    def on_epoch_end(self, epoch, logs=None):
        loss = self._val_loss()
        self.curve.append(loss)
        improved = loss < self.best - 1e-6
        layer = self.model.get_layer("networks")
        for variable in layer.weights:
            value = keras.ops.convert_to_numpy(variable)
            if variable.path not in self.saved:
                self.saved[variable.path] = value.copy()
            self.saved[variable.path][improved] = value[improved]
        self.best[improved] = loss[improved]
        self.best_epoch[improved] = epoch + 1
        if epoch + 1 - self.common_epoch >= self.patience:
            self.model.stop_training = True

    @property
    def common_epoch(self) -> int:
        """The epoch (1-based) where the validation loss averaged over copies is lowest."""
        return int(np.argmin(np.mean(self.curve, axis=1))) + 1 if self.curve else 0

    def restore(self):
        for variable in self.model.get_layer("networks").weights:
            variable.assign(self.saved[variable.path])


def fit_copies(x: np.ndarray, products: np.ndarray, covariates: np.ndarray, targets: np.ndarray,
               train_weight: np.ndarray, *, kind: str,
               seed: int, epochs: int, val_weight: np.ndarray | None = None, patience: int = 10,
               batch_size: int = 64, learning_rate: float = 3e-3, **network) -> tuple[keras.Model, np.ndarray]:
    """Train one model holding `targets.shape[1]` copies; return it and the epoch count chosen for refits.

    x: n x sites (standardised); products: n x copies x K; covariates: n x copies x c;
    targets, train_weight, val_weight: n x copies.
    With val_weight, each copy keeps its best-validation weights and the returned epoch count is where the mean
    validation curve is lowest; without, all copies train exactly `epochs` epochs.
    """
    keras.utils.set_random_seed(seed)
    steps = -(-len(x) // batch_size)
    model = build_genotype_model(x.shape[1], products.shape[2], covariates.shape[2], targets.shape[1], **network)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=packed_loss(kind), steps_per_execution=steps)
    inputs = [x.astype(np.float32), products.astype(np.float32), covariates.astype(np.float32)]
    packed = np.concatenate([targets, train_weight], axis=1).astype(np.float32)
    callbacks = []
    if val_weight is not None:
        tracker = _BestPerCopy(inputs, targets, val_weight, kind, patience)
        callbacks.append(tracker)
    model.fit(_shuffled_batches(inputs, packed, batch_size), epochs=epochs, steps_per_epoch=steps, shuffle=False,
              verbose=0, callbacks=callbacks)
    if val_weight is not None:
        tracker.restore()
        return model, np.full(targets.shape[1], tracker.common_epoch)
    settle_pair_lasso(model, x, products, covariates, targets, train_weight, kind=kind)
    return model, np.full(targets.shape[1], epochs)


def _shuffled_batches(inputs: list[np.ndarray], packed: np.ndarray, batch_size: int):
    """Every row once per epoch, in batches of `batch_size` (the last one smaller), forever: the batches Keras's `fit`
    on arrays with `shuffle=True` makes, without rebuilding its input pipeline every epoch.

    Why: that rebuild, with the per-step Python work of one execution per step, made a small network's epoch 4 times
    slower than its 16 steps (52 against 13.5 ms with 5 copies; 116 against 47 with 41), and cross-validation and the
    refits run up to 300 epochs: half of a slow cohort's run (docs/performance.md, session 49).
    The order is Keras's to the row: one random permutation drawn under the seed `fit_copies` sets (`permutation`
    repeats Keras's ops, so it draws the same one) and kept for every epoch, which is what Keras's pipeline does
    under a global seed (a new iterator draws the same permutation again). So every earlier result reproduces.
    """
    import tensorflow as tf

    arrays = tuple(tf.constant(a) for a in inputs), tf.constant(packed)
    n = len(packed)

    def permutation(_):
        indices = tf.range(n, dtype=tf.int64)
        return tf.random.shuffle(indices)

    order = tf.data.Dataset.range(1).map(permutation).cache().repeat()
    batches = order.flat_map(lambda rows: tf.data.Dataset.from_tensor_slices(rows).batch(batch_size))
    gathered = batches.map(lambda rows: (tuple(tf.gather(a, rows) for a in arrays[0]), tf.gather(arrays[1], rows)))
    return gathered.prefetch(2)


def settle_pair_lasso(model: keras.Model, x: np.ndarray, products: np.ndarray, covariates: np.ndarray,
                      targets: np.ndarray, weight: np.ndarray, *, kind: str = "quantitative", sweeps: int = 500,
                      tolerance: float = 1e-6) -> None:
    """Set every copy's pair weights to the exact group-lasso solution of its loss (squared, or logistic for a
    binary trait), given the rest of its trained network.

    Why: Adam follows the penalty's subgradient, which never sets a pair to zero and leaves every pair's weights
    jittering at the size of its steps, so the learned terms of real and noise pairs were blurred together. Given the
    additive, non-linear and covariate parts, the pair part's loss is convex, and block coordinate descent with the
    group soft-threshold reaches its optimum. The real fit and every null copy are settled alike, so the pair test
    stays calibrated. For a binary trait the jitter was worse than blurring: on null cohorts the real fit's largest
    jitter (0.003 log-odds) was read against a Pareto tail fitted to the null copies' jitter, and a pair was claimed
    in 3 of 4 (docs/association.md, "Binary traits settled too").
    """
    layer = model.get_layer("networks")
    fitted = predict_copies(model, x, products, covariates).astype(np.float64)
    pair_weights = keras.ops.convert_to_numpy(layer.pair_weights).astype(np.float64)
    for copy in range(pair_weights.shape[0]):
        terms = products[:, copy].astype(np.float64)
        offset = fitted[:, copy] - terms @ pair_weights[copy]
        pair_weights[copy] = _block_group_lasso(terms, targets[:, copy].astype(np.float64), weight[:, copy], offset,
                                                pair_weights[copy], layer.pair_penalty, sweeps, tolerance, kind)
    layer.pair_weights.assign(pair_weights.astype(np.float32))


def _block_group_lasso(terms: np.ndarray, target: np.ndarray, weight: np.ndarray, offset: np.ndarray,
                       beta: np.ndarray, strength: float, sweeps: int, tolerance: float,
                       kind: str = "quantitative") -> np.ndarray:
    """Minimise the weighted mean loss of offset + terms @ beta (squared error, or for a binary trait the log-loss of
    those logits against 0/1 targets) plus strength x the sum of each pair's norm, by proximal gradient steps on one
    pair at a time. The step is 1 / (the loss's curvature bound x the block's largest eigenvalue): exact for the
    squared loss with orthonormal terms, and for the log-loss (curvature at most 1/4) a step that always lowers the
    objective, so it takes more sweeps."""
    from scipy.special import expit

    logistic = kind == "binary"
    curvature = 0.25 if logistic else 2.0
    share = weight / max(weight.sum(), 1.0)
    groups, steps = [], []
    for start in range(0, terms.shape[1], PAIR_TERMS):
        block = terms[:, start:start + PAIR_TERMS]
        if block.any():  # padding rows past the last candidate are zero
            groups.append(slice(start, start + PAIR_TERMS))
            steps.append(1.0 / (curvature * np.linalg.eigvalsh((block * share[:, None]).T @ block)[-1]))
    beta, predictor = beta.copy(), offset + terms @ beta
    for _ in range(sweeps):
        change = 0.0
        for group, step in zip(groups, steps):
            slope = expit(predictor) - target if logistic else 2 * (predictor - target)
            moved = beta[group] - step * (terms[:, group].T @ (share * slope))
            norm = np.linalg.norm(moved)
            settled = moved * max(0.0, 1 - step * strength / norm) if norm > 0 else moved
            predictor += terms[:, group] @ (settled - beta[group])
            change = max(change, float(np.abs(settled - beta[group]).max()))
            beta[group] = settled
        if change < tolerance:
            break
    return beta


def predict_copies(model: keras.Model, x: np.ndarray, products: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    return _predict_in_chunks(model, [x.astype(np.float32), products.astype(np.float32), covariates.astype(np.float32)])


def _predict_in_chunks(model: keras.Model, inputs: list[np.ndarray], chunk: int = 4096) -> np.ndarray:
    """The model's output on every row, `chunk` rows per call: `model.predict` with its batches, less its overhead.

    Why: `predict` builds a tf.data pipeline on every call (~60 ms). Cross-validation reads the validation loss after
    every epoch, up to 300 times, and that overhead was 12 of a slow cohort's 102 s (docs/performance.md, session 49).
    The same rows pass through the same compiled function, so the output is the same.
    """
    n = len(inputs[0])
    return np.concatenate([model.predict_on_batch([part[start:start + chunk] for part in inputs])
                           for start in range(0, n, chunk)], axis=0)
