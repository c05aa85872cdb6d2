"""Phenotype tables (TSV/CSV): one row per individual, a trait column, optional covariates.

A trait with exactly two values is binary (case = 1, 2, 'case', 'affected', 'yes', 'true', or else the second value in
sorted order, always written to run.json); a numeric trait with more values is quantitative. Empty, NA, NaN and '.'
are missing; -9 is not treated as missing (it is a valid measurement for many traits), except in PLINK's case/control
coding: values 1 and 2 (or 0 and 1) plus -9 make a binary trait with -9 missing, said in a warning. A PLINK `.fam`
is read as the table `fid, iid, father, mother, sex, phenotype` with PLINK's own missing codes (`_fam_table`), and a
PLINK 2 `.psam` as its header names it, with the same codes (`_psam_table`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biolens.errors import InputError
from biolens.readers.tables import column_hint

MISSING = ["", "NA", "N/A", "NaN", "nan", ".", "na", "null", "NULL"]
SAMPLE_COLUMNS = ("sample", "sample_id", "id", "iid", "individual", "name")
CASE_WORDS = ("1", "2", "case", "cases", "affected", "yes", "true", "disease", "resistant", "positive")


@dataclass
class Phenotypes:
    samples: list[str]
    y: np.ndarray  # float64; 0/1 for binary
    kind: str  # "binary" | "quantitative"
    trait: str
    covariates: np.ndarray  # individuals x covariate columns (numeric, categorical one-hot), standardised
    covariate_columns: list[str]
    notes: dict = field(default_factory=dict)


def read_table(path: Path, flag: str = "--phenotypes") -> pd.DataFrame:
    """A user table as strings with missing values as NaN (readers/tables.py: separator sniffed, BOM, encodings)."""
    from biolens.readers.tables import read_table as read_any

    table = read_any(Path(path), flag, missing=MISSING)
    if len(table.columns) and str(table.columns[0]).startswith("#"):  # a PLINK 2 .psam's header: #FID or #IID
        table = table.rename(columns={table.columns[0]: str(table.columns[0]).lstrip("#")})
    return table


FAM_COLUMNS = ("fid", "iid", "father", "mother", "sex", "phenotype")


def _fam_table(path: Path, trait: str) -> tuple[pd.DataFrame, dict]:
    """A PLINK .fam as a phenotype table, PLINK's codes read as PLINK reads them: sex 0 is unknown; the phenotype
    1/2 is control/case with 0 and -9 missing, any other numbers a quantitative trait with -9 missing. Individuals
    are named as the .fam's genotypes are (`readers/plink.py`): IID, or FID_IID where an IID is in two families."""
    from biolens.readers.plink import fam_rows, individual_names

    rows = fam_rows(path)
    table = pd.DataFrame([r for _, r in rows], columns=list(FAM_COLUMNS), dtype=object)
    table["iid"] = individual_names(list(table["fid"]), list(table["iid"]), path)[0]
    table["sex"] = table["sex"].mask(table["sex"] == "0")
    table["phenotype"], missing, coding = _plink_codes(table["phenotype"])
    if trait == "phenotype" and table["phenotype"].isna().all():
        raise InputError(f"{path}: the .fam's phenotype column is missing (0 or -9) for every individual; give the "
                         "trait in a phenotype table instead (--phenotypes traits.tsv).")
    return table, {"fam_phenotype_missing": missing, "fam_phenotype_coding": coding}


def _plink_codes(values: pd.Series) -> tuple[pd.Series, int, str]:
    """A PLINK phenotype read as PLINK reads it: 1/2 is control/case with 0 and -9 missing, any other numbers a
    quantitative trait with -9 missing. Returns the values with the missing ones masked, how many, and the coding."""
    given = ~(values.isin(MISSING) | values.isna())  # NA and the like, as in any phenotype table
    numeric = pd.to_numeric(values.where(given), errors="coerce")
    observed = set(numeric.dropna().unique())
    binary = bool(numeric[given].notna().all()) and observed <= {0, 1, 2, -9} and {1, 2} <= observed
    missing = ~given | (numeric.isin([0, -9]) if binary else numeric == -9)
    return (values.mask(missing), int(missing.sum()),
            "1 = control, 2 = case; 0 and -9 missing" if binary else "-9 missing")


def _psam_table(path: Path, trait: str) -> tuple[pd.DataFrame, dict]:
    """A PLINK 2 .psam as a phenotype table: its header without the `#`, the trait read with PLINK's codes (as for a
    .fam), SEX 0 unknown, and individuals named as the .psam's genotypes are (IID, or FID_IID where an IID is in two
    families)."""
    from biolens.readers.plink import individual_names

    table = read_table(path)
    columns = {c.upper(): c for c in table.columns}
    if "IID" in columns:
        fid = list(table[columns["FID"]].astype(str)) if "FID" in columns else None
        table[columns["IID"]] = individual_names(fid, list(table[columns["IID"]].astype(str)), path)[0]
    if "SEX" in columns:
        table[columns["SEX"]] = table[columns["SEX"]].mask(table[columns["SEX"]] == "0")
    if trait not in table.columns:
        return table, {}
    table[trait], missing, coding = _plink_codes(table[trait])
    return table, {"psam_phenotype_missing": missing, "psam_phenotype_coding": coding}


