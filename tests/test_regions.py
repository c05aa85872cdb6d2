"""`--region`: one stretch of a file of several chromosomes, read alike from a VCF (indexed or not), a PLINK 1 or 2
fileset and a BGEN, and named in the run."""
import gzip
import json
import shutil

import numpy as np
import pytest

from biolens.errors import InputError
from biolens.readers.regions import Region
from biolens.readers.variants import read_genotypes, read_vcf
from biolens.simulate import simulate_cohort

from conftest import biolens, one_line_error


@pytest.fixture(scope="module")
def two_chromosomes(tmp_path_factory):
    """A cohort's VCF written as chromosome chr1 (its first half of sites) and chr2 (the rest, positions starting
    again near 1), plain and bgzipped with a tabix index."""
    import pysam

    folder = tmp_path_factory.mktemp("regions")
    paths = simulate_cohort("additive", trait="quantitative", seed=8, n_individuals=80, length=1500).write(folder)
    lines = gzip.open(paths["genotypes"], "rt").read().splitlines()
    header = [line for line in lines if line.startswith("#")]
    records = [line.split("\t") for line in lines if not line.startswith("#")]
    half = len(records) // 2
    offset = int(records[half][1]) - 1
    for k, fields in enumerate(records):
        fields[0] = "chr1" if k < half else "chr2"
        if k >= half:
            fields[1] = str(int(fields[1]) - offset)
    header = [h for h in header if not h.startswith("##contig")]
    header[1:1] = ["##contig=<ID=chr1,length=10000>", "##contig=<ID=chr2,length=10000>"]
    text = "\n".join(header + ["\t".join(f) for f in records]) + "\n"
    (folder / "two.vcf").write_text(text)
    shutil.copy(folder / "two.vcf", folder / "indexed.vcf")
    pysam.tabix_index(str(folder / "indexed.vcf"), preset="vcf", force=True)  # -> indexed.vcf.gz + .tbi
    positions = [(f[0], int(f[1])) for f in records]
    return {"folder": folder, "phenotypes": paths["phenotypes"], "positions": positions}


def test_a_region_is_parsed_as_samtools_writes_it_and_matches_chr_or_not():
    region = Region.parse("chr2:1,000-2,500")
    (stretch,) = region.stretches
    assert (stretch.chrom, stretch.start, stretch.end) == ("chr2", 1000, 2500) and str(region) == "chr2:1000-2500"
    assert region.holds("2", 1000) and region.holds("chr2", 2500) and not region.holds("2", 2501)
    assert not region.holds("chr12", 1500) and Region.parse("X").holds("chrX", 10**8)
    assert str(Region.parse("3:500-")) == "3:500-" and Region.parse("3:-800").holds("3", 1)
    for bad in ("2:5-1", "2:a-b", "", "2:1-2:3", "2:1-500;chr2:400-900", "3;3:5-9"):
        with pytest.raises(InputError, match="--region"):
            Region.parse(bad)
    two = Region.parse(" 2:100-200 ; X ")  # two candidate loci: a pair acting across them is in reach
    assert str(two) == "2:100-200;X" and two.holds("chrX", 5) and two.holds("2", 150) and not two.holds("2", 250)
    np.testing.assert_array_equal(two.mask(["2", "2", "X", "3"], np.array([150, 250, 9, 150])), [1, 0, 1, 0])


def test_the_region_of_a_vcf_is_read_alike_with_and_without_its_index(two_chromosomes):
    folder, positions = two_chromosomes["folder"], two_chromosomes["positions"]
    region = Region.parse("2:200-900")
    expected = [p for c, p in positions if c == "chr2" and 200 <= p <= 900]
    plain = read_vcf(folder / "two.vcf", region=region)
    indexed = read_vcf(folder / "indexed.vcf.gz", region=region)
    whole = read_vcf(folder / "two.vcf")
    assert sorted(set(plain.pos)) == expected and len(expected) > 5
    assert list(indexed.pos) == list(plain.pos) and indexed.chrom == plain.chrom == ["chr2"] * len(plain.pos)
    np.testing.assert_array_equal(indexed.dosage, plain.dosage)
    inside = np.array([c == "chr2" and 200 <= p <= 900 for c, p in zip(whole.chrom, whole.pos)])
    np.testing.assert_array_equal(plain.dosage, whole.dosage[:, inside])
    assert plain.notes["region"] == f"2:200-900 ({len(expected)} records of {len(positions)})"
    assert indexed.notes["region"] == f"2:200-900 ({len(expected)} records)"
    both = Region.parse("chr1:300-600;2:200-900")
    from_plain, from_index = read_vcf(folder / "two.vcf", region=both), read_vcf(folder / "indexed.vcf.gz", region=both)
    assert list(from_index.pos) == list(from_plain.pos) and set(from_plain.chrom) == {"chr1", "chr2"}
    np.testing.assert_array_equal(from_index.dosage, from_plain.dosage)
    assert sorted(set(zip(from_plain.chrom, from_plain.pos))) == sorted(
        (c, p) for c, p in positions if (c == "chr1" and 300 <= p <= 600) or (c == "chr2" and 200 <= p <= 900))
    first, last = (min(p for c, p in positions if c == "chr2"), max(p for c, p in positions if c == "chr2"))
    held = rf"the file holds chr1:.*, chr2:{first:,}-{last:,}"
    with pytest.raises(InputError, match=rf"no sites in --region 3:1-100; {held}"):
        read_vcf(folder / "two.vcf", region=Region.parse("3:1-100"))
    with pytest.raises(InputError, match=r"no sites in --region 3:1-100; the file holds chr1, chr2\."):
        read_vcf(folder / "indexed.vcf.gz", region=Region.parse("3:1-100"))


