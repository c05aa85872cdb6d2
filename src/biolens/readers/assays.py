"""Assay tables for unsupervised learning: CSV/TSV, Parquet, AnnData h5ad (sparse or dense, read in row chunks
from backed mode) and 10x matrices (matrix.mtx folder or .h5).

Whatever the format, the result is an AnnData with samples as rows and numeric features as columns; X is a
float32 CSR matrix when the data are mostly zeros, else dense. Non-numeric columns of a table are metadata (obs),
never features. Every check names the file, the sample or feature, and what to do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from biolens.errors import InputError
from biolens.readers.tables import is_table

FEATURE_ID_HEADERS = {"gene", "genes", "gene_id", "geneid", "gene_name", "gene_symbol", "symbol", "feature",
                      "features", "feature_id", "ensembl", "ensembl_id", "probe", "probe_id", "id_ref", "transcript",
                      "transcript_id", "protein", "metabolite"}
_ENSEMBL = re.compile(r"^ENS[A-Z]*[GT]\d{6,}")
ROW_CHUNK = 10_000


@dataclass
class Assay:
    data: object                # anndata.AnnData, samples x features
    source: Path
    kind: str                   # "counts" (non-negative integers) or "continuous"
    notes: list[str] = field(default_factory=list)
    orientation: str = "rows are samples"


def is_assay(path: Path) -> bool:
    name = path.name.lower()
    return (path.is_file() and (is_table(path) or name.endswith((".h5ad", ".h5")))) or (
        path.is_dir() and any((path / f).exists() for f in ("matrix.mtx", "matrix.mtx.gz")))


def read_assay(path: Path | str, *, transpose: bool | None = None, layer: str | None = None,
               kind: str = "auto", keep: list[str] = ()) -> Assay:
    """Read any supported table into samples x features and check it.

    Args:
        transpose: True = rows are features; None = detected (a first column headed like gene/feature ids, or
            Ensembl ids in it, means features are rows).
        layer: h5ad only: a layer name, or "raw" for `.raw.X` (default `.X`).
        kind: "counts", "continuous" or "auto" (non-negative integers = counts).
        keep: table columns that must stay metadata even if numeric (e.g. the --compare-with column).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder.")
    name = path.name.lower()
    if path.is_dir():
        data, orientation = _read_10x_folder(path), "10x matrix (cells x features)"
    elif name.endswith(".h5ad"):
        data, orientation = _read_h5ad(path, layer), "AnnData: obs are samples"
    elif name.endswith(".h5"):
        data, orientation = _read_10x_h5(path), "10x matrix (cells x features)"
    elif is_table(path):
        data, orientation = _read_table(path, transpose, keep)
    else:
        raise InputError(f"{path}: unknown format; give CSV/TSV, Excel, Parquet, h5ad, a 10x .h5 or a folder with "
                         "matrix.mtx.")
    if layer and not name.endswith(".h5ad"):
        raise InputError(f"--layer applies to h5ad files, not to {path.name}.")
    if transpose is not None and not (path.is_file() and is_table(path)):
        raise InputError(f"--transpose/--no-transpose applies to tables (CSV, TSV, Excel, Parquet); {path.name} says "
                         "which axis holds the samples itself.")
    data.obs_names = data.obs_names.astype(str)
    data.var_names = data.var_names.astype(str)
    notes = _check(data, path)
    detected = _detect_kind(data.X)
    if kind == "auto":
        kind = detected
    elif kind == "counts" and detected != "counts":
        _refuse_non_counts(data, path)
    return Assay(data, path, kind, notes, orientation)