def _sample_column(table: pd.DataFrame, path: Path, requested: str | None) -> str:
    if requested:
        if requested not in table.columns:
            raise InputError(f"{path}: no column '{requested}' (columns: {', '.join(table.columns)}).")
        return requested
    import re

    # "Sample ID", "sample-id" and "Sample.ID" (Excel sheets, R exports) read as sample_id
    lowered = {re.sub(r"[\s.\-]+", "_", str(c).strip().lower()): c for c in reversed(table.columns)}
    for name in SAMPLE_COLUMNS + ("individual_id", "sample_name"):
        if name in lowered:
            return lowered[name]
    return table.columns[0]


def _plink_missing(values: pd.Series, path: Path, trait: str) -> tuple[pd.Series, dict]:
    """PLINK's case/control coding (1 = control, 2 = case, or 0/1; -9 = missing): -9 becomes missing, with a
    warning, only when the other values are two of 0, 1 and 2, so a quantitative -9 is never lost."""
    numeric = pd.to_numeric(values.dropna(), errors="coerce")
    if numeric.isna().any() or not (numeric == -9).any():
        return values, {}
    others = set(numeric[numeric != -9].unique())
    if len(others) != 2 or not others <= {0, 1, 2}:
        return values, {}
    missing = numeric == -9
    note = (f"{path}: trait '{trait}' is coded {' and '.join(str(int(v)) for v in sorted(others))} with -9 for "
            f"{int(missing.sum())} individual(s): read as PLINK's case/control coding, -9 as missing.")
    return values.mask(pd.to_numeric(values, errors="coerce") == -9), {"minus_9_as_missing": int(missing.sum()),
                                                                       "warnings": [note]}


def _encode_trait(values: pd.Series, path: Path, trait: str) -> tuple[np.ndarray, str, dict]:
    values, plink = _plink_missing(values, path, trait)
    y, kind, coding = _encode_two_or_more(values, path, trait)
    return y, kind, {**coding, **plink}


def _encode_two_or_more(values: pd.Series, path: Path, trait: str) -> tuple[np.ndarray, str, dict]:
    present = values.dropna()
    distinct = sorted(present.unique())
    if not distinct:
        raise InputError(f"{path}: trait '{trait}' is missing for every individual.")
    if len(distinct) == 1:
        raise InputError(f"{path}: trait '{trait}' has one value ('{distinct[0]}') for everyone; nothing to associate.")
    if len(distinct) == 2:
        words = [d.strip().lower() for d in distinct]
        numeric = pd.to_numeric(pd.Series(distinct), errors="coerce")
        if numeric.notna().all():
            case = distinct[int(np.argmax(numeric.to_numpy()))]
        else:
            case = next((d for d, w in zip(distinct, words) if w in CASE_WORDS), distinct[1])
        y = np.where(values.isna(), np.nan, (values == case).astype(float))
        control = next(d for d in distinct if d != case)
        return y, "binary", {"case_value": case, "control_value": control}
    numeric = pd.to_numeric(values, errors="coerce")
    infinite = np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan))
    if infinite.any():
        row = int(np.argmax(infinite))
        raise InputError(f"{path}, line {row + 2}: trait '{trait}' value '{values.iloc[row]}' is infinite; give a "
                         "finite number or mark it NA.")
    bad = values.notna() & numeric.isna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise InputError(f"{path}, line {row + 2}: trait '{trait}' value '{values.iloc[row]}' is not a number, and the "
                         f"trait has {len(distinct)} distinct values, so it is not binary. Fix the value or mark it NA.")
    return numeric.to_numpy(dtype=float), "quantitative", {}


