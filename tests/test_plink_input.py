"""PLINK 1 binary filesets (.bed/.bim/.fam) as association input: read as their VCF is, errors named by file and line.

The filesets are written by bed-reader (the library PLINK users' Python tools write with) from simulated cohorts'
VCFs, so each test can compare the two readings of the same genotypes.
"""
import json
import shutil

import numpy as np
import pytest

from biolens.errors import InputError
from biolens.readers.variants import read_genotypes, read_vcf, structure_components
from biolens.simulate import simulate_cohort

from conftest import biolens, one_line_error


def _write_plink(vcf, prefix, *, fid=None, hide=0.0):
    """The VCF's genotypes as a PLINK fileset counting the ALT allele (allele 1), `hide` of the calls missing."""
    from bed_reader import to_bed

    genotypes = read_vcf(vcf)
    dosage = genotypes.dosage.copy()
    if hide:
        dosage[np.random.default_rng(0).random(dosage.shape) < hide] = np.nan
    to_bed(f"{prefix}.bed", dosage, properties={
        "fid": fid or ["0"] * len(genotypes.samples), "iid": genotypes.samples, "chromosome": genotypes.chrom,
        "bp_position": genotypes.pos, "allele_1": genotypes.alt, "allele_2": genotypes.ref})
    return dosage


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plink")
    paths = simulate_cohort("additive", trait="quantitative", seed=5, n_individuals=120, length=1000).write(folder)
    paths["dosage"] = _write_plink(paths["genotypes"], folder / "cohort", hide=0.02)
    return paths


def test_a_plink_fileset_reads_as_its_vcf_whether_named_by_prefix_bed_bim_or_fam(cohort):
    from biolens.config import AssociateConfig
    from biolens.tasks import associate as task

    folder = cohort["genotypes"].parent
    plink = read_genotypes(folder / "cohort.bed")
    vcf = read_vcf(cohort["genotypes"])
    np.testing.assert_array_equal(plink.dosage, cohort["dosage"])
    assert plink.samples == vcf.samples and plink.alt == vcf.alt and plink.ref == vcf.ref
    assert list(plink.pos) == list(vcf.pos) and plink.chrom == vcf.chrom
    assert plink.notes["missing_calls"] == int(np.isnan(cohort["dosage"]).sum()) > 0
    for name in ("cohort", "cohort.bim", "cohort.fam", "cohort.bed"):
        config = AssociateConfig(phenotypes=str(cohort["phenotypes"]), trait="yield", genotypes=str(folder / name))
        config.check()
        assert config.genotypes == str(folder / "cohort.bed")
    data = task._load(config)
    assert data.notes["format"].startswith("PLINK") and data.notes["imputed_calls"] > 0
    assert len(data.genotypes.samples) == 120 and data.genotypes.n_sites > 10


def test_individuals_sharing_an_iid_across_families_are_named_fid_iid_and_said(cohort, tmp_path):
    samples = read_vcf(cohort["genotypes"]).samples
    families = ["famA" if k % 2 else "famB" for k in range(len(samples))]
    iids = [s if k > 1 else "ind" for k, s in enumerate(samples)]  # two individuals named ind, in two families
    from bed_reader import to_bed

    to_bed(tmp_path / "f.bed", np.zeros((len(samples), 2), dtype=np.float32),
           properties={"fid": families, "iid": iids, "bp_position": [1, 2]})
    genotypes = read_genotypes(tmp_path / "f.bed")
    assert genotypes.samples[:3] == ["famB_ind", "famA_ind", f"famB_{samples[2]}"]
    assert "FID_IID" in genotypes.notes["warnings"][0] and "ind" in genotypes.notes["warnings"][0]