def _read_table(path: Path, transpose: bool | None, keep: list[str]):
    import anndata

    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            table = pd.read_parquet(path)
            if not isinstance(table.index, pd.RangeIndex):
                table = table.reset_index()
        else:
            from biolens.readers.tables import read_table

            table = read_table(path, "table", dtype=None)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as error:
        raise InputError(f"{path}: cannot be read as a table ({str(error).splitlines()[0]}).") from None
    if table.empty or table.shape[1] < 2:
        raise InputError(f"{path}: needs an id column and at least one numeric column.")
    first = table.columns[0]
    ids = table[first]
    has_ids = not pd.api.types.is_numeric_dtype(ids) or str(first).lower() in {"id", "sample", "cell", "barcode", *FEATURE_ID_HEADERS}
    if transpose is None:
        transpose = has_ids and (str(first).strip().lower() in FEATURE_ID_HEADERS
                                 or ids.astype(str).str.match(_ENSEMBL).mean() > 0.5)
    if has_ids:
        if ids.duplicated().any():
            raise InputError(f"{path}: id '{ids[ids.duplicated()].iloc[0]}' in column '{first}' appears twice; ids must be unique.")
        table = table.set_index(first)
    table.index = table.index.astype(str)
    if transpose:
        non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
        if non_numeric:
            raise InputError(f"{path}: rows are features here (first column '{first}'), so every other column must be a "
                             f"numeric sample, but '{non_numeric[0]}' is not. Use --no-transpose if rows are samples.")
        table = table.T
        orientation = f"rows were features (first column '{first}'): transposed to samples x features"
    else:
        orientation = "rows are samples"
    meta = [c for c in table.columns if c in keep or not pd.api.types.is_numeric_dtype(table[c])]
    for column in meta:  # a numeric feature with a stray word ("n.d.") would otherwise become a label column
        if column in keep:
            continue
        numbers = pd.to_numeric(table[column], errors="coerce")
        stray = table[column][numbers.isna() & table[column].notna()]
        if numbers.notna().mean() > 0.8 and len(stray):
            raise InputError(f"{path}: column '{column}' is numeric but sample '{stray.index[0]}' holds "
                             f"'{stray.iloc[0]}'; write a number there (below detection: e.g. half the detection "
                             "limit), or leave the cell empty or NA (missing: filled from the samples most alike).")
    values = table.drop(columns=meta).to_numpy(dtype=np.float32)
    matrix = sparse.csr_matrix(values) if (values == 0).mean() > 0.5 else values
    data = anndata.AnnData(X=matrix, obs=table[meta].astype(str) if meta else pd.DataFrame(index=table.index),
                           var=pd.DataFrame(index=[str(c) for c in table.columns if c not in meta]))
    return data, orientation


def _read_h5ad(path: Path, layer: str | None):
    """Open backed, then read the chosen matrix in row chunks (sparse chunks stay sparse): a dense matrix of
    counts on disk becomes CSR in memory without ever being dense as a whole."""
    import warnings

    import anndata

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            backed = anndata.read_h5ad(path, backed="r")
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"{path}: not a readable h5ad file ({str(error).splitlines()[0]}).") from None
    if layer == "raw":
        if backed.raw is None:
            raise InputError(f"{path}: --layer raw, but the file has no .raw; layers: {', '.join(backed.layers.keys()) or 'none'}.")
        source, var = backed.raw.X, backed.raw.var
    elif layer:
        if layer not in backed.layers:
            raise InputError(f"{path}: no layer '{layer}' (layers: {', '.join(backed.layers.keys()) or 'none'}; or 'raw').")
        source, var = backed.layers[layer], backed.var
    else:
        source, var = backed.X, backed.var
    if backed.n_obs == 0 or backed.n_vars == 0 or source is None:
        shape = "no matrix (X is empty)" if source is None else f"{backed.n_obs} samples x {backed.n_vars} features"
        backed.file.close()
        raise InputError(f"{path}: {shape}; clustering needs at least 10 samples with 2 or more features.")
    chunks = []
    for start in range(0, backed.n_obs, ROW_CHUNK):
        block = source[start:start + ROW_CHUNK]
        block = block.tocsr() if sparse.issparse(block) else np.asarray(block)
        if not sparse.issparse(block) and (block == 0).mean() > 0.5:
            block = sparse.csr_matrix(block)
        chunks.append(block.astype(np.float32))
    matrix = sparse.vstack(chunks, format="csr") if sparse.issparse(chunks[0]) else np.vstack(
        [c.toarray() if sparse.issparse(c) else c for c in chunks])
    obs = backed.obs.copy()
    backed.file.close()
    return anndata.AnnData(X=matrix, obs=obs, var=pd.DataFrame(index=var.index.astype(str)))


