"""The enriched-word search that seeds sequence filters (`stats.kmers.enriched_words`): this source against another
copy of kmers.py (e.g. the code before a change, taken with `git show REV:src/biolens/stats/kmers.py`), on the same
sequences in one process; prints seconds and whether the words found are the same.

    git show 0d53c2a~1:src/biolens/stats/kmers.py > /tmp/old_kmers.py
    .venv/bin/python benchmarks/enriched_words_speed.py /tmp/old_kmers.py
"""
import argparse
import dataclasses
import importlib.util
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from biolens.readers.sequences import one_hot
from biolens.simulate import simulate_labelled_sequences
from biolens.stats import kmers as new

parser = argparse.ArgumentParser()
parser.add_argument("reference")
args = parser.parse_args()
spec = importlib.util.spec_from_file_location("reference_kmers", args.reference)
old = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = old  # its dataclass looks itself up there
spec.loader.exec_module(old)

rng = np.random.default_rng(5)
y = np.array([0] * 150 + [1] * 150)
planted = ["".join(rng.choice(list("ACGT"), 150)) for _ in y]
planted = [s[:60] + "GATTACAG" + s[68:] if y[k] == 0 and k % 3 else s for k, s in enumerate(planted)]
cases = [("300 x 150 bp, one site, one strand", one_hot(planted, 150), y, 2, False),
         ("the same, both strands", one_hot(planted, 150), y, 2, True)]
with tempfile.TemporaryDirectory() as folder:
    paths = simulate_labelled_sequences(folder, n_per_class=150, seed=3)
    lines = paths["sequences"].read_text().splitlines()
    records = dict(zip([header[1:] for header in lines[0::2]], lines[1::2]))
    labels = pd.read_csv(paths["labels"], sep="\t")
    names = sorted(labels.label.unique())
    classes = labels.label.map({name: k for k, name in enumerate(names)}).to_numpy()
    length = max(len(records[i]) for i in labels.id)
    cases.append((f"simulate_labelled_sequences: {len(classes)} sequences, {len(names)} classes",
                  one_hot([records[i] for i in labels.id], length), classes, len(names), True))
for name, x, labels_, n_classes, both in cases:
    seconds, found = {}, {}
    for which, module in (("reference", old), ("this source", new)):
        started = time.perf_counter()
        words = module.enriched_words(x, labels_, n_classes, both_strands=both)
        seconds[which] = time.perf_counter() - started
        found[which] = [dataclasses.astuple(word) for word in words]
    print(f"{name}: reference {seconds['reference']:.1f} s, this source {seconds['this source']:.1f} s; "
          f"the same words: {found['reference'] == found['this source']} {[w[0] for w in found['this source']]}",
          flush=True)