def test_plink_plink2_and_bgen_read_the_same_region_as_the_vcf(two_chromosomes, tmp_path):
    import bgen
    import pgenlib
    from bed_reader import to_bed

    folder = two_chromosomes["folder"]
    whole = read_vcf(folder / "two.vcf")
    region = Region.parse("chr1:300-1200")
    expected = read_vcf(folder / "two.vcf", region=region)
    to_bed(tmp_path / "c.bed", whole.dosage, properties={
        "iid": whole.samples, "chromosome": [c[3:] for c in whole.chrom], "bp_position": whole.pos,
        "allele_1": whole.alt, "allele_2": whole.ref})
    writer = pgenlib.PgenWriter(str(tmp_path / "c.pgen").encode(), len(whole.samples), variant_ct=whole.n_sites,
                                nonref_flags=False)
    for j in range(whole.n_sites):
        writer.append_biallelic(np.ascontiguousarray(whole.dosage[:, j].astype(np.int8)))
    writer.close()
    (tmp_path / "c.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "".join(
        f"{c}\t{p}\tv{j}\t{r}\t{a}\n"
        for j, (c, p, r, a) in enumerate(zip(whole.chrom, whole.pos, whole.ref, whole.alt))))
    (tmp_path / "c.psam").write_text("#IID\n" + "".join(f"{s}\n" for s in whole.samples))
    with bgen.BgenWriter(str(tmp_path / "c.bgen"), n_samples=len(whole.samples), samples=whole.samples) as out:
        for j in range(whole.n_sites):
            out.add_variant(varid=f"v{j}", rsid=f"v{j}", chrom=whole.chrom[j], pos=int(whole.pos[j]),
                            alleles=[whole.ref[j], whole.alt[j]], genotypes=np.eye(3)[whole.dosage[:, j].astype(int)])
    for name in ("c.bed", "c.pgen", "c.bgen"):
        part = read_genotypes(tmp_path / name, region=region)
        assert list(part.pos) == list(expected.pos), name
        np.testing.assert_array_equal(part.dosage, expected.dosage)
        assert part.notes["region"] == f"chr1:300-1200 ({expected.n_sites} records of {whole.n_sites})"
    with pytest.raises(InputError, match=r"c\.bim: no sites in --region chr1:99000-99999"):
        read_genotypes(tmp_path / "c.bed", region=Region.parse("chr1:99000-99999"))


def test_an_association_run_of_one_region_names_it_and_a_bad_one_is_one_line(two_chromosomes, tmp_path):
    folder = two_chromosomes["folder"]
    out = tmp_path / "run"
    biolens("associate", "--genotypes", folder / "indexed.vcf.gz", "--phenotypes", two_chromosomes["phenotypes"],
            "--trait", "yield", "--region", "chr2:1-600", "--region", "1:700-", "--out", out, "--permutations", "2",
            "--folds", "2")
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["region"] == "chr2:1-600;1:700-"
    assert info["data_notes"]["region"].startswith("chr2:1-600;1:700- (")
    rows = [line.split("\t") for line in (out / "variants.tsv").read_text().splitlines()[1:]]
    assert {r[0] for r in rows} == {"chr1", "chr2"}
    assert all(int(r[1]) <= 600 if r[0] == "chr2" else int(r[1]) >= 700 for r in rows)
    pairs = [line.split("\t") for line in (out / "interactions.tsv").read_text().splitlines()]
    header = pairs[0]
    across = [p for p in pairs[1:] if p[header.index("chrom_a")] != p[header.index("chrom_b")]]
    assert across  # pairs of a site of each locus are scored like any other
    report = (out / "report.html").read_text()
    assert "in chr2:1-600;1:700- of indexed.vcf.gz" in report
    detectable = json.loads((out / "metrics.json").read_text())["detectable"]
    assert 'id="detectable"' in report and 0 < detectable["site_share"] < detectable["pair_share_any_form"] < 1
    message = one_line_error(biolens("associate", "--genotypes", folder / "two.vcf", "--phenotypes",
                                     two_chromosomes["phenotypes"], "--trait", "yield", "--region", "7:1-10",
                                     "--out", tmp_path / "none", check=False))
    assert "no sites in --region 7:1-10" in message and "chr1:" in message
    assert "expected CHROM or CHROM:START-END" in one_line_error(biolens(
        "associate", "--genotypes", folder / "two.vcf", "--phenotypes", two_chromosomes["phenotypes"], "--trait",
        "yield", "--region", "chr2:9-1x", "--out", tmp_path / "bad", check=False))