def test_structure_markers_from_a_plink_fileset_give_the_components_of_their_vcf(tmp_path, monkeypatch):
    genome = simulate_cohort("null", trait="quantitative", seed=99, n_individuals=150, length=30_000,
                             mutation_rate=1e-8).write(tmp_path)["genotypes"]
    _write_plink(genome, tmp_path / "genome")
    samples = read_vcf(genome).samples[::-1][:140]  # in another order, some left out
    notes: dict = {}
    from_plink = structure_components(tmp_path / "genome.bed", samples, 4, notes)
    np.testing.assert_allclose(from_plink, structure_components(genome, samples, 4), atol=1e-6)
    assert "read evenly spaced" not in notes["structure_markers"]
    monkeypatch.setattr("biolens.readers.variants.MAX_STRUCTURE_MARKERS", 60)
    structure_components(tmp_path / "genome.bed", samples, 4, notes)
    records = read_genotypes(tmp_path / "genome.bed").n_sites
    assert f"of 60, read evenly spaced from {records}" in notes["structure_markers"]


def test_a_broken_plink_fileset_gives_one_line_naming_the_file_and_line(cohort, tmp_path):
    source = cohort["genotypes"].parent / "cohort"
    for suffix in (".bed", ".bim", ".fam"):
        shutil.copy(f"{source}{suffix}", tmp_path / f"x{suffix}")
    (tmp_path / "x.fam").rename(tmp_path / "kept.fam")
    message = one_line_error(biolens("associate", "--genotypes", tmp_path / "x.bed", "--phenotypes",
                                     cohort["phenotypes"], "--trait", "yield", "--out", tmp_path / "run", check=False))
    assert message.startswith("error:") and "x.fam" in message and "missing" in message
    lines = (tmp_path / "kept.fam").read_text().splitlines()
    (tmp_path / "x.fam").write_text("\n".join(lines[:2] + [lines[2].rsplit(maxsplit=1)[0]] + lines[3:]) + "\n")
    with pytest.raises(InputError, match=r"x\.fam, line 3: 5 column\(s\), expected 6"):
        read_genotypes(tmp_path / "x.bed")
    (tmp_path / "kept.fam").replace(tmp_path / "x.fam")
    bim = (tmp_path / "x.bim").read_text().splitlines()
    fields = bim[4].split("\t")
    (tmp_path / "x.bim").write_text("\n".join(bim[:4] + ["\t".join(fields[:3] + ["12k"] + fields[4:])] + bim[5:]) + "\n")
    with pytest.raises(InputError, match=r"x\.bim, line 5: site .* position '12k'"):
        read_genotypes(tmp_path / "x.bed")
    shutil.copy(f"{source}.bim", tmp_path / "x.bim")
    (tmp_path / "x.bed").write_bytes((tmp_path / "x.bed").read_bytes()[:-7])
    with pytest.raises(InputError, match=r"x\.bed: not a readable PLINK \.bed for the 120 individuals"):
        read_genotypes(tmp_path / "x.bed")


def test_the_fam_phenotype_and_sex_are_read_with_plinks_missing_codes(cohort, tmp_path):
    from biolens.readers.phenotypes import read_phenotypes

    lines = (cohort["genotypes"].parent / "cohort.fam").read_text().splitlines()
    codes = ["2", "1", "0", "-9"] + ["1", "2"] * 58

    def fam(phenotypes, name):
        rows = [line.split()[:4] + [("1", "2", "0")[k % 3], value] for k, (line, value) in enumerate(zip(lines, phenotypes))]
        (tmp_path / name).write_text("".join(" ".join(row) + "\n" for row in rows))
        return tmp_path / name

    binary = read_phenotypes(fam(codes, "b.fam"), "phenotype", ["sex"])
    assert binary.kind == "binary" and binary.notes["case_value"] == "2" and binary.notes["fam_phenotype_missing"] == 2
    assert binary.covariate_columns == ["sex=2"] and binary.notes["missing_covariate"] == 39  # sex 0: unknown
    assert binary.samples[0] == "tsk_0" and list(binary.y[:2]) == [1.0, 0.0]
    measured = read_phenotypes(fam(["0.5", "-9", "0", "1.25", "NA"] + ["2.0"] * 115, "q.fam"), "phenotype")
    assert measured.kind == "quantitative" and measured.notes["fam_phenotype_missing"] == 2
    assert list(measured.y[:3]) == [0.5, 0.0, 1.25]  # 0 is a measurement of a quantitative trait; -9 is missing
    with pytest.raises(InputError, match="phenotype column is missing .* for every individual"):
        read_phenotypes(fam(["-9"] * 120, "none.fam"), "phenotype")


