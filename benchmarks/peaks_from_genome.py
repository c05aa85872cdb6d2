"""How long cutting peaks from a genome takes (`--genome`, readers/genome.py): a random 200 Mb genome of two
chromosomes written once, 50,000 narrowPeak intervals of 200-800 bases; the index built on first use, then read.

    PYTHONPATH=src .venv/bin/python benchmarks/peaks_from_genome.py [--out /tmp/peaks_from_genome]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CHROMOSOMES = {"chr1": 120_000_000, "chr2": 80_000_000}


def main() -> None:
    from biolens.readers.genome import cut_sequences, open_genome

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/peaks_from_genome")
    parser.add_argument("--peaks", type=int, default=50_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    genome = folder / "genome.fa"
    if not genome.exists():
        with open(genome, "w") as out:
            for name, size in CHROMOSOMES.items():
                text = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size)].tobytes().decode()
                out.write(f">{name}\n" + "\n".join(text[i:i + 60] for i in range(0, size, 60)) + "\n")
    names = list(CHROMOSOMES)
    lines = []
    for k in range(args.peaks):
        chrom = names[int(rng.random() < 0.4)]
        start, width = int(rng.integers(0, CHROMOSOMES[chrom] - 1000)), int(rng.integers(200, 800))
        lines.append(f"{chrom}\t{start}\t{start + width}\tpeak_{k}\t100\t.\t5\t-1\t3\t{width // 2}\n")
    peaks = folder / "peaks.narrowPeak"
    peaks.write_text("".join(lines))
    for index in folder.glob("*.fai"):
        index.unlink()
    started = time.perf_counter()
    fasta = open_genome(genome)
    indexed = time.perf_counter()
    records = cut_sequences(peaks, fasta, genome)
    done = time.perf_counter()
    print(f"index built {indexed - started:.1f} s; {len(records):,} peaks cut {done - indexed:.1f} s")
    started = time.perf_counter()
    records = cut_sequences(peaks, open_genome(genome), genome)
    print(f"again, the index read: {time.perf_counter() - started:.1f} s for {len(records):,} peaks")


if __name__ == "__main__":
    main()