def _read_10x_folder(path: Path):
    import scanpy as sc

    try:
        data = sc.read_10x_mtx(path, var_names="gene_symbols", make_unique=True)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{path}: not a readable 10x matrix folder (matrix.mtx, features.tsv or genes.tsv, barcodes.tsv): "
                         f"{str(error).splitlines()[0]}.") from None
    data.X = sparse.csr_matrix(data.X, dtype=np.float32)
    return data


def _read_10x_h5(path: Path):
    import scanpy as sc

    try:
        data = sc.read_10x_h5(path)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{path}: not a readable 10x .h5 matrix ({str(error).splitlines()[0]}).") from None
    data.var_names_make_unique()
    data.X = sparse.csr_matrix(data.X, dtype=np.float32)
    return data


def _values(matrix):
    return matrix.data if sparse.issparse(matrix) else np.asarray(matrix).ravel()


def _check(data, path: Path) -> list[str]:
    """Refuse NaN/inf and too little data; drop constant features and (for counts) empty samples, saying so."""
    if data.n_obs < 10:
        raise InputError(f"{path}: only {data.n_obs} samples; clustering needs at least 10 (rows are samples: check "
                         "the orientation, or use --transpose / --no-transpose).")
    if data.n_vars < 2:
        raise InputError(f"{path}: only {data.n_vars} numeric feature; nothing to cluster on.")
    if data.obs_names.duplicated().any():
        raise InputError(f"{path}: sample id '{data.obs_names[data.obs_names.duplicated()][0]}' appears twice; ids must be unique.")
    infinite = np.isinf(_values(data.X))
    if infinite.any():
        row, column = _locate(data.X, np.flatnonzero(infinite)[0])
        raise InputError(f"{path}: {int(infinite.sum())} values are infinite, e.g. sample '{data.obs_names[row]}', "
                         f"feature '{data.var_names[column]}'. Correct them, or leave the cells empty (missing).")
    notes = _fill_missing(data, path)
    matrix = data.X
    if sparse.issparse(matrix):
        mean = np.asarray(matrix.mean(axis=0)).ravel()
        square = np.asarray(matrix.multiply(matrix).mean(axis=0)).ravel()
        variance = square - mean ** 2
    else:
        variance = np.asarray(matrix).var(axis=0)
    constant = variance <= 1e-12
    if constant.all():
        raise InputError(f"{path}: every feature has the same value in all samples; nothing to cluster on.")
    if constant.any():
        examples = ", ".join(data.var_names[constant][:3])
        notes.append(f"{int(constant.sum())} features are constant across samples and were left out (e.g. {examples}).")
        data._inplace_subset_var(~constant)
    return notes


MOSTLY_MISSING = 0.5  # a feature, then a sample, missing in more than this share is left out rather than filled


