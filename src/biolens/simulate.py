"""Simulated cohorts with a known truth (msprime coalescent genealogies), for tests, benchmarks and the demo.

A real cohort never tells you which sites are causal; a simulated one does, so discovery power and the false-discovery
rate of `biolens associate` can be measured. Genotypes come from msprime (the standard coalescent simulator);
phenotypes are built on top with planted additive sites, a planted pair that acts only together, or no effect at all.
"""
from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SCENARIOS = ("additive", "pair", "null")


@dataclass
class Cohort:
    vcf_text: str
    phenotypes: pd.DataFrame
    truth: dict = field(default_factory=dict)
    make_haplotypes: "object" = None  # () -> {"<sample>_h1": aligned sequence}; built only when a FASTA is written

    @property
    def haplotypes(self) -> dict[str, str]:
        return self.make_haplotypes() if self.make_haplotypes else {}

    def write(self, folder: Path | str, *, fasta: bool = False) -> dict[str, Path]:
        """Write cohort.vcf.gz (or cohort.fasta), traits.tsv and truth.json into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"phenotypes": folder / "traits.tsv", "truth": folder / "truth.json"}
        if fasta:
            paths["sequences"] = folder / "cohort.fasta"
            paths["sequences"].write_text("".join(f">{name}\n{seq}\n" for name, seq in self.haplotypes.items()))
        else:
            paths["genotypes"] = folder / "cohort.vcf.gz"
            with gzip.open(paths["genotypes"], "wt", compresslevel=1) as handle:
                handle.write(self.vcf_text)
        self.phenotypes.to_csv(paths["phenotypes"], sep="\t", index=False)
        paths["truth"].write_text(json.dumps(self.truth, indent=1))
        return paths


DEMOGRAPHIES = ("constant", "bottleneck", "expansion", "demes")
INTERACTION_FORMS = ("product", "one_carrier", "both_dominant", "both_recessive", "threshold")


def _ancestry(n_individuals: int, length: int, seed: int, population_size: float, mutation_rate: float,
              demography: str = "constant"):
    """An msprime genealogy with mutations; returns (tree sequence, deme of each individual or None).

    constant: one population of `population_size`; bottleneck: a 20-fold size drop 2,000-4,000 generations ago;
    expansion: exponential growth to `population_size` from a tenth of it 1,000 generations ago; demes: three
    populations of a third the size each, exchanging 1 in 20,000 migrants per generation (population structure).
    """
    import msprime

    if demography not in DEMOGRAPHIES:
        raise ValueError(f"demography must be one of {DEMOGRAPHIES}")
    model, samples = None, n_individuals
    if demography == "bottleneck":
        model = msprime.Demography()
        model.add_population(name="pop", initial_size=population_size)
        model.add_population_parameters_change(time=2_000, initial_size=population_size / 20, population="pop")
        model.add_population_parameters_change(time=4_000, initial_size=population_size, population="pop")
    elif demography == "expansion":
        model = msprime.Demography()
        model.add_population(name="pop", initial_size=population_size, growth_rate=np.log(10) / 1_000)
        model.add_population_parameters_change(time=1_000, initial_size=population_size / 10, growth_rate=0,
                                               population="pop")
    elif demography == "demes":
        model = msprime.Demography.island_model([population_size / 3] * 3, migration_rate=5e-5)
        sizes = [n_individuals // 3 + (k < n_individuals % 3) for k in range(3)]
        samples = {f"pop_{k}": size for k, size in enumerate(sizes)}
    kwargs = {"demography": model} if model is not None else {"population_size": population_size}
    ts = msprime.sim_ancestry(samples=samples, ploidy=2, sequence_length=length, recombination_rate=1e-8,
                              random_seed=seed + 1, **kwargs)
    ts = msprime.sim_mutations(ts, rate=mutation_rate, random_seed=seed + 1)
    demes = None
    if demography == "demes":
        demes = np.asarray([ts.node(ind.nodes[0]).population for ind in ts.individuals()])
    return ts, demes


def _biallelic_dosages(ts) -> tuple[np.ndarray, np.ndarray]:
    """Diploid alt-allele dosages (individuals x sites) of biallelic sites, and their VCF positions."""
    keep, dosages = [], []
    for variant in ts.variants():
        if len(variant.alleles) != 2:
            continue
        haplotypes = variant.genotypes
        dosages.append(haplotypes[0::2] + haplotypes[1::2])
        keep.append(int(variant.site.position) + 1)  # 1-based, as written to the VCF and as FASTA columns count
    return np.asarray(dosages, dtype=np.float64).T, np.asarray(keep)


def _pick_common(dosage: np.ndarray, rng, count: int, *, exclude_r2_with: list[int] = (), max_r2: float = 0.05,
                 maf_range=(0.2, 0.5)) -> list[int]:
    freq = dosage.mean(0) / 2
    maf = np.minimum(freq, 1 - freq)
    candidates = [i for i in rng.permutation(dosage.shape[1]) if maf_range[0] <= maf[i] <= maf_range[1]]
    chosen: list[int] = []
    for i in candidates:
        others = list(exclude_r2_with) + chosen
        if all(np.corrcoef(dosage[:, i], dosage[:, j])[0, 1] ** 2 < max_r2 for j in others):
            chosen.append(i)
        if len(chosen) == count:
            return chosen
    raise RuntimeError("the simulated region has too few common, unlinked sites; use a longer region or more diversity")


def _plant_sites(scenario: str, dosage: np.ndarray, rng, maf_range: tuple[float, float] | None = None) -> list[int]:
    """The columns that carry the planted effect: three common sites (additive), two unlinked ones (pair)."""
    if scenario == "additive":
        return _pick_common(dosage, rng, 3, max_r2=0.3, maf_range=maf_range or (0.1, 0.5))
    if scenario == "pair":
        try:
            return _pick_common(dosage, rng, 2, maf_range=maf_range or (0.3, 0.5))
        except RuntimeError:  # little diversity: accept less common, slightly linked sites
            low, high = maf_range or (0.3, 0.5)
            return _pick_common(dosage, rng, 2, maf_range=(max(0.01, low / 2), high), max_r2=0.1)
    return []


def interaction_values(form: str, dosage_a: np.ndarray, dosage_b: np.ndarray) -> np.ndarray:
    """The two-site function a planted pair adds to the liability, from minor-allele counts (0/1/2) of each site.

    product: centred dosage product with no marginal effect; one_carrier: exactly one of the two sites carries the
    minor allele; both_dominant: both carry it; both_recessive: both are homozygous for it; threshold: three or more
    minor alleles over the two sites (compensation: one site's alleles stand in for the other's).
    """
    minor_a = dosage_a if dosage_a.mean() <= 1 else 2 - dosage_a
    minor_b = dosage_b if dosage_b.mean() <= 1 else 2 - dosage_b
    if form == "product":
        a = (minor_a - minor_a.mean()) / max(minor_a.std(), 1e-9)
        b = (minor_b - minor_b.mean()) / max(minor_b.std(), 1e-9)
        value = a * b
        value -= np.polyval(np.polyfit(a, value, 1), a)  # no marginal effect, even in-sample
        return value - np.polyval(np.polyfit(b, value, 1), b)
    if form == "one_carrier":
        return (((minor_a > 0).astype(int) + (minor_b > 0)) == 1).astype(float)
    if form == "both_dominant":
        return ((minor_a > 0) & (minor_b > 0)).astype(float)
    if form == "both_recessive":
        return ((minor_a == 2) & (minor_b == 2)).astype(float)
    if form == "threshold":
        return (minor_a + minor_b >= 3).astype(float)
    raise ValueError(f"form must be one of {INTERACTION_FORMS}")


def simulate_cohort(scenario: str = "additive", *, n_individuals: int = 1000, length: int = 2000, seed: int = 0,
                    trait: str = "binary", population_size: float = 1e5, mutation_rate: float = 1e-7,
                    variance_explained: float | None = None, covariates: bool = False, form: str = "product",
                    maf: tuple[float, float] | None = None, demography: str = "constant",
                    deme_shift: float = 0.5) -> Cohort:
    """One cohort: genotypes, a phenotype with a planted truth, and that truth.

    scenario: "additive" (three sites, each explaining `variance_explained` of the liability), "pair" (two unlinked
    sites acting together in the given `form`, see `interaction_values`, explaining `variance_explained`) or "null".
    maf: the range the planted sites' minor allele frequencies are drawn from (default 0.1-0.5 additive, 0.3-0.5 pair).
    demography: see `_ancestry`; with "demes" the trait mean also differs between demes by `deme_shift` SD per deme
    (stratification), and the table gets a `population` column a user can give as a covariate.
    trait: "binary" (liability threshold at the median: a balanced case-control sample) or "quantitative".
    A genealogy without the sites a scenario plants (little diversity in a short region) is drawn again with
    seed + 10,007 k (k = 1..4); truth["ancestry_seed"] says which one was used.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}")
    if form not in INTERACTION_FORMS:
        raise ValueError(f"form must be one of {INTERACTION_FORMS}")
    for attempt in range(5):  # a genealogy without the common, unlinked sites the scenario plants is drawn again
        ancestry_seed = seed + 10_007 * attempt
        rng = np.random.default_rng(ancestry_seed)
        ts, demes = _ancestry(n_individuals, length, ancestry_seed, population_size, mutation_rate, demography)
        dosage, positions = _biallelic_dosages(ts)
        try:
            planted = _plant_sites(scenario, dosage, rng, maf)
            break
        except RuntimeError:
            if attempt == 4:
                raise
    standard = (dosage - dosage.mean(0)) / np.maximum(dosage.std(0), 1e-9)
    genetic = np.zeros(n_individuals)
    truth: dict = {"scenario": scenario, "trait": trait, "seed": seed, "ancestry_seed": ancestry_seed,
                   "additive": [], "pair": [], "form": form if scenario == "pair" else None, "demography": demography}
    if scenario == "additive":
        share = variance_explained or (0.06 if trait == "binary" else 0.04)
        for i in planted:
            genetic += np.sqrt(share) * standard[:, i] * rng.choice([-1, 1])
        truth["additive"] = [int(positions[i]) for i in planted]
    elif scenario == "pair":
        share = variance_explained or (0.2 if trait == "binary" else 0.12)
        a, b = planted
        value = interaction_values(form, dosage[:, a], dosage[:, b])
        if value.std() == 0:
            raise RuntimeError(f"the planted {form} pair has no carriers at this allele frequency; use a larger maf")
        genetic += np.sqrt(share) * (value - value.mean()) / value.std()
        truth["pair"] = [int(positions[a]), int(positions[b])]
        truth["pair_maf"] = [round(float(min(f, 1 - f)), 3) for f in dosage[:, [a, b]].mean(0) / 2]
    noise_share = 1 - genetic.var()
    liability = genetic + rng.normal(0, np.sqrt(max(noise_share, 0.05)), n_individuals)
    samples = [f"tsk_{i}" for i in range(n_individuals)]
    table = {"sample": samples}
    if demes is not None:
        liability += deme_shift * (demes - demes.mean())
        table["population"] = [f"deme{d}" for d in demes]
    if covariates:
        age = rng.normal(50, 10, n_individuals).round(1)
        sex = rng.choice(["F", "M"], n_individuals)
        liability += 0.3 * (age - 50) / 10 + 0.3 * (sex == "M")
        table.update(age=age, sex=sex)
    if trait == "binary":
        table["status"] = (liability > np.median(liability)).astype(int)
    else:
        table["yield"] = (10 + 2 * liability).round(4)
    buffer = io.StringIO()
    ts.write_vcf(buffer, position_transform=lambda x: np.asarray(x, dtype=int) + 1)
    reference = "".join(rng.choice(list("ACGT"), length))

    def haplotypes() -> dict[str, str]:
        names = (f"{s}_h{h}" for s in samples for h in (1, 2))
        return dict(zip(names, ts.alignments(reference_sequence=reference)))

    return Cohort(buffer.getvalue(), pd.DataFrame(table), truth, haplotypes)