def _encode_covariates(table: pd.DataFrame, names: list[str], path: Path) -> tuple[np.ndarray, list[str]]:
    blocks, columns = [], []
    for name in names:
        if name not in table.columns:
            raise InputError(f"{path}: covariate '{name}' is not a column.{column_hint(name, table.columns)} "
                             f"Columns: {', '.join(table.columns)}.")
        raw = table[name]
        numeric = pd.to_numeric(raw, errors="coerce")
        if np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan)).any():
            row = int(np.argmax(np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan))))
            raise InputError(f"{path}, line {row + 2}: covariate '{name}' is infinite; give a finite number or NA.")
        if numeric[raw.notna()].notna().all() and raw.dropna().nunique() > 2:
            values = numeric.to_numpy(dtype=float)
            spread = np.nanstd(values)
            blocks.append(((values - np.nanmean(values)) / (spread if spread > 0 else 1))[:, None])
            columns.append(name)
        else:
            levels = sorted(raw.dropna().unique())
            if len(levels) < 2:
                raise InputError(f"{path}: covariate '{name}' has a single value; drop it from --covariates.")
            for level in levels[1:]:  # the first level is the reference
                indicator = np.where(raw.isna(), np.nan, (raw == level).astype(float))
                blocks.append(indicator[:, None])
                columns.append(f"{name}={level}")
    if not blocks:
        return np.zeros((len(table), 0)), []
    return np.hstack(blocks), columns


def read_phenotypes(path: Path | str, trait: str, covariates: list[str] | None = None,
                    sample_column: str | None = None) -> Phenotypes:
    """Read the trait and covariates; individuals with a missing trait or covariate are left out and counted."""
    path = Path(path)
    suffix = path.suffix.lower()
    table, fam = (_fam_table(path, trait) if suffix == ".fam" else _psam_table(path, trait) if suffix == ".psam"
                  else (read_table(path), {}))
    column = _sample_column(table, path, sample_column)
    if trait not in table.columns:
        raise InputError(f"{path}: no trait column '{trait}'.{column_hint(trait, table.columns)} Columns: "
                         f"{', '.join(table.columns)}; give the trait's column with --trait.")
    ids = table[column].astype(str).str.strip()
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        raise InputError(f"{path}: sample id(s) {', '.join(duplicated[:5])} appear on more than one row of column "
                         f"'{column}'; keep one row per individual.")
    y, kind, coding = _encode_trait(table[trait], path, trait)
    coding.update(fam)
    cov, cov_columns = _encode_covariates(table, covariates or [], path)
    keep = ~np.isnan(y) & ~np.isnan(cov).any(1)
    notes = {"sample_column": column, "missing_trait": int(np.isnan(y).sum()),
             "missing_covariate": int((~np.isnan(y) & np.isnan(cov).any(1)).sum()), **coding}
    if kind == "binary" and min((y[keep] == 1).sum(), (y[keep] == 0).sum()) < 10:
        raise InputError(f"{path}: trait '{trait}' has fewer than 10 individuals in one of its two classes; "
                         "an association test needs more of each.")
    return Phenotypes([ids[i] for i in np.nonzero(keep)[0]], y[keep], kind, trait, cov[keep], cov_columns, notes)


SKEWED = 1.0  # a quantitative trait whose skewness is larger than this (in size) is pointed out


def transform_trait(y: np.ndarray, how: str, kind: str, path: Path | str, trait: str,
                    samples: list[str]) -> tuple[np.ndarray, dict]:
    """The trait on the scale asked for (`--trait-transform`): "log" (values above 0) or "rank" (Blom's rank-based
    inverse normal, ties averaged, as GWAS tools use for skewed traits); "none" leaves it as measured.

    Why offer it: interactions are scale-dependent. Where sites act multiplicatively (growth, expression, counts),
    sites that act independently on the log scale act together on the measured one, and every pair test (PLINK's,
    the saturated test, the deep model) reads that as interactions; a log scale is then the question a biologist
    means. It is never applied unasked: which scale is right is the biology's, not the data's."""
    if how == "none":
        return y, {}
    if kind == "binary":
        raise InputError(f"--trait-transform {how}: trait '{trait}' in {path} has two values (a binary trait); a "
                         "transform applies to a quantitative trait only, so leave the option out.")
    if how == "log":
        below = np.flatnonzero(y <= 0)
        if len(below):
            raise InputError(f"{path}: --trait-transform log needs values above 0, but trait '{trait}' is "
                             f"{y[below[0]]:g} for sample {samples[below[0]]} ({len(below)} individual(s) at or below "
                             "0); use --trait-transform rank, or add a constant to the column yourself.")
        return np.log(y), {"trait_transform": "log"}
    from scipy.stats import norm, rankdata

    return norm.ppf((rankdata(y) - 3 / 8) / (len(y) + 1 / 4)), {"trait_transform": "rank (Blom's inverse normal)"}


def skewness_note(y: np.ndarray, kind: str, trait: str, transform: str) -> tuple[dict, list[str]]:
    """The analysed trait's skewness, and a warning where it is large and no transform was asked for."""
    if kind == "binary" or len(y) < 3 or np.std(y) == 0:
        return {}, []
    from scipy.stats import skew

    value = float(skew(y))
    if abs(value) <= SKEWED or transform != "none":
        return {"trait_skewness": round(value, 3)}, []
    return {"trait_skewness": round(value, 3)}, [
        f"trait '{trait}' is skewed (skewness {value:.2f}): where effects multiply (growth, expression, counts), "
        "sites acting independently on the log scale act together on this one, and every pair test reads that as "
        "interactions; PLINK's normal-theory p-values are also unreliable on such a trait. If the biology is "
        "multiplicative, run again with --trait-transform log (values above 0) or rank."]


