"""Many regions of one genotype file, each its own association run, and one table that reads them side by side.

A biologist with a list of candidate genes (a BED file) and a whole-genome VCF asks the same question of each gene.
Each region is a complete `associate` run in its own folder (`OUT/<name>/`, with its report, resumable alone), run
one after the other on this machine (`--dask` sends each run's pair scans to a cluster); `OUT/regions.tsv` lists every
region's strongest site and pair with their q-values. q-values are within each region: across N regions the table
also says which claims hold at q < 0.05 / N (Bonferroni over the regions), the honest reading of a list.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from biolens import console
from biolens.errors import InputError
from biolens.readers.genome import bed_rows
from biolens.runs import RUN_FILE, write_csv, write_text

COLUMNS = ("region", "name", "status", "n_sites", "n_pairs", "lambda_gc", "top_site", "top_site_q", "top_site_pip",
           "top_pair", "top_pair_q_deep", "top_pair_q_saturated", "pairs_q05_deep", "pairs_q05_saturated",
           "holds_across_regions", "verdict", "run")


def read_bed(path: Path | str) -> list[tuple[str, str]]:
    """(region, name) per line of a BED file (chrom, 0-based start, end, optional name); `track`/`browser`/`#`
    lines are skipped. A malformed line is one error naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--regions {path}: no such file. Give a BED file: chrom, start, end[, name] per line.")
    regions, names = [], set()
    for number, fields, start, end in bed_rows(path):
        region = f"{fields[0]}:{start + 1}-{end}"  # BED's 0-based half-open start as a 1-based inclusive one
        name = re.sub(r"[^\w.-]+", "_", fields[3].strip()) if len(fields) > 3 and fields[3].strip() else \
            f"{fields[0]}_{start + 1}_{end}"
        if name in names:
            raise InputError(f"{path}, line {number}: the name '{name}' is used twice; each region needs its own "
                             "(it names the region's run folder).")
        names.add(name)
        regions.append((region, name))
    if not regions:
        raise InputError(f"--regions {path}: no regions in it; a BED file holds chrom, start, end[, name] per line.")
    return regions


def associate_regions(phenotypes, trait: str, out, *, genotypes, regions, **options) -> Path:
    """Run `associate` on each region of the BED file `regions` (OUT/<name>/), then write OUT/regions.tsv.
    Finished regions are kept and interrupted ones resumed, so running the same command again completes a list."""
    from biolens.tasks.associate import associate

    if out is None:
        raise InputError("give the folder for the regions' runs (--out).")
    out = Path(out)
    listed = read_bed(regions)
    if options.pop("region", None):  # an empty one (the web form's field) is no region
        raise InputError("give either --region or --regions, not both.")
    _check_shared_inputs(phenotypes, trait, genotypes, options)
    if out.exists() and any(p.name not in ("regions.tsv", "regions.html") and not p.is_dir() for p in out.iterdir()):
        raise InputError(f"{out} exists and holds other files; choose a new --out folder for the regions' runs.")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (region, name) in enumerate(listed, start=1):
        folder = out / name
        console.say(f"region {k} of {len(listed)}: {name} ({region})")
        status = json.loads((folder / RUN_FILE).read_text()).get("status") if (folder / RUN_FILE).exists() else None
        try:
            if status == "complete":
                console.say(f"  already finished: {folder}")
            elif status is not None:
                associate(resume=folder)
            else:
                associate(phenotypes, trait, folder, genotypes=genotypes, region=region, **options)
            rows.append(_row(region, name, folder))
        except InputError as error:  # this region cannot be studied (no sites in it, too few): said, not skipped
            message = str(error).splitlines()[0]
            console.say(f"warning: region {name}: {message}")
            rows.append({"region": region, "name": name, "status": f"not run: {message}", "run": str(folder)})
    _write_table(out / "regions.tsv", rows)
    _write_page(out, rows, trait)
    console.say(f"regions: {out / 'regions.tsv'}  report: {out / 'regions.html'}")
    return out / "regions.tsv"


def _check_shared_inputs(phenotypes, trait: str, genotypes, options: dict) -> None:
    """What every region's run shares (the options, the phenotype table, the trait) is checked once, so a mistake
    there is one error line, not the same line for each region."""
    from biolens.engine import registry
    from biolens.readers.phenotypes import read_phenotypes

    config = registry.get("associate").config.build(phenotypes=str(phenotypes), trait=trait, genotypes=str(genotypes),
                                                    **options).validate()
    read_phenotypes(config.phenotypes, config.trait, config.covariates, config.sample_column)


def _write_page(out: Path, rows: list[dict], trait: str) -> None:
    """regions.html: the table with a link to each region's own report."""
    from biolens.report.html import _env

    studied, bar = _bonferroni(rows)
    shown = [{**r, "report": f"{r['name']}/report.html" if (out / r["name"] / "report.html").exists() else ""}
             for r in rows]
    write_text(out / "regions.html", _env.get_template("regions.html.j2").render(
        rows=shown, trait=trait, folder=str(out), studied=studied, bar=bar))


def _first(path: Path) -> dict:
    with open(path, newline="") as handle:
        return next(csv.DictReader(handle, delimiter="\t"), {})


def _row(region: str, name: str, folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    site, pair = _first(folder / "variants.tsv"), _first(folder / "interactions.tsv")
    return {"region": region, "name": name, "status": "complete", "n_sites": metrics.get("n_sites"),
            "n_pairs": metrics.get("n_pairs"), "lambda_gc": round(float(metrics.get("lambda_gc", "nan")), 3),
            "top_site": f"{site.get('chrom')}:{site.get('pos')}" if site else "",
            "top_site_q": site.get("q_site", ""), "top_site_pip": site.get("pip", ""),
            "top_pair": (f"{pair.get('chrom_a', '')}:{pair.get('pos_a')} x "
                         f"{pair.get('chrom_b', '')}:{pair.get('pos_b')}" if pair else ""),
            "top_pair_q_deep": pair.get("q_perm", ""), "top_pair_q_saturated": pair.get("q_saturated", ""),
            "pairs_q05_deep": metrics.get("pairs_q05_deep"), "pairs_q05_saturated": metrics.get("pairs_q05_saturated"),
            "verdict": metrics.get("verdict", ""), "run": str(folder)}


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _write_table(path: Path, rows: list[dict]) -> None:
    """regions.tsv, with `holds_across_regions`: the region's strongest site or pair claim at q below 0.05 / the
    number of regions run (Bonferroni over the list)."""
    _, bar = _bonferroni(rows)
    for row in rows:
        if row.get("status") == "complete":
            held = [what for what, q in (("site", row["top_site_q"]), ("pair (deep)", row["top_pair_q_deep"]),
                                         ("pair (saturated)", row["top_pair_q_saturated"])) if _number(q) < bar]
            row["holds_across_regions"] = ", ".join(held) if held else "no"
    write_csv(path, list(COLUMNS), [[row.get(c, "") for c in COLUMNS] for row in rows], delimiter="\t")


def _bonferroni(rows: list[dict]) -> tuple[int, float]:
    """The regions studied and the q a claim needs to hold across them (0.05 / their number)."""
    studied = sum(r.get("status") == "complete" for r in rows)
    return studied, 0.05 / max(studied, 1)
