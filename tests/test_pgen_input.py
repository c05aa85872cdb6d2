"""PLINK 2 filesets (.pgen/.pvar/.psam) as association input: read as their VCF is, errors named by file and line.

The filesets are written by pgenlib (plink-ng's own library) from simulated cohorts' VCFs, so each test compares
two readings of the same genotypes.
"""
import json

import numpy as np
import pytest

from biolens.errors import InputError
from biolens.readers.variants import read_genotypes, read_vcf
from biolens.simulate import simulate_cohort

from conftest import biolens, one_line_error


def _write_pgen(vcf, prefix, *, hide=0.0, dosages=None, psam_header="#IID\tSEX", families=None):
    """The VCF's calls (or `dosages`, individuals x sites) as a PLINK 2 fileset; `hide` of the calls missing."""
    import pgenlib

    genotypes = read_vcf(vcf)
    calls = genotypes.dosage.copy()
    if hide:
        calls[np.random.default_rng(0).random(calls.shape) < hide] = np.nan
    n = len(genotypes.samples)
    writer = pgenlib.PgenWriter(f"{prefix}.pgen".encode(), n, variant_ct=genotypes.n_sites, nonref_flags=False,
                                dosage_present=dosages is not None)
    for j in range(genotypes.n_sites):
        if dosages is None:
            writer.append_biallelic(np.ascontiguousarray(np.nan_to_num(calls[:, j], nan=-9).astype(np.int8)))
        else:
            writer.append_dosages(np.ascontiguousarray(dosages[:, j], dtype=np.float64))
    writer.close()
    (prefix.parent / f"{prefix.name}.pvar").write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n" + "".join(
            f"{c}\t{p}\tv{j}\t{r}\t{a}\n" for j, (c, p, r, a) in enumerate(zip(genotypes.chrom, genotypes.pos,
                                                                               genotypes.ref, genotypes.alt))))
    ids = [f"{f}\t{s}" for f, s in zip(families, genotypes.samples)] if families else genotypes.samples
    (prefix.parent / f"{prefix.name}.psam").write_text(psam_header + "\n" + "".join(f"{i}\t{1 + k % 2}\n"
                                                                                   for k, i in enumerate(ids)))
    return calls


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pgen")
    paths = simulate_cohort("additive", trait="quantitative", seed=5, n_individuals=120, length=1000).write(folder)
    paths["calls"] = _write_pgen(paths["genotypes"], folder / "cohort", hide=0.02)
    return paths


def test_a_plink2_fileset_reads_as_its_vcf_whether_named_by_prefix_pgen_pvar_or_psam(cohort):
    from biolens.config import AssociateConfig
    from biolens.tasks import associate as task

    folder = cohort["genotypes"].parent
    pgen, vcf = read_genotypes(folder / "cohort.pgen"), read_vcf(cohort["genotypes"])
    np.testing.assert_array_equal(pgen.dosage, cohort["calls"])
    assert pgen.samples == vcf.samples and pgen.alt == vcf.alt and pgen.ref == vcf.ref
    assert list(pgen.pos) == list(vcf.pos) and pgen.chrom == vcf.chrom
    assert pgen.notes["missing_calls"] == int(np.isnan(cohort["calls"]).sum()) > 0
    assert pgen.notes["fractional_dosages"] == 0 and "warnings" not in pgen.notes
    for name in ("cohort", "cohort.pvar", "cohort.psam", "cohort.pgen"):
        config = AssociateConfig(phenotypes=str(cohort["phenotypes"]), trait="yield", genotypes=str(folder / name))
        config.check()
        assert config.genotypes == str(folder / "cohort.pgen")
    data = task._load(config)
    assert data.notes["format"].startswith("PLINK 2") and data.notes["imputed_calls"] > 0


def test_a_zstd_compressed_pvar_reads_as_the_plain_one(cohort, tmp_path):
    """PLINK 2 writes `.pvar.zst` under `--make-pgen vzs`; pgenlib decompresses it."""
    import shutil

    import zstandard

    folder = cohort["genotypes"].parent
    for suffix in (".pgen", ".psam"):
        shutil.copy(folder / f"cohort{suffix}", tmp_path / f"packed{suffix}")
    (tmp_path / "packed.pvar.zst").write_bytes(zstandard.ZstdCompressor().compress((folder / "cohort.pvar").read_bytes()))
    plain, packed = read_genotypes(folder / "cohort.pgen"), read_genotypes(tmp_path / "packed.pgen")
    np.testing.assert_array_equal(packed.dosage, plain.dosage)
    assert (packed.chrom, list(packed.pos), packed.ref, packed.alt) == (plain.chrom, list(plain.pos), plain.ref,
                                                                        plain.alt)
    from biolens.config import AssociateConfig

    for name in ("packed", "packed.pvar.zst"):
        config = AssociateConfig(phenotypes=str(cohort["phenotypes"]), trait="yield", genotypes=str(tmp_path / name))
        config.check()
        assert config.genotypes == str(tmp_path / "packed.pgen")
    (tmp_path / "packed.pvar.zst").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(40))   # a zstd magic, then nothing sound
    with pytest.raises(InputError, match=r"packed\.pvar\.zst: not a readable \.pvar"):
        read_genotypes(tmp_path / "packed.pgen")


