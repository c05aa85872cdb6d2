"""`--region CHROM[:START-END]`: the part of a larger genotype file (a chromosome, a whole genome) to study.

Sequencing cores hand out one VCF per chromosome or per genome; the pair scans grow with the square of the sites, so
a biologist studying one gene's region names it instead of cutting the file with bcftools first, and one studying two
candidate genes (a pair acting across loci) names both: `2:1,200,000-1,260,000;5:880,000-910,000`. Positions are
1-based and inclusive, as in samtools, bcftools and PLINK 2's `--chr`/`--from-bp`/`--to-bp`; `chr2` and `2` name
the same chromosome (files differ in whether they write the prefix).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from biolens.errors import InputError

_PATTERN = re.compile(r"^([^:\s;]+)(?::([\d,_]+)?-([\d,_]+)?)?$")


def bare(chrom: str) -> str:
    """A chromosome name without the `chr` prefix some files write (chr2 and 2 are one chromosome)."""
    name = str(chrom)
    return name[3:] if name.lower().startswith("chr") and len(name) > 3 else name


@dataclass(frozen=True)
class Stretch:
    """One chromosome, or a stretch of it (1-based, inclusive; None = from its start / to its end)."""
    chrom: str
    start: int | None = None
    end: int | None = None

    def __str__(self) -> str:
        if self.start is None and self.end is None:
            return self.chrom
        return f"{self.chrom}:{self.start or 1}-{self.end if self.end is not None else ''}"

    def holds(self, chrom: str, pos: int) -> bool:
        return (bare(chrom) == bare(self.chrom) and (self.start is None or pos >= self.start)
                and (self.end is None or pos <= self.end))

    def overlaps(self, other: "Stretch") -> bool:
        return (bare(self.chrom) == bare(other.chrom) and (self.end is None or other.start is None
                                                           or other.start <= self.end)
                and (other.end is None or self.start is None or self.start <= other.end))


@dataclass(frozen=True)
class Region:
    """One or several stretches (`;` or spaces between them); a site is in the region if any stretch holds it."""
    stretches: tuple[Stretch, ...]

    @classmethod
    def parse(cls, text: str) -> "Region":
        parts = [p for p in re.split(r"[;\s]+", str(text).strip()) if p]
        if not parts:
            raise InputError(f"--region {text!r}: expected CHROM or CHROM:START-END (e.g. 2:1,200,000-1,260,000).")
        stretches = []
        for part in parts:
            match = _PATTERN.match(part)
            if not match:
                raise InputError(f"--region {part!r}: expected CHROM or CHROM:START-END (e.g. 2:1,200,000-1,260,000); "
                                 "several are separated by ';'.")
            chrom, start, end = match.groups()
            start = int(start.replace(",", "").replace("_", "")) if start else None
            end = int(end.replace(",", "").replace("_", "")) if end else None
            if start is not None and end is not None and end < start:
                raise InputError(f"--region {part}: the end ({end:,}) is before the start ({start:,}).")
            stretch = Stretch(chrom, start, end)
            clash = next((s for s in stretches if s.overlaps(stretch)), None)
            if clash is not None:
                raise InputError(f"--region: {clash} and {stretch} overlap; give them as one stretch.")
            stretches.append(stretch)
        return cls(tuple(stretches))

    def __str__(self) -> str:
        return ";".join(str(s) for s in self.stretches)

    def holds(self, chrom: str, pos: int) -> bool:
        return any(s.holds(chrom, pos) for s in self.stretches)

    def mask(self, chrom: list[str], pos: np.ndarray) -> np.ndarray:
        """Which sites lie in the region."""
        names = np.array([bare(c) for c in chrom])
        pos = np.asarray(pos)
        inside = np.zeros(len(pos), dtype=bool)
        for s in self.stretches:
            here = names == bare(s.chrom)
            if s.start is not None:
                here &= pos >= s.start
            if s.end is not None:
                here &= pos <= s.end
            inside |= here
        return inside

    def nothing_in(self, path, chrom: list[str], pos: np.ndarray | None) -> InputError:
        """The error for a region that holds no site, with what the file does hold: each chromosome's span of
        positions, or its name where only the names are known (an indexed file's header)."""
        held = []
        for name in dict.fromkeys(chrom):
            where = np.asarray(pos)[[c == name for c in chrom]] if pos is not None else []
            held.append(f"{name}:{min(where):,}-{max(where):,}" if len(where) else name)
        listed = ", ".join(held[:8]) + (f" and {len(held) - 8} more" if len(held) > 8 else "")
        return InputError(f"{path}: no sites in --region {self}; the file holds {listed or 'no sites'}.")


def region_index(region: Region | None, chrom: list[str], pos: np.ndarray, path) -> np.ndarray:
    """Indices of the sites in `region` (every site without one); one line naming what the file holds if none."""
    if region is None:
        return np.arange(len(pos))
    index = np.flatnonzero(region.mask(chrom, pos))
    if not len(index):
        raise region.nothing_in(path, chrom, pos)
    return index
