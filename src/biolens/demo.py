"""`biolens demo`: the whole workflow on example data, for a first look and for `make demo`."""
from __future__ import annotations

import csv
from pathlib import Path

from biolens import console
from biolens.errors import InputError
from biolens.runs import write_text

SHARED = Path("../shared/data/blood_cells/manifest.csv")
BUNDLED = Path(__file__).resolve().parents[2] / "examples" / "blood_cells_slice" / "manifest.csv"


def run_demo(out: Path, data: Path | None = None, epochs: int = 12) -> None:
    from biolens.tasks.classify import train
    from biolens.tasks.predict import predict

    if data is None:
        data = SHARED if SHARED.exists() else BUNDLED
    if not Path(data).exists():
        raise InputError(f"demo data {data} not found; pass --data with a folder of class sub-folders.")
    group = "source_image" if Path(data).suffix == ".csv" else None
    console.say(f"demo: training on {data}{' grouped by ' + group if group else ''} for up to {epochs} epochs")
    # the learning curve trains six more models: a first look should be on screen in minutes (biolens train has it)
    run = train(data, out, group_column=group, epochs=epochs, seed=0, learning_curve="off")
    with open(run.path / "splits.csv", newline="", encoding="utf-8") as handle:
        test_files = [row["file"] for row in csv.DictReader(handle) if row["split"] == "test"][:40]
    table = predict(run, test_files)  # into the demo's own run folder, which predict --out never writes into
    write_text(run.path / "demo_predictions.csv", table.to_csv(index=False))
    metrics = run.metrics
    console.say(f"demo done. Held-out balanced accuracy {metrics['balanced_accuracy']:.3f} "
                f"(95% CI {metrics['balanced_accuracy_ci95'][0]:.3f}-{metrics['balanced_accuracy_ci95'][1]:.3f}).")
    console.say(f"open the report: {run.report_path.resolve()}")
