"""A corpus of hostile and odd inputs across every command: images, tables, FASTA, VCF, phenotypes, annotations,
run folders and flags. Every case must end with exit code 2 and one line starting `error:` that names the culprit;
no traceback, no file that existed changed, nothing half-written left behind.

The commands run in this process (the real CLI entry point, `biolens.cli.main`), so a hundred cases cost seconds.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biolens import cli
from biolens.simulate import simulate_cohort
from conftest import SLICE


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims width x height (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace of valid and broken inputs, built once."""
    import tifffile

    root = tmp_path_factory.mktemp("hostile")
    shutil.copytree(SLICE, root / "cells")
    images = root / "cells" / "images"
    # classification folders with one problem each
    (root / "empty").mkdir()
    (root / "one_class" / "A").mkdir(parents=True)
    for f in list((images / "RBC").glob("*.jpg"))[:12]:
        shutil.copy(f, root / "one_class" / "A")
    tiny = root / "tiny_class"
    shutil.copytree(images, tiny)
    for f in list((tiny / "Platelets").glob("*.jpg"))[3:]:
        f.unlink()
    for name, damage in (("truncated", "cut"), ("bomb", "bomb"), ("stack", "stack")):
        folder = root / name
        shutil.copytree(images, folder)
        target = folder / "WBC" / f"bad_{name}"
        if damage == "cut":
            data = next((images / "WBC").glob("*.jpg")).read_bytes()
            (target.with_suffix(".jpg")).write_bytes(data[: len(data) // 3])
        elif damage == "bomb":
            _png_header_only(target.with_suffix(".png"), 24000, 24000)
        else:
            tifffile.imwrite(target.with_suffix(".tif"), np.random.default_rng(0).integers(0, 4000, (5, 40, 40), dtype=np.uint16))
    (root / "notes.txt").write_text("not images\n")
    manifest = (root / "cells" / "manifest.csv").read_text().splitlines()
    (root / "cells" / "no_label.csv").write_text("path,class\n" + "\n".join(",".join(l.split(",")[:2]) for l in manifest[1:]) + "\n")
    (root / "cells" / "empty_path.csv").write_text(manifest[0] + "\n," + manifest[1].split(",", 1)[1] + "\n" + "\n".join(manifest[2:]) + "\n")
    (root / "cells" / "missing_file.csv").write_text("\n".join(manifest + ["images/RBC/nope.jpg,RBC,X"]) + "\n")
    for line in manifest[1:]:
        (root / "cells" / Path(line.split(",")[0]).parent).mkdir(parents=True, exist_ok=True)
    two_groups = [manifest[0]] + [",".join(l.split(",")[:2] + ["g" + str(i % 2)]) for i, l in enumerate(manifest[1:])]
    (root / "cells" / "two_groups.csv").write_text("\n".join(two_groups) + "\n")
    (root / "empty.csv").write_text("")
    (root / "binary.csv").write_bytes(b"\x00\x01\x02" * 100)
    (root / "a_file").write_text("x")
    (root / "busy").mkdir()
    (root / "busy" / "keep.txt").write_text("precious")
    (root / "review_labels.csv").write_text("file,label\n" + str(next((images / "RBC").glob("*.jpg"))) + ",Neutrophil\n")
    # sequences
    (root / "seqs.fasta").write_text("".join(f">s{i}\n{'ACGT' * 10}\n" for i in range(30)))
    (root / "noheader.fasta").write_text("ACGTACGT\nACGT\n")
    (root / "empty.fasta").write_text("")
    (root / "labels.tsv").write_text("id\tlabel\n" + "".join(f"s{i}\t{'ab'[i % 2]}\n" for i in range(30)))
    (root / "labels_noid.tsv").write_text("peak\tlabel\n" + "".join(f"s{i}\t{'ab'[i % 2]}\n" for i in range(30)))
    (root / "labels_other.tsv").write_text("id\tlabel\n" + "".join(f"t{i}\t{'ab'[i % 2]}\n" for i in range(30)))
    with gzip.open(root / "seqs.fasta.gz", "wb") as handle:
        handle.write((root / "seqs.fasta").read_bytes() * 50)
    data = (root / "seqs.fasta.gz").read_bytes()
    (root / "cut.fasta.gz").write_bytes(data[: len(data) // 2])
    # cohort
    paths = simulate_cohort("null", trait="binary", seed=3, n_individuals=40, length=600).write(root / "cohort")
    vcf, traits = paths["genotypes"], paths["phenotypes"]
    raw = gzip.open(vcf, "rt").read().splitlines()
    header = [l for l in raw if l.startswith("#")]
    body = [l for l in raw if not l.startswith("#")]
    (root / "cohort.vcf").write_text("\n".join(raw) + "\n")
    no_gt = [l.split("\t") for l in body]
    (root / "no_gt.vcf").write_text("\n".join([h for h in header if "FORMAT=<ID=GT" not in h] + [
        "\t".join(f[:8] + ["DP"] + ["5"] * (len(f) - 9)) for f in no_gt]) + "\n")
    bad_allele = body[0].split("\t")
    bad_allele[9] = "0|3"
    (root / "bad_allele.vcf").write_text("\n".join(header + ["\t".join(bad_allele)] + body[1:]) + "\n")
    data = vcf.read_bytes()
    (root / "cut.vcf.gz").write_bytes(data[: len(data) // 2])
    lines = traits.read_text().splitlines()
    (root / "const.tsv").write_text("\n".join([lines[0]] + [l.rsplit("\t", 1)[0] + "\t1" for l in lines[1:]]) + "\n")
    (root / "inf.tsv").write_text("\n".join([lines[0]] + [l.rsplit("\t", 1)[0] + "\t" + ("inf" if i == 0 else str(i % 7))
                                                          for i, l in enumerate(lines[1:])]) + "\n")
    (root / "other_ids.tsv").write_text("\n".join([lines[0]] + [l.replace("tsk_", "ind") for l in lines[1:]]) + "\n")
    with gzip.open(root / "traits.csv.gz", "wt") as handle:
        handle.write(traits.read_text().replace("\t", ",") * 20)
    data = (root / "traits.csv.gz").read_bytes()
    (root / "cut_traits.csv.gz").write_bytes(data[: len(data) // 2])
    (root / "unaligned.fasta").write_text(">tsk_0_h1\nACGTACGT\n>tsk_0_h2\nACGTAC\n")
    (root / "known.meme").write_text("MEME version 4\n\nMOTIF m1 x\nletter-probability matrix: alength= 4 w= 2\n0.5 0.5\n")
    (root / "one_fasta").mkdir()
    (root / "one_fasta" / "GATA1.fa").write_text((root / "seqs.fasta").read_text())
    # other genotype formats, broken; an Excel sheet cut short
    (root / "fake.bgen").write_bytes(b"\x14\x00\x00\x00" + b"not a bgen" * 30)
    (root / "alone.pgen").write_bytes(b"\x6c\x1b\x10" + bytes(64))
    (root / "alone.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n1\t5\tv\tA\tG\n")
    pd.read_csv(traits, sep="\t").to_excel(root / "traits.xlsx", index=False)
    (root / "cut.xlsx").write_bytes((root / "traits.xlsx").read_bytes()[:200])
    (root / "bad.bed").write_text("1\t0\t300\tgeneA\n1\tstart\t900\tgeneB\n")
    # assay tables
    rng = np.random.default_rng(0)
    table = ["id," + ",".join(f"g{j}" for j in range(8))] + [f"c{i}," + ",".join(f"{v:.3f}" for v in rng.normal(size=8))
                                                               for i in range(60)]
    (root / "assay.csv").write_text("\n".join(table) + "\n")
    nd = table[:]
    nd[5] = nd[5].rsplit(",", 1)[0] + ",n.d."
    (root / "assay_nd.csv").write_text("\n".join(nd) + "\n")
    (root / "one_column.csv").write_text("id\n" + "\n".join(f"c{i}" for i in range(10)) + "\n")
    import anndata

    anndata.AnnData(np.zeros((0, 5), np.float32)).write_h5ad(root / "no_cells.h5ad")
    three = root / "three_images"
    three.mkdir()
    for f in list((images / "RBC").glob("*.jpg"))[:3]:
        shutil.copy(f, three)
    # detection
    det = root / "det"
    det.mkdir()
    Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(det / "a.png")
    (det / "points.csv").write_text("image,x,y\na.png,10,10\na.png,30,20\n")
    (det / "missing_image.csv").write_text("image,x,y\na.png,10,10\nb.png,30,20\n")
    (det / "zero_box.csv").write_text("image,xmin,ymin,xmax,ymax\na.png,10,10,10,20\na.png,1,1,5,5\n")
    (det / "outside.csv").write_text("image,x,y\na.png,10,10\na.png,300,20\n")
    (det / "single.csv").write_text("image,x,y,label\na.png,10,10,A\na.png,30,20,B\na.png,40,20,B\n")
    (det / "nocoords.csv").write_text("image,u,v\na.png,10,10\n")
    (det / "partial.csv").write_text("image,xmin,ymin,xmax\na.png,1,1,5\n")
    (det / "bad.json").write_text("{not json")
    (det / "text_coord.csv").write_text("image,x,y\na.png,ten,10\n")
    voc = root / "voc"
    voc.mkdir()
    (voc / "a.xml").write_text("<annotation><filename>a.png</filename><object><name>c</name><bndbox><xmin>1</xmin>"
                               "<ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    # run folders
    fake = root / "fake_run"
    fake.mkdir()
    (fake / "run.json").write_text(json.dumps({"task": "classify", "status": "complete", "config": {},
                                               "class_names": ["a", "b"], "image_size": 32}))
    (fake / "model.keras").write_bytes(b"not a model")
    (fake / "metrics.json").write_text("{}")
    (fake / "review").mkdir()
    (fake / "review" / "review.csv").write_text("file,label\nx.png,a\n")
    no_metrics = root / "no_metrics_run"
    shutil.copytree(fake, no_metrics)
    (no_metrics / "metrics.json").unlink()
    cut_run = root / "cut_run"
    cut_run.mkdir()
    (cut_run / "run.json").write_text('{"task": "classify", "sta')
    cluster_run = root / "cluster_run"
    cluster_run.mkdir()
    (cluster_run / "run.json").write_text(json.dumps({"task": "cluster", "status": "complete", "config": {}}))
    running = root / "running_run"
    running.mkdir()
    (running / "run.json").write_text(json.dumps({"task": "classify", "status": "interrupted", "config": {}}))
    (root / "preds.csv").write_text("existing\n")
    return root


W = "{ws}"
IMG = f"{W}/cells/images"
MAN = f"{W}/cells/manifest.csv"
VCF = f"{W}/cohort/cohort.vcf.gz"
TRAITS = f"{W}/cohort/traits.tsv"
OUT = f"{W}/new_run"
CASES = {
    # images: data
    "train-missing-folder": (["train", f"{W}/nope", "--out", OUT], "nope"),
    "train-empty-folder": (["train", f"{W}/empty", "--out", OUT], "empty"),
    "train-one-class": (["train", f"{W}/one_class", "--out", OUT], "single class"),
    "train-tiny-class": (["train", f"{W}/tiny_class", "--out", OUT], "Platelets"),
    "train-text-file": (["train", f"{W}/notes.txt", "--out", OUT], "notes.txt"),
    "train-truncated-jpeg": (["train", f"{W}/truncated", "--out", OUT], "bad_truncated.jpg"),
    "train-png-bomb": (["train", f"{W}/bomb", "--out", OUT], "bad_bomb.png"),
    "train-tiff-stack": (["train", f"{W}/stack", "--out", OUT], "--stack"),
    "manifest-no-label": (["train", f"{W}/cells/no_label.csv", "--out", OUT], "label"),
    "manifest-empty-path": (["train", f"{W}/cells/empty_path.csv", "--out", OUT], "line 2"),
    "manifest-missing-file": (["train", f"{W}/cells/missing_file.csv", "--out", OUT], "nope.jpg"),
    "manifest-empty": (["train", f"{W}/empty.csv", "--out", OUT], "empty.csv"),
    "manifest-binary": (["train", f"{W}/binary.csv", "--out", OUT], "binary.csv"),
    "manifest-group-missing": (["train", MAN, "--group-column", "plate", "--out", OUT], "plate"),
    "manifest-two-groups": (["train", f"{W}/cells/two_groups.csv", "--group-column", "source_image", "--out", OUT], "group"),
    # images: flags
    "epochs-zero": (["train", IMG, "--epochs", "0", "--out", OUT], "--epochs"),
    "epochs-negative": (["train", IMG, "--epochs", "-1", "--out", OUT], "--epochs"),
    "epochs-text": (["train", IMG, "--epochs", "many", "--out", OUT], "--epochs"),
    "learning-rate-negative": (["train", IMG, "--learning-rate", "-0.01", "--out", OUT], "--learning-rate"),
    "learning-rate-nan": (["train", IMG, "--learning-rate", "nan", "--out", OUT], "--learning-rate"),
    "patience-negative": (["train", IMG, "--patience", "-2", "--out", OUT], "--patience"),
    "time-budget-nan": (["train", IMG, "--time-budget", "nan", "--out", OUT], "--time-budget"),
    "time-budget-inf": (["train", IMG, "--time-budget", "inf", "--out", OUT], "--time-budget"),
    "time-budget-negative": (["train", IMG, "--time-budget", "-5", "--out", OUT], "--time-budget"),
    "batch-size-negative": (["train", IMG, "--batch-size", "-4", "--out", OUT], "--batch-size"),
    "image-size-small": (["train", IMG, "--image-size", "5", "--out", OUT], "--image-size"),
    "image-size-huge": (["train", IMG, "--image-size", "5000", "--out", OUT], "--image-size"),
    "backbone-unknown": (["train", IMG, "--backbone", "Foo", "--out", OUT], "--backbone"),
    "stack-unknown": (["train", IMG, "--stack", "cube", "--out", OUT], "--stack"),
    "min-per-class-one": (["train", IMG, "--min-per-class", "1", "--out", OUT], "--min-per-class"),
    "seed-negative": (["train", IMG, "--seed", "-1", "--out", OUT], "--seed"),
    "unknown-option": (["train", IMG, "--epoch", "3", "--out", OUT], "--epoch"),
    "unknown-command": (["trian", IMG], "trian"),
    "length-with-images": (["train", IMG, "--length", "100", "--out", OUT], "--length"),
    "labels-with-images": (["train", IMG, "--labels", f"{W}/labels.tsv", "--out", OUT], "--labels"),
    # images: output folders
    "out-is-file": (["train", IMG, "--out", f"{W}/a_file"], "a_file"),
    "out-inside-data": (["train", IMG, "--out", f"{IMG}/run1"], "inside"),
    "out-not-empty": (["train", IMG, "--out", f"{W}/busy"], "busy"),
    "out-name-too-long": (["train", IMG, "--out", f"{W}/{'x' * 300}"], "longer than 255"),
    "resume-finished": (["train", "--resume", f"{W}/fake_run"], "finished"),
    "resume-not-a-run": (["train", "--resume", f"{W}/busy"], "not a biolens run"),
    "resume-damaged-run": (["train", "--resume", f"{W}/cut_run"], "run.json"),
    "resume-cluster-run-with-train": (["train", "--resume", f"{W}/cluster_run"], "cluster"),
    "add-labels-missing": (["train", IMG, "--add-labels", f"{W}/nope.csv", "--out", OUT], "nope.csv"),
    "add-labels-unknown-class": (["train", IMG, "--add-labels", f"{W}/review_labels.csv", "--out", OUT], "Neutrophil"),
    # sequences
    "fasta-without-labels": (["train", f"{W}/seqs.fasta", "--out", OUT], "--labels"),
    "known-motifs-bad-meme": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/labels.tsv", "--known-motifs",
                               f"{W}/known.meme", "--out", OUT], "known.meme"),
    "known-motifs-unknown": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/labels.tsv", "--known-motifs", "jaspar-mammals",
                              "--out", OUT], "--known-motifs"),
    "fasta-folder-one-class": (["train", f"{W}/one_fasta", "--out", OUT], "GATA1.fa"),
    "fasta-no-header": (["train", f"{W}/noheader.fasta", "--labels", f"{W}/labels.tsv", "--out", OUT], "noheader.fasta"),
    "fasta-empty": (["train", f"{W}/empty.fasta", "--labels", f"{W}/labels.tsv", "--out", OUT], "empty.fasta"),
    "labels-no-id": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/labels_noid.tsv", "--out", OUT], "labels_noid.tsv"),
    "labels-other-ids": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/labels_other.tsv", "--out", OUT], "t0"),
    "labels-binary": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/binary.csv", "--out", OUT], "binary.csv"),
    "fasta-gz-cut": (["train", f"{W}/cut.fasta.gz", "--labels", f"{W}/labels.tsv", "--out", OUT], "cut.fasta.gz"),
    "filters-two": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/labels.tsv", "--filters", "2", "--out", OUT], "--filters"),
    "filter-width-huge": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/labels.tsv", "--filter-width", "100", "--out", OUT], "--filter-width"),
    "length-three": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/labels.tsv", "--length", "3", "--out", OUT], "--length"),
    "backbone-with-fasta": (["train", f"{W}/seqs.fasta", "--labels", f"{W}/labels.tsv", "--backbone", "ResNet50", "--out", OUT], "--backbone"),
    # association
    "assoc-no-phenotypes": (["associate", "--genotypes", VCF, "--trait", "status", "--out", OUT], "--phenotypes"),
    "assoc-both-inputs": (["associate", "--genotypes", VCF, "--sequences", f"{W}/unaligned.fasta", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "exactly one"),
    "assoc-no-inputs": (["associate", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "exactly one"),
    "assoc-components-without-markers": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "status",
                                          "--structure-pcs", "10", "--out", OUT], "--structure-genotypes FILE"),
    "cluster-k-with-leiden": (["cluster", f"{W}/assay.csv", "--k", "5", "--out", OUT], "add --method kmeans"),
    "assoc-trait-case": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "Status", "--out", OUT], "Status"),
    "assoc-vcf-missing": (["associate", "--genotypes", f"{W}/nope.vcf", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "nope.vcf"),
    "assoc-vcf-cut": (["associate", "--genotypes", f"{W}/cut.vcf.gz", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "cut.vcf.gz"),
    "assoc-vcf-no-gt": (["associate", "--genotypes", f"{W}/no_gt.vcf", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "GT"),
    "assoc-vcf-bad-allele": (["associate", "--genotypes", f"{W}/bad_allele.vcf", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "bad_allele.vcf"),
    "assoc-swapped": (["associate", "--genotypes", TRAITS, "--phenotypes", VCF, "--trait", "status", "--out", OUT], "traits.tsv"),
    "assoc-sample-map-missing": (["associate", "--sequences", f"{W}/unaligned.fasta", "--sample-map", f"{W}/nope.tsv", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "nope.tsv"),
    "assoc-constant-trait": (["associate", "--genotypes", VCF, "--phenotypes", f"{W}/const.tsv", "--trait", "status", "--out", OUT], "one value"),
    "assoc-inf-trait": (["associate", "--genotypes", VCF, "--phenotypes", f"{W}/inf.tsv", "--trait", "status", "--out", OUT], "inf"),
    "assoc-other-ids": (["associate", "--genotypes", VCF, "--phenotypes", f"{W}/other_ids.tsv", "--trait", "status", "--out", OUT], "ind0"),
    "assoc-maf-high": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "status", "--min-maf", "0.7", "--out", OUT], "--min-maf"),
    "assoc-permutations-zero": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "status", "--permutations", "0", "--out", OUT], "--permutations"),
    "assoc-folds-one": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "status", "--folds", "1", "--out", OUT], "--folds"),
    "assoc-covariate-missing": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "status", "--covariates", "age", "--out", OUT], "age"),
    "assoc-empty-phenotypes": (["associate", "--genotypes", VCF, "--phenotypes", f"{W}/empty.csv", "--trait", "status", "--out", OUT], "empty.csv"),
    "assoc-cut-phenotypes": (["associate", "--genotypes", VCF, "--phenotypes", f"{W}/cut_traits.csv.gz", "--trait", "status", "--out", OUT], "cut_traits.csv.gz"),
    "assoc-bgen-garbage": (["associate", "--genotypes", f"{W}/fake.bgen", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "fake.bgen"),
    "assoc-pgen-no-psam": (["associate", "--genotypes", f"{W}/alone.pgen", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "alone.psam"),
    "assoc-xlsx-cut": (["associate", "--genotypes", VCF, "--phenotypes", f"{W}/cut.xlsx", "--trait", "status", "--out", OUT], "cut.xlsx"),
    "assoc-region-bad": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "status", "--region", "1:9-2", "--out", OUT], "--region"),
    "assoc-region-empty": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "status", "--region", "7", "--out", OUT], "no sites in --region 7"),
    "assoc-regions-bad-bed": (["associate", "--genotypes", VCF, "--phenotypes", TRAITS, "--trait", "status", "--regions", f"{W}/bad.bed", "--out", OUT], "bad.bed, line 2"),
    "assoc-region-fasta": (["associate", "--sequences", f"{W}/unaligned.fasta", "--phenotypes", TRAITS, "--trait", "status", "--region", "1", "--out", OUT], "--region"),
    "assoc-unaligned-fasta": (["associate", "--sequences", f"{W}/unaligned.fasta", "--phenotypes", TRAITS, "--trait", "status", "--out", OUT], "not aligned"),
    "assoc-resume-other-task": (["associate", "--resume", f"{W}/cluster_run"], "cluster"),
    # clustering
    "cluster-missing": (["cluster", f"{W}/nope.csv", "--out", OUT], "nope.csv"),
    "cluster-no-cells": (["cluster", f"{W}/no_cells.h5ad", "--out", OUT], "no_cells.h5ad"),
    "cluster-nd-cell": (["cluster", f"{W}/assay_nd.csv", "--out", OUT], "n.d."),
    "cluster-one-column": (["cluster", f"{W}/one_column.csv", "--out", OUT], "one_column.csv"),
    "cluster-empty-csv": (["cluster", f"{W}/empty.csv", "--out", OUT], "empty.csv"),
    "cluster-k-one": (["cluster", f"{W}/assay.csv", "--k", "1", "--out", OUT], "--k"),
    "cluster-k-too-many": (["cluster", f"{W}/assay.csv", "--method", "kmeans", "--k", "150", "--out", OUT], "--k"),
    "cluster-resolution-nan": (["cluster", f"{W}/assay.csv", "--resolution", "nan", "--out", OUT], "--resolution"),
    "cluster-latent-negative": (["cluster", f"{W}/assay.csv", "--latent", "-4", "--out", OUT], "--latent"),
    "cluster-method-unknown": (["cluster", f"{W}/assay.csv", "--method", "louvain", "--out", OUT], "--method"),
    "cluster-embedding-unknown": (["cluster", f"{W}/assay.csv", "--embedding", "tsne", "--out", OUT], "--embedding"),
    "cluster-data-type-unknown": (["cluster", f"{W}/assay.csv", "--data-type", "reads", "--out", OUT], "--data-type"),
    "cluster-compare-missing": (["cluster", f"{W}/assay.csv", "--compare-with", "cell_type", "--out", OUT], "cell_type"),
    "cluster-three-images": (["cluster", f"{W}/three_images", "--out", OUT], "three_images"),
    "cluster-resume-classify-run": (["cluster", "--resume", f"{W}/running_run"], "classify"),
    # predict / review / report on run folders
    "predict-over-run-json": (["predict", f"{W}/fake_run", IMG, "--out", f"{W}/fake_run/run.json"], "fake_run"),
    "predict-over-model": (["predict", f"{W}/fake_run", IMG, "--out", f"{W}/fake_run/model.keras"], "fake_run"),
    "predict-over-input-image": (["predict", f"{W}/fake_run", IMG, "--out", f"{IMG}/RBC/x.csv"], "reads"),
    "predict-existing-out": (["predict", f"{W}/fake_run", IMG, "--out", f"{W}/preds.csv"], "--force"),
    "predict-out-folder": (["predict", f"{W}/fake_run", IMG, "--out", f"{W}/busy"], "folder"),
    "predict-out-under-a-file": (["predict", f"{W}/fake_run", IMG, "--out", f"{W}/preds.csv/p.csv"], "is a file"),
    "predict-not-a-run": (["predict", f"{W}/busy", IMG], "not a biolens run"),
    "predict-no-metrics": (["predict", f"{W}/no_metrics_run", IMG, "--out", f"{W}/p1.csv"], "metrics.json"),
    "predict-damaged-run": (["predict", f"{W}/cut_run", IMG, "--out", f"{W}/p2.csv"], "run.json"),
    "predict-cluster-run": (["predict", f"{W}/cluster_run", IMG, "--out", f"{W}/p3.csv"], "cluster"),
    "predict-unfinished-run": (["predict", f"{W}/running_run", IMG, "--out", f"{W}/p4.csv"], "not finished"),
    "predict-overlays-classify": (["predict", f"{W}/fake_run", IMG, "--out", f"{W}/p5.csv", "--overlays", f"{W}/ov"], "--overlays"),
    "predict-stack-unknown": (["predict", f"{W}/fake_run", IMG, "--out", f"{W}/p6.csv", "--stack", "cube"], "--stack"),
    "predict-tampered-model": (["predict", f"{W}/fake_run", IMG, "--out", f"{W}/p7.csv"], "model.keras"),
    "review-n-zero": (["review", f"{W}/fake_run", IMG, "--n", "0"], "--n"),
    "review-existing-sheet": (["review", f"{W}/fake_run", IMG], "review.csv"),
    "review-cluster-run": (["review", f"{W}/cluster_run", IMG], "cluster"),
    "review-out-in-input": (["review", f"{W}/fake_run", IMG, "--out", f"{IMG}/review"], "inside"),
    "report-not-a-run": (["report", f"{W}/busy"], "not a biolens run"),
    "report-damaged-run": (["report", f"{W}/cut_run"], "run.json"),
    # detection
    "detect-missing": (["detect", f"{W}/det/nope.csv", "--out", OUT], "nope.csv"),
    "detect-missing-image": (["detect", f"{W}/det/missing_image.csv", "--out", OUT], "b.png"),
    "detect-zero-box": (["detect", f"{W}/det/zero_box.csv", "--out", OUT], "line 2"),
    "detect-point-outside": (["detect", f"{W}/det/outside.csv", "--out", OUT], "line 3"),
    "detect-single-example-label": (["detect", f"{W}/det/single.csv", "--out", OUT], "'A'"),
    "detect-no-coordinates": (["detect", f"{W}/det/nocoords.csv", "--out", OUT], "x,y"),
    "detect-partial-box": (["detect", f"{W}/det/partial.csv", "--out", OUT], "ymax"),
    "detect-bad-json": (["detect", f"{W}/det/bad.json", "--out", OUT], "bad.json"),
    "detect-text-coordinate": (["detect", f"{W}/det/text_coord.csv", "--out", OUT], "ten"),
    "detect-kind-masks-from-points": (["detect", f"{W}/det/points.csv", "--kind", "masks", "--out", OUT], "--kind"),
    "detect-kind-unknown": (["detect", f"{W}/det/points.csv", "--kind", "polygons", "--out", OUT], "--kind"),
    "detect-object-size-one": (["detect", f"{W}/det/points.csv", "--object-size", "1", "--out", OUT], "--object-size"),
    "detect-group-on-voc": (["detect", f"{W}/voc", "--group-column", "plate", "--out", OUT], "--group-column"),
    "detect-voc-image-missing": (["detect", f"{W}/voc", "--out", OUT], "a.png"),
    "detect-images-missing": (["detect", f"{W}/det/points.csv", "--images", f"{W}/nope", "--out", OUT], "nope"),
    "detect-epochs-negative": (["detect", f"{W}/det/points.csv", "--epochs", "-3", "--out", OUT], "--epochs"),  # 0 = automatic
    # the web app's server
    "serve-port-out-of-range": (["serve", "--port", "70000", "--no-browser"], "--port"),
    "serve-remote-without-flag": (["serve", "--host", "0.0.0.0", "--no-browser"], "--allow-remote"),
}


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_gives_one_error_line_and_changes_nothing(case, ws, capsys, monkeypatch):
    argv, culprit = CASES[case]
    argv = [a.replace(W, str(ws)) for a in argv]
    before = _snapshot(ws)
    monkeypatch.setattr(sys, "argv", ["biolens", *argv])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exited.value.code == 2, err
    assert "Traceback" not in err
    assert len(errors) == 1 and err.strip().endswith(errors[0]), err
    assert culprit.replace(W, str(ws)) in errors[0], errors[0]
    after = _snapshot(ws)
    changed = [p for p, facts in before.items() if after.get(p) != facts]
    created = sorted(set(after) - set(before))
    assert not changed, f"changed or removed: {changed}"
    assert not created, f"left behind: {created}"


def test_the_corpus_is_large_and_covers_every_command():
    commands = {argv[0] for argv, _ in CASES.values()}
    assert len(CASES) >= 100
    assert {"train", "predict", "review", "report", "associate", "cluster", "detect", "serve"} <= commands


def test_files_are_created_with_the_users_umask(tmp_path):
    from biolens.runs import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "shared.csv", "a\n")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.csv").stat().st_mode & 0o777 == 0o644


def test_a_fault_inside_biolens_is_one_line_with_the_trace_kept_in_a_file(capsys, monkeypatch, tmp_path):
    """A library failing deep in a run (LAPACK's "SVD did not converge" stopped an association run once) is not the
    user's input: one `error:` line, exit code 1, and the full trace in a file named on that line."""
    import tempfile

    def failing_command(standalone_mode):
        import numpy as np

        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(cli, "app", failing_command)
    monkeypatch.setattr(sys, "argv", ["biolens", "--help"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    err = capsys.readouterr().err
    assert exited.value.code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and "SVD did not converge" in err
    (trace,) = tmp_path.glob("biolens-fault-*.txt")
    assert str(trace) in err and "Traceback" in trace.read_text() and "failing_command" in trace.read_text()