def test_a_bed_file_of_regions_is_one_run_each_and_one_table_completed_when_run_again(two_chromosomes, tmp_path):
    """Two genes and a region the file does not hold: each gene its own run, the empty one said in the table; the
    command run again keeps the finished runs and completes the list."""
    import csv

    from biolens.tasks.associate_regions import read_bed

    folder = two_chromosomes["folder"]
    bed = tmp_path / "genes.bed"
    bed.write_text("track name=candidates\nchr1\t0\t600\tgeneA\n2\t199\t900\tgene B\n7\t0\t100\tgeneC\n")
    assert read_bed(bed) == [("chr1:1-600", "geneA"), ("2:200-900", "gene_B"), ("7:1-100", "geneC")]
    out = tmp_path / "genes"
    common = ["associate", "--genotypes", folder / "indexed.vcf.gz", "--phenotypes", two_chromosomes["phenotypes"],
              "--trait", "yield", "--regions", bed, "--permutations", "2", "--folds", "2"]
    args = common + ["--out", out]
    first = biolens(*args)
    assert "regions.tsv" in first.stdout and "region geneC" in first.stderr + first.stdout
    with open(out / "regions.tsv", newline="") as handle:
        rows = {r["name"]: r for r in csv.DictReader(handle, delimiter="\t")}
    assert rows["geneA"]["status"] == rows["gene_B"]["status"] == "complete"
    assert rows["geneC"]["status"].startswith("not run:") and "no sites in --region 7:1-100" in rows["geneC"]["status"]
    chrom, position = rows["gene_B"]["top_site"].split(":")
    assert chrom == "chr2" and 200 <= int(position) <= 900
    assert int(rows["geneA"]["n_sites"]) > 3 and rows["geneC"]["holds_across_regions"] == ""
    assert all(part in ("no", "site", "pair (deep)", "pair (saturated)")
               for part in rows["geneA"]["holds_across_regions"].split(", "))
    assert json.loads((out / "geneA" / "run.json").read_text())["config"]["region"] == "chr1:1-600"
    page = (out / "regions.html").read_text()
    assert '<a href="geneA/report.html">geneA</a>' in page and "0.05 / 2 = 0.0250" in page
    assert (out / "geneA" / "report.html").exists() and "no sites in --region 7:1-100" in page
    finished = (out / "geneA" / "metrics.json").stat().st_mtime_ns
    shutil.rmtree(out / "gene_B")  # as if it had never run
    biolens(*args)
    assert (out / "geneA" / "metrics.json").stat().st_mtime_ns == finished  # kept, not run again
    assert (out / "gene_B" / "metrics.json").exists()
    wrong_trait = one_line_error(biolens(*[a if a != "yield" else "height" for a in common], "--out",
                                         tmp_path / "wrong", check=False))
    assert "no trait column 'height'" in wrong_trait and not (tmp_path / "wrong").exists()  # once, before any region
    bed.write_text("chr1\t50\t10\tbackwards\n")
    assert "genes.bed, line 1: the end (10) must be after the start (50)" in one_line_error(
        biolens(*common, "--out", tmp_path / "other", check=False))


def test_the_regions_table_holds_a_claim_across_the_list_only_below_the_bonferroni_bar(tmp_path):
    import csv

    from biolens.tasks.associate_regions import _write_table

    rows = [{"region": "1:1-9", "name": "a", "status": "complete", "top_site_q": "0.01", "top_pair_q_deep": "0.2",
             "top_pair_q_saturated": "0.02"},
            {"region": "2:1-9", "name": "b", "status": "complete", "top_site_q": "0.03", "top_pair_q_deep": "0.5",
             "top_pair_q_saturated": ""},
            {"region": "3:1-9", "name": "c", "status": "not run: no sites"}]
    _write_table(tmp_path / "regions.tsv", rows)  # two regions studied: the bar is 0.025
    with open(tmp_path / "regions.tsv", newline="") as handle:
        held = {r["name"]: r["holds_across_regions"] for r in csv.DictReader(handle, delimiter="\t")}
    assert held == {"a": "site, pair (saturated)", "b": "no", "c": ""}
