"""BGEN files (imputed genotypes) as association input: read as their VCF is where the calls are sure, as expected
dosages where they are not, with their .sample file's ids, and one line on a broken file.

The files are written by the `bgen` package (the reader's own writer) from simulated cohorts' VCFs, so each test
compares two readings of the same genotypes.
"""
import html
import json

import numpy as np
import pytest

from biolens.errors import InputError
from biolens.readers.variants import read_genotypes, read_vcf
from biolens.simulate import simulate_cohort

from conftest import biolens, one_line_error


def _probabilities(dosage: np.ndarray, blur: float, rng) -> np.ndarray:
    """Genotype probabilities (0/0, 0/1, 1/1) of diploid dosages; up to `blur` of each individual's certainty
    moved to a neighbouring genotype, as an imputation's uncertainty does; missing calls stay NaN."""
    called = np.nan_to_num(dosage).astype(int)
    p = np.eye(3)[called]
    if blur:
        neighbour = np.where(called == 1, rng.choice([0, 2], len(called)), 1)
        shift = blur * rng.random(len(dosage))[:, None]
        p = (1 - shift) * p + shift * np.eye(3)[neighbour]
    p[np.isnan(dosage)] = np.nan
    return p


def _write_bgen(vcf, path, *, ids_in_file=True, blur=0.0, hide=0.0, seed=0):
    """The VCF's sites as a BGEN (hard calls, or blurred ones), its ids in the file or in a .sample beside it."""
    import bgen

    genotypes = read_vcf(vcf)
    rng = np.random.default_rng(seed)
    dosage = genotypes.dosage.copy()
    if hide:
        dosage[rng.random(dosage.shape) < hide] = np.nan
    with bgen.BgenWriter(str(path), n_samples=len(genotypes.samples),
                         samples=genotypes.samples if ids_in_file else []) as writer:
        for j in range(genotypes.n_sites):
            writer.add_variant(varid=f"v{j}", rsid=f"rs{j}", chrom=genotypes.chrom[j], pos=int(genotypes.pos[j]),
                               alleles=[genotypes.ref[j], genotypes.alt[j]],
                               genotypes=_probabilities(dosage[:, j], blur, rng))
    if not ids_in_file:
        path.with_suffix(".sample").write_text("ID_1 ID_2 missing\n0 0 0\n"
                                               + "".join(f"{s} {s} 0\n" for s in genotypes.samples))
    return dosage


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bgen")
    paths = simulate_cohort("additive", trait="quantitative", seed=5, n_individuals=120, length=1000).write(folder)
    paths["dosage"] = _write_bgen(paths["genotypes"], folder / "cohort.bgen", hide=0.02)
    return paths


def test_a_bgen_of_hard_calls_reads_as_its_vcf(cohort):
    from biolens.config import AssociateConfig
    from biolens.tasks import associate as task

    folder = cohort["genotypes"].parent
    from_bgen, vcf = read_genotypes(folder / "cohort.bgen"), read_vcf(cohort["genotypes"])
    np.testing.assert_allclose(from_bgen.dosage, cohort["dosage"], atol=1e-6)
    assert from_bgen.samples == vcf.samples and from_bgen.alt == vcf.alt and from_bgen.ref == vcf.ref
    assert list(from_bgen.pos) == list(vcf.pos) and from_bgen.chrom == vcf.chrom
    assert from_bgen.notes["missing_calls"] == int(np.isnan(cohort["dosage"]).sum()) > 0
    assert from_bgen.notes["fractional_dosages"] == 0 and "warnings" not in from_bgen.notes
    config = AssociateConfig(phenotypes=str(cohort["phenotypes"]), trait="yield", genotypes=str(folder / "cohort.bgen"))
    config.check()
    data = task._load(config)
    assert data.notes["format"].startswith("BGEN") and data.notes["imputed_calls"] > 0


