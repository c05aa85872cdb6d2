"""The shared table reader on the files biologists keep their sample sheets in: Excel workbooks beside CSV."""
import numpy as np
import pandas as pd
import pytest

from biolens.errors import InputError
from biolens.readers.phenotypes import read_phenotypes
from biolens.readers.tables import is_table, read_table

from conftest import biolens, one_line_error


def _workbook(path, rows, *, first_sheet=None):
    """A workbook as Excel users leave them: the table on one sheet with a blank row inside it and an empty column
    (no header, no values) between two of its columns."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        if first_sheet is not None:
            first_sheet.to_excel(writer, sheet_name="notes", index=False)
        pd.DataFrame(rows).to_excel(writer, sheet_name="traits", index=False)
    if first_sheet is None:
        import openpyxl

        book = openpyxl.load_workbook(path)
        sheet = book.active
        sheet.insert_rows(3)
        sheet.insert_cols(3)
        book.save(path)
        raw = pd.read_excel(path, dtype=str)
        assert raw.isna().all(axis=1).sum() == 1  # the blank row and column are there, as in a user's file
        assert len(rows) < 3 or raw.columns[2].startswith("Unnamed")


def test_an_excel_sheet_is_a_phenotype_table_like_its_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = {"sample": [f"ind{k}" for k in range(40)], "yield": np.round(rng.normal(5, 1, 40), 3).tolist(),
            "site": ["north" if k % 2 else "south" for k in range(40)], "age": list(range(20, 60))}
    rows["yield"][3] = "NA"
    _workbook(tmp_path / "traits.xlsx", rows)
    pd.DataFrame(rows).to_csv(tmp_path / "traits.csv", index=False)
    assert is_table(tmp_path / "traits.xlsx")
    from_excel, from_csv = read_table(tmp_path / "traits.xlsx"), read_table(tmp_path / "traits.csv")
    assert list(from_excel.columns) == ["sample", "yield", "site", "age"] and len(from_excel) == 40
    pd.testing.assert_frame_equal(from_excel, from_csv)
    excel = read_phenotypes(tmp_path / "traits.xlsx", "yield", ["age", "site"])
    csv = read_phenotypes(tmp_path / "traits.csv", "yield", ["age", "site"])
    assert excel.samples == csv.samples and excel.notes["missing_trait"] == 1
    np.testing.assert_array_equal(excel.y, csv.y)
    np.testing.assert_array_equal(excel.covariates, csv.covariates)


def test_a_workbook_read_from_its_first_sheet_and_a_damaged_one_in_one_line(tmp_path, monkeypatch):
    _workbook(tmp_path / "two.xlsx", {"sample": ["a", "b"], "yield": [1, 2]}, first_sheet=pd.DataFrame())
    with pytest.raises(InputError, match=r"two\.xlsx: the first sheet holds no rows"):
        read_table(tmp_path / "two.xlsx", "--phenotypes")
    _workbook(tmp_path / "good.xlsx", {"sample": ["a", "b"], "yield": [1, 2]})
    (tmp_path / "cut.xlsx").write_bytes((tmp_path / "good.xlsx").read_bytes()[:300])
    with pytest.raises(InputError, match=r"cut\.xlsx: cannot be read as an Excel workbook"):
        read_table(tmp_path / "cut.xlsx", "--phenotypes")
    vcf = tmp_path / "x.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\n"
                   "1\t3\t.\tT\tC\t.\tPASS\t.\tGT\t0|0\t0/1\n")
    message = one_line_error(biolens("associate", "--genotypes", vcf, "--phenotypes", tmp_path / "cut.xlsx",
                                     "--trait", "yield", "--out", tmp_path / "run", check=False))
    assert "cut.xlsx: cannot be read as an Excel workbook" in message and not (tmp_path / "run").exists()


def test_an_assay_table_kept_in_excel_reads_as_its_csv(tmp_path):
    from biolens.readers.assays import read_assay

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(30, 5)), columns=[f"g{i}" for i in range(5)])
    table.insert(0, "sample", [f"s{i}" for i in range(30)])
    table.to_excel(tmp_path / "assay.xlsx", index=False)
    table.to_csv(tmp_path / "assay.csv", index=False)
    excel, csv = read_assay(tmp_path / "assay.xlsx"), read_assay(tmp_path / "assay.csv")
    assert list(excel.data.obs_names) == list(csv.data.obs_names) and excel.orientation == csv.orientation
    np.testing.assert_array_equal(np.asarray(excel.data.X), np.asarray(csv.data.X))


def test_a_sample_column_headed_as_people_write_it_is_found_wherever_it_stands(tmp_path):
    rows = {"yield": [1.0, 2.0, 3.5] * 10, "Sample ID": [f"p{k}" for k in range(30)], "Plot": ["a", "b", "c"] * 10}
    _workbook(tmp_path / "field.xlsx", rows)
    phenotypes = read_phenotypes(tmp_path / "field.xlsx", "yield")
    assert phenotypes.notes["sample_column"] == "Sample ID" and phenotypes.samples[:2] == ["p0", "p1"]


def test_decimal_commas_of_a_european_csv_read_as_the_numbers_they_are(tmp_path):
    """Excel in much of Europe saves "CSV" with semicolons and decimal commas; the trait, covariates and assay
    values read the same as from the point-decimal file, while a column that is not all numbers stays as written."""
    rng = np.random.default_rng(1)
    rows = {"sample": [f"ind{k}" for k in range(30)], "yield": np.round(rng.normal(5, 1, 30), 3),
            "weight": np.round(rng.normal(1500, 300, 30), 1), "note": ["1,2" if k % 2 else "a,b" for k in range(30)]}
    table = pd.DataFrame(rows)
    table.to_csv(tmp_path / "points.csv", index=False)
    european = table.copy()
    european["yield"] = [f"{v:.3f}".replace(".", ",") for v in table["yield"]]
    european["weight"] = [f"{v:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".") for v in table["weight"]]
    european.loc[4, "yield"] = "NA"
    european.to_csv(tmp_path / "commas.csv", sep=";", index=False)
    assert any("." in w for w in european["weight"])  # thousands separators written

    read = read_table(tmp_path / "commas.csv")
    assert read["note"].tolist() == rows["note"]  # a text column with commas is left alone
    np.testing.assert_allclose(read["weight"].astype(float), table["weight"])
    traits = read_phenotypes(tmp_path / "commas.csv", "yield", ["weight"])
    reference = read_phenotypes(tmp_path / "points.csv", "yield", ["weight"])
    assert traits.kind == "quantitative" and traits.notes["missing_trait"] == 1
    keep = [reference.samples.index(s) for s in traits.samples]
    assert len(keep) == 29
    np.testing.assert_allclose(traits.y, reference.y[keep])
    np.testing.assert_allclose(traits.covariates, reference.covariates[keep], atol=0.02)  # standardised over 29 or 30

    numbers = read_table(tmp_path / "commas.csv", dtype=None)
    assert numbers["yield"].dtype == float and numbers["weight"].dtype == float
    (tmp_path / "mixed.csv").write_text("sample;yield\na;1,5\nb;2.5\nc;3,5\n")  # one value with a point: not guessed
    with pytest.raises(InputError, match=r"line 3: trait 'yield' value '2.5'|'1,5' is not a number"):
        read_phenotypes(tmp_path / "mixed.csv", "yield")