def _fill_missing(data, path: Path) -> list[str]:
    """Fill missing values (NaN: empty cells, NA) where there are few; leave out features, then samples, missing in
    more than half; say each step. Returns the notes.

    Filled: each missing value is the mean of the 5 samples most alike over the features both have, on standardised
    features (`stats.preprocess.knn_fill`, as the genotype reader fills missing calls), and rounded where every value
    given is a whole non-negative number (counts). Why: proteomics and metabolomics tables routinely miss a few
    percent of their values (below detection, a failed run), and refusing them left a biologist no way on: the
    reader's own advice for a stray word ("<LOD") was to leave the cell empty, which it then refused. Decided: the
    fill is said with its count in run.json's warnings and the report, never silent; a value missing because it was
    below detection is not missing at random, and the note says where that matters.
    """
    values = _values(data.X)
    missing = np.isnan(values)
    if not missing.any():
        return []
    if sparse.issparse(data.X):
        row, column = _locate(data.X, np.flatnonzero(missing)[0])
        raise InputError(f"{path}: {int(missing.sum())} values of this sparse matrix are missing (NaN), e.g. sample "
                         f"'{data.obs_names[row]}', feature '{data.var_names[column]}'; a count matrix has none: "
                         "write 0 where nothing was counted.")
    notes = []
    matrix = np.asarray(data.X, dtype=np.float64)
    empty = np.isnan(matrix).mean(0) > MOSTLY_MISSING
    if empty.all():
        raise InputError(f"{path}: every feature is missing in more than half of the samples; nothing to cluster on.")
    if empty.any():
        notes.append(f"{int(empty.sum())} features are missing in more than half of the samples and were left out "
                     f"(e.g. {', '.join(data.var_names[empty][:3])}).")
        data._inplace_subset_var(~empty)
        matrix = matrix[:, ~empty]
    sparse_rows = np.isnan(matrix).mean(1) > MOSTLY_MISSING
    if sparse_rows.any():
        if (~sparse_rows).sum() < 10:
            raise InputError(f"{path}: only {int((~sparse_rows).sum())} samples have more than half of their values; "
                             "clustering needs at least 10.")
        notes.append(f"{int(sparse_rows.sum())} samples miss more than half of their values and were left out (e.g. "
                     f"{', '.join(data.obs_names[sparse_rows][:3])}).")
        data._inplace_subset_obs(~sparse_rows)
        matrix = matrix[~sparse_rows]
    gaps = np.isnan(matrix)
    if gaps.any():
        from biolens.stats.preprocess import NEIGHBOURS, knn_fill

        given = matrix[~gaps]
        counts = bool(given.min() >= 0 and np.all(given == np.round(given)))
        centre, scale = np.nanmean(matrix, 0), np.nanstd(matrix, 0)
        scale = np.where(scale > 0, scale, 1.0)
        filled = knn_fill((matrix - centre) / scale) * scale + centre
        matrix = np.where(gaps, np.round(filled) if counts else filled, matrix)
        notes.append(f"{int(gaps.sum())} missing values ({100 * gaps.mean():.1f}% of the table, in "
                     f"{int(gaps.any(1).sum())} samples) were filled with the mean of the {NEIGHBOURS} samples most "
                     "alike over the features both have (k-nearest neighbours on standardised features). Where values are "
                     "missing because they fell below detection, they are lower than such a guess: fill them with the "
                     "detection limit yourself if groups may differ by it.")
    data.X = matrix.astype(np.float32)
    return notes


def _locate(matrix, flat_index: int) -> tuple[int, int]:
    if sparse.issparse(matrix):
        row = int(np.searchsorted(matrix.indptr, flat_index, side="right") - 1)
        return row, int(matrix.indices[flat_index])
    return divmod(int(flat_index), matrix.shape[1])


def _detect_kind(matrix) -> str:
    values = _values(matrix)
    sample = values[:: max(1, len(values) // 1_000_000)]
    return "counts" if len(sample) and sample.min() >= 0 and np.all(sample == np.round(sample)) else "continuous"


def _refuse_non_counts(data, path: Path) -> None:
    values = _values(data.X)
    if values.min() < 0:
        where = _locate(data.X, int(np.argmin(values)))
        raise InputError(f"{path}: --data-type counts, but sample '{data.obs_names[where[0]]}', feature "
                         f"'{data.var_names[where[1]]}' is negative ({values.min():g}). Give raw counts (e.g. --layer "
                         "counts or raw) or use --data-type continuous.")
    where = _locate(data.X, int(np.flatnonzero(values != np.round(values))[0]))
    raise InputError(f"{path}: --data-type counts, but sample '{data.obs_names[where[0]]}', feature "
                     f"'{data.var_names[where[1]]}' is not a whole number; these look normalised. Give raw counts or use "
                     "--data-type continuous.")