def test_imputed_dosages_are_read_as_expected_copies_and_said(cohort, tmp_path):
    truth = read_vcf(cohort["genotypes"]).dosage
    _write_bgen(cohort["genotypes"], tmp_path / "imputed.bgen", blur=0.4, ids_in_file=False)
    imputed = read_genotypes(tmp_path / "imputed.bgen")
    assert imputed.samples == read_vcf(cohort["genotypes"]).samples  # from the .sample beside it
    # expected dosage = P(0/1) + 2 P(1/1): within the blur of the true call, never beyond 0..2 (8-bit probabilities)
    assert np.all(np.abs(imputed.dosage - truth) <= 0.4 + 0.02) and imputed.dosage.min() >= 0
    assert imputed.dosage.max() <= 2.0 + 1e-6
    assert imputed.notes["fractional_dosages"] > 0.3 * truth.size
    (warning,) = imputed.notes["warnings"]
    assert "more than 0.05 from a whole number" in warning and "round them" in warning


def test_multiallelic_bgen_sites_are_split_into_one_dosage_per_allele(tmp_path):
    import bgen

    unphased = np.array([[1, 0, 0, 0, 0, 0],      # A/A
                         [0, 0, 0, 0, 1, 0],      # G/T
                         [0, 0, 0, 0, 0, 1],      # T/T
                         [0, 0.5, 0.5, 0, 0, 0],  # A/G or G/G
                         [np.nan] * 6])
    phased = np.array([[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 1, 0], [0, 0, 1, 0.2, 0.8, 0], [1, 0, 0, 1, 0, 0],
                       [np.nan] * 6])
    with bgen.BgenWriter(str(tmp_path / "m.bgen"), n_samples=5, samples=list("abcde")) as writer:
        writer.add_variant(varid="m", rsid="m", chrom="1", pos=10, alleles=["A", "G", "T"], genotypes=unphased)
        writer.add_variant(varid="p", rsid="p", chrom="1", pos=20, alleles=["C", "A", "G"], genotypes=phased,
                           phased=True)
    genotypes = read_genotypes(tmp_path / "m.bgen")
    assert genotypes.alt == ["G", "T", "A", "G"] and list(genotypes.pos) == [10, 10, 20, 20]
    assert genotypes.notes["multiallelic_split"] == 2
    np.testing.assert_allclose(genotypes.dosage[:4, 0], [0, 1, 0, 1.5], atol=0.01)  # copies of G
    np.testing.assert_allclose(genotypes.dosage[:4, 1], [0, 1, 2, 0], atol=0.01)    # copies of T
    np.testing.assert_allclose(genotypes.dosage[:4, 2], [0, 2, 0.8, 0], atol=0.01)  # haplotypes carrying A
    np.testing.assert_allclose(genotypes.dosage[:4, 3], [1, 0, 1, 0], atol=0.01)    # and G
    assert np.isnan(genotypes.dosage[4]).all()


def test_males_one_allele_x_calls_in_a_bgen_are_read_as_their_vcf_reads_them(tmp_path):
    """UK Biobank-style X: men's calls of ploidy 1 beside women's of ploidy 2 in the same variants."""
    import bgen

    ploidy = np.array([1, 2, 1, 2])  # a and c men
    biallelic = np.array([[0, 1, np.nan], [0, 1, 0], [1, 0, np.nan], [0, 0, 1]])  # G, A/G, A, G/G
    three = np.array([[0, 0, 1, np.nan, np.nan, np.nan],  # T (A, G, T: a man's order is one allele each)
                      [0, 0, 0, 0, 1, 0],                  # G/T (colex: AA AG GG AT GT TT)
                      [0, 0.5, 0.5, np.nan, np.nan, np.nan],  # G or T, unsure
                      [np.nan] * 6])
    with bgen.BgenWriter(str(tmp_path / "x.bgen"), n_samples=4, samples=list("abcd")) as writer:
        writer.add_variant(varid="v", rsid="v", chrom="X", pos=10, alleles=["A", "G"], genotypes=biallelic,
                           ploidy=ploidy)
        writer.add_variant(varid="m", rsid="m", chrom="X", pos=20, alleles=["A", "G", "T"], genotypes=three,
                           ploidy=ploidy)
        phased = np.array([[0, 0, 1] + [np.nan] * 3, [0, 1, 0, 0, 0, 1], [1, 0, 0] + [np.nan] * 3, [np.nan] * 6])
        writer.add_variant(varid="p", rsid="p", chrom="X", pos=30, alleles=["A", "G", "T"], genotypes=phased,
                           ploidy=ploidy, phased=True)  # T, G|T, A, missing
    genotypes = read_genotypes(tmp_path / "x.bgen")
    np.testing.assert_allclose(genotypes.dosage[:3, 3:], [[0, 1], [1, 1], [0, 0]], atol=0.01)
    assert np.isnan(genotypes.dosage[3, 3:]).all()
    np.testing.assert_allclose(genotypes.dosage[:, 0], [1, 1, 0, 2], atol=0.01)
    np.testing.assert_allclose(genotypes.dosage[:3, 1], [0, 1, 0.5], atol=0.01)  # copies of G
    np.testing.assert_allclose(genotypes.dosage[:3, 2], [1, 1, 0.5], atol=0.01)  # copies of T
    assert np.isnan(genotypes.dosage[3, 1:]).all()
    assert genotypes.notes["haploid_individuals"] == 2 and list(genotypes.copies) == [1, 2, 1, 2]
    # G: 1 + 1 + 0 + 2 alt copies over 1 + 2 + 1 + 2 allele copies, not the mean dosage over two
    assert genotypes.allele_frequency()[0] == pytest.approx(4 / 6, abs=0.01)
    (warning,) = [w for w in genotypes.notes["warnings"] if "haploid" in w]  # the other: the unsure call
    assert "2 individuals have one-allele (haploid) calls" in warning and "--covariates sex" in warning