def test_dosages_multiallelic_sites_and_family_ids_of_a_plink2_fileset(cohort, tmp_path):
    import pgenlib

    truth = read_vcf(cohort["genotypes"])
    blurred = np.clip(truth.dosage + np.random.default_rng(1).uniform(-0.3, 0.3, truth.dosage.shape), 0, 2)
    families = ["fA" if k % 2 else "fB" for k in range(len(truth.samples))]
    _write_pgen(cohort["genotypes"], tmp_path / "imputed", dosages=blurred, psam_header="#FID\tIID\tSEX",
                families=families)
    imputed = read_genotypes(tmp_path / "imputed.pgen")
    np.testing.assert_allclose(imputed.dosage, blurred, atol=1e-4)  # PLINK 2 stores dosages in 1/16384 steps
    assert imputed.notes["fractional_dosages"] > 0.5 * blurred.size and "round them" in imputed.notes["warnings"][0]
    assert imputed.samples == truth.samples  # FIDs named but every IID distinct: IIDs, as PLINK 2 keys them

    writer = pgenlib.PgenWriter(str(tmp_path / "multi.pgen").encode(), 3, variant_ct=1, nonref_flags=False,
                                allele_ct_limit=3)
    writer.append_alleles(np.array([0, 2, 1, 2, -9, -9], dtype=np.int32), allele_ct=3)
    writer.close()
    (tmp_path / "multi.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n7\t40\tm\tA\tG,T\n")
    (tmp_path / "multi.psam").write_text("#FID\tIID\tSEX\nf1\tx\t1\nf2\tx\t2\nf3\ty\t1\n")
    multi = read_genotypes(tmp_path / "multi.pgen")
    assert multi.alt == ["G", "T"] and multi.notes["multiallelic_split"] == 1 and multi.chrom == ["7", "7"]
    np.testing.assert_array_equal(multi.dosage[:2], [[0, 1], [1, 1]])
    assert np.isnan(multi.dosage[2]).all()
    assert multi.samples == ["f1_x", "f2_x", "f3_y"] and "FID_IID" in multi.notes["warnings"][0]


def test_a_broken_plink2_fileset_gives_one_line_naming_the_file_and_line(cohort, tmp_path):
    _write_pgen(cohort["genotypes"], tmp_path / "x")
    (tmp_path / "x.psam").rename(tmp_path / "kept.psam")
    message = one_line_error(biolens("associate", "--genotypes", tmp_path / "x.pgen", "--phenotypes",
                                     cohort["phenotypes"], "--trait", "yield", "--out", tmp_path / "run", check=False))
    assert message.startswith("error:") and "x.psam" in message and "missing" in message
    lines = (tmp_path / "kept.psam").read_text().splitlines()
    (tmp_path / "x.psam").write_text("\n".join(lines[:3] + [lines[3].split("\t")[0]] + lines[4:]) + "\n")
    with pytest.raises(InputError, match=r"x\.psam, line 4: 1 column\(s\), expected 2 \(IID SEX\)"):
        read_genotypes(tmp_path / "x.pgen")
    (tmp_path / "kept.psam").replace(tmp_path / "x.psam")
    pvar = (tmp_path / "x.pvar").read_text().splitlines()
    fields = pvar[6].split("\t")
    (tmp_path / "x.pvar").write_text("\n".join(pvar[:6] + ["\t".join(fields[:1] + ["4x0"] + fields[2:])] + pvar[7:]))
    with pytest.raises(InputError, match=r"x\.pvar, line 7: position '4x0' is not a whole number"):
        read_genotypes(tmp_path / "x.pgen")
    (tmp_path / "x.pvar").write_text("\n".join(["#CHROM\tPOS\tID\tREF"] + pvar[2:]))
    with pytest.raises(InputError, match=r"x\.pvar, line 1: the header lacks ALT"):
        read_genotypes(tmp_path / "x.pgen")
    _write_pgen(cohort["genotypes"], tmp_path / "x")
    (tmp_path / "x.pgen").write_bytes((tmp_path / "x.pgen").read_bytes()[:40])
    with pytest.raises(InputError, match=r"x\.pgen: "):
        read_genotypes(tmp_path / "x.pgen")


def test_an_association_run_on_a_plink2_fileset_with_its_psam_phenotypes_fingerprints_all_three(cohort, tmp_path):
    import pandas as pd

    folder = tmp_path / "data"
    folder.mkdir()
    _write_pgen(cohort["genotypes"], folder / "c")
    traits = pd.read_csv(cohort["phenotypes"], sep="\t").set_index("sample")["yield"]
    samples = read_vcf(cohort["genotypes"]).samples
    values = ["-9", "NA"] + [f"{traits[s]:.6f}" for s in samples[2:]]  # PLINK's missing codes
    (folder / "c.psam").write_text("#IID\tSEX\tyield\n" + "".join(f"{s}\t{1 + k % 2}\t{v}\n"
                                                                   for k, (s, v) in enumerate(zip(samples, values))))
    out = tmp_path / "run"
    biolens("associate", "--genotypes", folder / "c", "--phenotypes", folder / "c.psam", "--trait", "yield",
            "--covariates", "SEX", "--out", out, "--permutations", "2", "--folds", "2")
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["genotypes"] == str(folder / "c.pgen") and info["data_notes"]["format"].startswith("PLINK 2")
    assert info["data_notes"]["psam_phenotype_missing"] == 2 and info["data_notes"]["missing_trait"] == 2
    assert info["data_notes"]["psam_phenotype_coding"] == "-9 missing" and "pgenlib" in info["versions"]
    assert "ALT dosage" in (out / "report.html").read_text()
    assert len((out / "variants.tsv").read_text().splitlines()) > 10
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    pvar = folder / "c.pvar"
    pvar.write_text(pvar.read_text().replace("\tv3\t", "\trs3\t", 1))  # one variant renamed, nothing else
    assert "data fingerprint differs" in one_line_error(biolens("associate", "--resume", out, check=False))
