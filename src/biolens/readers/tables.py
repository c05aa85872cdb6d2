"""The one reader of user tables (CSV, TSV, text with other separators, Parquet, Excel), compressed or not.

Every table a user gives (manifests, labels, phenotypes, sample maps, annotations, assay tables) comes through
`read_table`, so they all accept the same things: the separator is sniffed (comma, tab, semicolon, pipe or
whitespace), a UTF-8 byte-order mark (Excel) is dropped, Windows line ends are fine, Latin-1 files are read, and
.gz/.bz2/.xz/.zip compression is undone. Numbers written with a decimal comma (12,5 or 1.234,5: what Excel saves
as "CSV" in much of Europe, with semicolons between the fields) are read as numbers in tables whose separator is
not a comma. An Excel workbook (.xlsx) is read from its first sheet, as biologists keep
their sample sheets there. Anything unreadable is one `InputError` naming the file and what to do.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from biolens.errors import InputError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".tab", ".parquet", ".pq", ".xlsx", ".xlsm")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip")
MISSING_VALUES = ["", "NA", "N/A", "NaN", "nan", "-", "."]


def is_table(path: Path | str) -> bool:
    """Whether the name says table: .csv/.tsv/.txt/.tab/.parquet/.pq/.xlsx, optionally compressed."""
    name = Path(path).name.lower()
    for compression in COMPRESSIONS:
        name = name.removesuffix(compression)
    return name.endswith(TABLE_SUFFIXES)


def _open_text(path: Path) -> str:
    """The decoded text (decompressed where needed), or an InputError saying why it cannot be."""
    import bz2
    import gzip
    import lzma
    import zipfile

    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            raw = gzip.open(path).read()
        elif suffix == ".bz2":
            raw = bz2.open(path).read()
        elif suffix == ".xz":
            raw = lzma.open(path).read()
        elif suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise InputError(f"{path}: a zip with {len(names)} files; put exactly one table in it.")
                raw = archive.read(names[0])
        else:
            raw = path.read_bytes()
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder; give a table file (CSV or TSV).") from None
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as error:
        raise InputError(f"{path}: the compressed file is damaged or cut short ({str(error).splitlines()[0] or type(error).__name__}); "
                         "copy it again.") from None
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{path}: not a text table (binary content); give a CSV or TSV file.")
    for encoding in ("utf-8-sig", "utf-16") if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig", "latin-1"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path}: cannot be decoded as text; save it as UTF-8 CSV.")


def _read_workbook(path: Path, what: str, dtype, na: list[str]) -> pd.DataFrame:
    """The first sheet of an Excel workbook, its empty rows and unnamed empty columns (formatting left behind in a
    sheet) dropped."""
    import zipfile

    try:
        table = pd.read_excel(path, sheet_name=0, dtype=dtype, na_values=na, keep_default_na=False,
                              engine="openpyxl")
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
        raise InputError(f"{what} {path}: cannot be read as an Excel workbook ({str(error).splitlines()[0]}); open "
                         "it in Excel and save it again, or save the sheet as CSV.") from None
    table = table.dropna(how="all").reset_index(drop=True)
    empty = [c for c in table.columns if str(c).startswith("Unnamed:") and table[c].isna().all()]
    table = table.drop(columns=empty)
    if table.empty:
        raise InputError(f"{what} {path}: the first sheet holds no rows; put the table (a header row and one row "
                         "per item) on the workbook's first sheet.")
    return table


_DECIMAL_COMMA = re.compile(r"[+-]?(\d+|\d{1,3}(\.\d{3})+)(,\d+)?([eE][+-]?\d+)?")


def _decimal_commas(table: pd.DataFrame, as_text: bool) -> pd.DataFrame:
    """Columns whose every value is a number written with a decimal comma (at least one comma; dots only as
    thousands separators: 1.234,5) rewritten with decimal points, as strings or as numbers to match how the table
    was read. Any other column, a mixed one included, is left as written, so its odd value is named downstream."""
    for column in table.columns:
        values = table[column]
        if values.dtype != object and not isinstance(values.dtype, pd.StringDtype):  # text: object or pandas' str
            continue
        given = values.dropna().astype(str).str.strip()
        if not len(given) or not given.str.contains(",", regex=False).any():
            continue
        if not given.map(lambda v: _DECIMAL_COMMA.fullmatch(v) is not None).all():
            continue
        points = values.where(values.isna(), values.astype(str).str.strip().str.replace(".", "", regex=False)
                              .str.replace(",", ".", regex=False))
        table[column] = points if as_text else pd.to_numeric(points)
    return table


def _separator(text: str, path: Path) -> str | None:
    """Sniffed from the first lines; None means runs of whitespace."""
    sample = "\n".join(text.splitlines()[:50])
    if "\t" in sample:
        return "\t"
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;|\t").delimiter
    except csv.Error:
        if "," in sample:
            return ","
        return None


def read_table(path: Path | str, what: str = "table", *, dtype=str, missing: list[str] | None = None,
               min_columns: int = 1) -> pd.DataFrame:
    """Read a user table. `what` names it in messages (e.g. "--phenotypes"); values are strings by default, with
    `missing` (default MISSING_VALUES) read as NaN. Column names are stripped of spaces."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path}: no such file.")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a table file (CSV or TSV).")
    if path.suffix.lower() in WORKBOOK_SUFFIXES:
        table = _read_workbook(path, what, dtype, MISSING_VALUES if missing is None else missing)
    elif path.suffix.lower() in (".parquet", ".pq"):
        try:
            table = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for damaged files
            raise InputError(f"{what} {path}: cannot be read as Parquet ({str(error).splitlines()[0]}).") from None
        if dtype is str:
            table = table.astype(str).where(table.notna())
    else:
        text = _open_text(path)
        if not text.strip():
            raise InputError(f"{what} {path} is empty; it needs a header row and one row per item.")
        separator = _separator(text, path)
        na = MISSING_VALUES if missing is None else missing
        try:
            table = pd.read_csv(io.StringIO(text), sep=separator if separator else r"\s+", dtype=dtype,
                                na_values=na, keep_default_na=False, skip_blank_lines=True,
                                engine="python" if separator is None else "c")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
            raise InputError(f"{what} {path}: cannot be read as a table ({str(error).splitlines()[0]}). Check that every "
                             "row has the same number of columns.") from None
        if separator != ",":
            table = _decimal_commas(table, as_text=dtype is str)
    table.columns = [str(c).strip() for c in table.columns]
    duplicated = table.columns[table.columns.duplicated()].tolist()
    if duplicated:
        raise InputError(f"{what} {path}: the column name '{duplicated[0]}' appears twice; rename one.")
    if table.shape[1] < min_columns:
        raise InputError(f"{what} {path}: found {table.shape[1]} column(s) but {min_columns} are needed; is the "
                         "separator a comma or a tab?")
    return table


def column_hint(name: str, columns) -> str:
    """' Did you mean ...?' when a column differs from `name` only in case (names are case-sensitive), else ''."""
    near = [str(c) for c in columns if str(c).lower() == name.lower() and str(c) != name]
    return f" Did you mean '{near[0]}'? Names are case-sensitive." if near else ""


def line_of(row_index: int) -> int:
    """The line number a user sees in an editor for a 0-based data row (the header is line 1)."""
    return int(row_index) + 2