def _after_prefix(sample: str) -> str:
    """An id's part after its first '_': PLINK writes FID_IID into a VCF, msprime tsk_<n>."""
    return sample.split("_", 1)[1] if "_" in sample else sample


def _without_leading_zeros(sample: str) -> str:
    """'007' -> '7' for an id of digits only: Excel drops the zeros of ids it takes for numbers."""
    return str(int(sample)) if sample.isdigit() else sample


def _id_reading(genotyped: list[str], phenotyped: list[str]) -> tuple[list[str], list[str], str, str]:
    """Ids as given, unless they barely match and another reading matches at least half of the genotyped individuals
    one to one: dropping a prefix before the first '_' on one side (PLINK's FID_IID, msprime's tsk_; used only when
    exactly one side's reading works), else ids compared without case and surrounding spaces, else digit-only ids
    without their leading zeros (Excel turns 007 into 7). Returns that reading, said, with an id as written and as
    read."""
    exact = len(set(genotyped) & set(phenotyped))
    if exact >= len(genotyped) // 2:
        return genotyped, phenotyped, "", ""
    enough = max(10, len(genotyped) // 2)

    def usable(ours: list[str], theirs: list[str]) -> bool:
        return (len(set(ours)) == len(ours) and len(set(theirs)) == len(theirs)
                and len(set(ours) & set(theirs)) >= enough)

    def example(original: list[str], read: list[str]) -> str:
        changed = next((i for i, (a, b) in enumerate(zip(original, read)) if a != b), 0)
        return f"{original[changed]} = {read[changed]}"

    genotype_read, phenotype_read = [_after_prefix(s) for s in genotyped], [_after_prefix(s) for s in phenotyped]
    prefixes = [reading for reading in
                [(genotype_read, phenotyped, "genotype ids' part after the first '_'", example(genotyped, genotype_read)),
                 (genotyped, phenotype_read, "phenotype ids' part after the first '_'",
                  example(phenotyped, phenotype_read))] if usable(reading[0], reading[1])]
    if len(prefixes) == 1:
        return prefixes[0]
    for rule, words in ((lambda s: s.strip().casefold(), "ids without case or surrounding spaces"),
                        (_without_leading_zeros, "digit-only ids without their leading zeros")):
        ours, theirs = [rule(s) for s in genotyped], [rule(s) for s in phenotyped]
        if usable(ours, theirs):
            side = (genotyped, ours) if ours != genotyped else (phenotyped, theirs)
            return ours, theirs, words, example(*side)
    return genotyped, phenotyped, "", ""


def match_samples(genotyped: list[str], phenotyped: list[str], genotype_source: str,
                  phenotype_source: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Rows of each table for the individuals present in both; refuses a poor overlap, warns about the rest."""
    genotyped, phenotyped, reading, example = _id_reading(genotyped, phenotyped)
    position = {sample: i for i, sample in enumerate(phenotyped)}
    both = [s for s in genotyped if s in position]
    only_genotyped = [s for s in genotyped if s not in position]
    only_phenotyped = sorted(set(phenotyped) - set(genotyped))
    if len(both) < max(10, len(genotyped) // 2):
        raise InputError(
            f"only {len(both)} of {len(genotyped)} individuals in {genotype_source} have a usable phenotype in "
            f"{phenotype_source} (e.g. genotyped {', '.join(only_genotyped[:3]) or '-'}; phenotyped "
            f"{', '.join(only_phenotyped[:3]) or '-'}). Sample ids must match exactly; use --sample-column to pick the id column.")
    warnings = []
    if reading:
        warnings.append(f"sample ids of {genotype_source} and {phenotype_source} differ; matched by the {reading} "
                        f"(e.g. {example}). Check that this pairs the right individuals.")
    if only_genotyped:
        warnings.append(f"{len(only_genotyped)} genotyped individual(s) have no usable phenotype and are left out "
                        f"(e.g. {', '.join(only_genotyped[:3])}).")
    if only_phenotyped:
        warnings.append(f"{len(only_phenotyped)} phenotyped individual(s) are not in {genotype_source} and are left out "
                        f"(e.g. {', '.join(only_phenotyped[:3])}).")
    rows = np.asarray([i for i, s in enumerate(genotyped) if s in position])
    return rows, np.asarray([position[s] for s in both]), {
        "unmatched_genotyped": len(only_genotyped), "unmatched_phenotyped": len(only_phenotyped), "warnings": warnings,
        **({"sample_ids_matched_by": reading} if reading else {})}