def test_an_association_run_on_a_plink_fileset_with_its_fam_phenotype_fingerprints_all_three_files(cohort, tmp_path):
    import pandas as pd

    folder = tmp_path / "data"
    folder.mkdir()
    for suffix in (".bed", ".bim"):
        shutil.copy(cohort["genotypes"].parent / f"cohort{suffix}", folder / f"c{suffix}")
    traits = pd.read_csv(cohort["phenotypes"], sep="\t").set_index("sample")["yield"]
    lines = (cohort["genotypes"].parent / "cohort.fam").read_text().splitlines()
    (folder / "c.fam").write_text("".join(" ".join(line.split()[:5] + [f"{traits[line.split()[1]]:.6f}"]) + "\n"
                                          for line in lines))
    out = tmp_path / "run"
    biolens("associate", "--genotypes", folder / "c", "--phenotypes", folder / "c.fam", "--trait", "phenotype",
            "--out", out, "--permutations", "2", "--folds", "2")
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["genotypes"] == str(folder / "c.bed") and info["data_notes"]["format"].startswith("PLINK")
    assert info["data_notes"]["fam_phenotype_coding"] == "-9 missing" and info["data_notes"]["unmatched_genotyped"] == 0
    assert "allele 1 of the PLINK .bim" in (out / "report.html").read_text()
    assert len((out / "variants.tsv").read_text().splitlines()) > 10
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    bim = folder / "c.bim"
    bim.write_text(bim.read_text().replace("\t0.0\t", "\t0.5\t", 1))  # one site's centimorgans changed, nothing else
    assert "data fingerprint differs" in one_line_error(biolens("associate", "--resume", out, check=False))


def test_sites_of_two_chromosomes_are_named_and_drawn_apart_where_their_positions_repeat(cohort, tmp_path):
    """A fileset of two regions whose positions overlap: the report names each pair's sites chromosome:position, and
    the Manhattan plot lays the chromosomes end to end instead of over each other."""
    from biolens.report.association_figures import _chromosomes, _side_by_side

    for suffix in (".bed", ".fam"):
        shutil.copy(cohort["genotypes"].parent / f"cohort{suffix}", tmp_path / f"two{suffix}")
    lines = (cohort["genotypes"].parent / "cohort.bim").read_text().splitlines()
    half = len(lines) // 2
    first_of_second = int(lines[half].split("\t")[3])
    rows = [line.split("\t") for line in lines]
    for row in rows[half:]:  # the second half becomes chromosome 2, its positions starting again near 1
        row[0], row[3] = "2", str(int(row[3]) - first_of_second + 1)
    (tmp_path / "two.bim").write_text("".join("\t".join(row) + "\n" for row in rows))
    out = tmp_path / "run"
    biolens("associate", "--genotypes", tmp_path / "two.bed", "--phenotypes", cohort["phenotypes"], "--trait", "yield",
            "--out", out, "--permutations", "2", "--folds", "2")
    report = (out / "report.html").read_text()
    pairs = [line.split("\t") for line in (out / "interactions.tsv").read_text().splitlines()]
    header, top = pairs[0], pairs[1]
    named = f"{top[header.index('chrom_a')]}:{top[header.index('pos_a')]}"
    assert f"<td>{named}</td>" in report
    assert {row[header.index("chrom_a")] for row in pairs[1:]} | {row[header.index("chrom_b")] for row in pairs[1:]} \
        == {"1", "2"}
    genotypes = read_genotypes(tmp_path / "two.bed")
    groups = _chromosomes(genotypes.chrom, genotypes.n_sites)
    x, middles = _side_by_side(genotypes.pos, groups)
    assert [name for name, _ in groups] == ["1", "2"] and len(middles) == 2
    assert x[groups[1][1]].min() > x[groups[0][1]].max()  # chromosome 2 starts after chromosome 1 ends
    assert np.all(np.diff(x[groups[1][1]]) >= 0) and (out / "figures" / "manhattan.png").stat().st_size > 10_000