def test_a_bgen_without_ids_or_readable_content_gives_one_line(cohort, tmp_path):
    _write_bgen(cohort["genotypes"], tmp_path / "anon.bgen", ids_in_file=False)
    (tmp_path / "anon.sample").unlink()
    with pytest.raises(InputError, match=r"anon\.bgen: the file holds no sample ids and no anon\.sample"):
        read_genotypes(tmp_path / "anon.bgen")
    (tmp_path / "broken.bgen").write_bytes(b"\x14\x00\x00\x00" + b"not a bgen at all" * 20)
    message = one_line_error(biolens("associate", "--genotypes", tmp_path / "broken.bgen", "--phenotypes",
                                     cohort["phenotypes"], "--trait", "yield", "--out", tmp_path / "run", check=False))
    assert "broken.bgen: not a readable BGEN file" in message


def test_an_association_run_on_a_bgen_with_its_sample_file_fingerprints_both(cohort, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _write_bgen(cohort["genotypes"], folder / "c.bgen", ids_in_file=False, blur=0.1)
    out = tmp_path / "run"
    biolens("associate", "--genotypes", folder / "c.bgen", "--phenotypes", cohort["phenotypes"], "--trait", "yield",
            "--out", out, "--permutations", "2", "--folds", "2")
    info = json.loads((out / "run.json").read_text())
    assert info["data_notes"]["format"].startswith("BGEN") and info["data_notes"]["unmatched_genotyped"] == 0
    assert "bgen" in info["versions"]
    report = html.unescape((out / "report.html").read_text())
    assert "from the BGEN's genotype probabilities" in report and "from a whole number" in report
    variants = (out / "variants.tsv").read_text().splitlines()
    assert len(variants) > 10
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    sample = folder / "c.sample"
    lines = sample.read_text().splitlines()
    sample.write_text("\n".join(lines[:2] + lines[3:4] + lines[2:3] + lines[4:]) + "\n")  # two ids swapped
    assert "data fingerprint differs" in one_line_error(biolens("associate", "--resume", out, check=False))


def test_structure_markers_from_a_bgen_give_the_components_of_their_vcf(tmp_path, monkeypatch):
    from biolens.readers.variants import structure_components

    genome = simulate_cohort("null", trait="quantitative", seed=99, n_individuals=150, length=30_000,
                             mutation_rate=1e-8).write(tmp_path)["genotypes"]
    _write_bgen(genome, tmp_path / "genome.bgen")
    samples = read_vcf(genome).samples[::-1][:140]  # in another order, some left out
    np.testing.assert_allclose(structure_components(tmp_path / "genome.bgen", samples, 4),
                               structure_components(genome, samples, 4), atol=1e-5)
    monkeypatch.setattr("biolens.readers.variants.MAX_STRUCTURE_MARKERS", 60)
    notes: dict = {}
    structure_components(tmp_path / "genome.bgen", samples, 4, notes)
    assert f"of 60, read evenly spaced from {read_vcf(genome).n_sites}" in notes["structure_markers"]