# Well-known transcription-factor motifs to plant: NF-kB and the E-box (bHLH) with flanks.
PLANTED_MOTIFS = {"nfkb": "GGGAATTTCC", "ebox": "GCCACGTGGC"}


def reverse_complement(sequence: str) -> str:
    return sequence[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def simulate_labelled_sequences(folder: Path | str, *, motifs: dict[str, str] | None = None, n_per_class: int = 150,
                                length: int = 200, length_spread: int = 40, seed: int = 0, gc: float = 0.45,
                                mutation_rate: float = 0.05) -> dict[str, Path]:
    """Labelled sequences with a planted motif per class, for tests and the demo of sequence classification.

    Each motif class gets its motif once per sequence, at a random place and on a random strand, each base
    mutated with `mutation_rate`; the 'background' class has none. Lengths vary by +-`length_spread` so that
    padding is exercised. Writes sequences.fasta, labels.tsv (id, label) and truth.json into `folder`.
    """
    motifs = motifs or PLANTED_MOTIFS
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    records, rows = [], []
    for label in [*motifs, "background"]:
        for k in range(n_per_class):
            size = int(length + rng.integers(-length_spread, length_spread + 1))
            bases = rng.choice(list("ACGT"), size, p=weights)
            if label in motifs:
                site = list(motifs[label] if rng.random() < 0.5 else reverse_complement(motifs[label]))
                for i in np.flatnonzero(rng.random(len(site)) < mutation_rate):
                    site[i] = rng.choice([b for b in "ACGT" if b != site[i]])
                start = int(rng.integers(0, size - len(site)))
                bases[start:start + len(site)] = site
            name = f"{label}_{k:04d}"
            records.append(f">{name}\n{''.join(bases)}\n")
            rows.append((name, label))
    order = rng.permutation(len(records))
    paths = {"sequences": folder / "sequences.fasta", "labels": folder / "labels.tsv", "truth": folder / "truth.json"}
    paths["sequences"].write_text("".join(records[i] for i in order))
    pd.DataFrame([rows[i] for i in order], columns=["id", "label"]).to_csv(paths["labels"], sep="\t", index=False)
    paths["truth"].write_text(json.dumps({"motifs": motifs, "seed": seed}, indent=1))
    return paths
