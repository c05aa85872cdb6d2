"""`biolens demo`: the whole workflow on example data, for a first look and for `make demo`."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from biolens import console
from biolens.errors import InputError
from biolens.runs import RUN_FILE, load_run, write_text

SHARED = Path("../shared/data/blood_cells/manifest.csv")
BUNDLED = Path(__file__).resolve().parents[2] / "examples" / "blood_cells_slice" / "manifest.csv"
DEMO_PHOTOS = 120   # smear photos sampled from the shared set: ~1,600 crops, a trusted report in under 3 minutes


def run_demo(out: Path, data: Path | None = None, epochs: int = 5, photos: int = DEMO_PHOTOS) -> None:
    from biolens.tasks.classify import train
    from biolens.tasks.predict import predict

    if _show_finished(Path(out)):  # `make demo` twice: the first run's result, not a refusal
        return
    if data is None:
        data = SHARED if SHARED.exists() else BUNDLED
    if not Path(data).exists():
        raise InputError(f"demo data {data} not found; pass --data with a folder of class sub-folders.")
    data, group, said = _sample_photos(Path(data), Path(out), photos)
    console.say(f"demo: training on {said} for up to {epochs} epochs")
    # the learning curve trains six more models: a first look should be on screen in minutes (biolens train has it)
    if (Path(out) / RUN_FILE).exists():  # a demo stopped part-way: continue it (or only its predictions)
        run = load_run(out)
        if run.status != "complete":
            run = train(resume=out)
    else:
        run = train(data, out, group_column=group, epochs=epochs, seed=0, learning_curve="off")
    with open(run.path / "splits.csv", newline="", encoding="utf-8") as handle:
        test_files = [row["file"] for row in csv.DictReader(handle) if row["split"] == "test"][:40]
    table = predict(run, test_files)  # into the demo's own run folder, which predict --out never writes into
    write_text(run.path / "demo_predictions.csv", table.to_csv(index=False))
    _say_result(run, "demo done.")


def _say_result(run, opening: str) -> None:
    metrics = run.metrics
    console.say(f"{opening} Held-out balanced accuracy {metrics['balanced_accuracy']:.3f} "
                f"(95% CI {metrics['balanced_accuracy_ci95'][0]:.3f}-{metrics['balanced_accuracy_ci95'][1]:.3f}).")
    console.say(f"open the report: {run.report_path.resolve()}")


def _show_finished(out: Path) -> bool:
    """A finished demo in `out`: say its result and where it is instead of training again."""
    if not (out / RUN_FILE).exists() or not (out / "demo_predictions.csv").exists():
        return False
    run = load_run(out)
    if run.status != "complete" or "balanced_accuracy" not in run.metrics:
        return False
    _say_result(run, f"demo: {out} already holds a finished demo (remove it, or give --out NEW, to train again).")
    return True


def _sample_photos(data: Path, out: Path, photos: int) -> tuple[Path, str | None, str]:
    """A manifest with a `source_image` column is cut to the crops of `photos` randomly chosen photos (whole photos,
    so the held-out split stays grouped), written beside the run folder; a class-folder tree is used whole."""
    if data.suffix != ".csv":
        return data, None, str(data)
    table = pd.read_csv(data)
    if "source_image" not in table.columns:
        return data, None, str(data)
    names = np.sort(table["source_image"].astype(str).unique())
    if len(names) <= photos:
        return data, "source_image", f"{data} grouped by source_image"
    chosen = set(np.random.default_rng(0).choice(names, photos, replace=False))
    sample = table[table["source_image"].astype(str).isin(chosen)].copy()
    sample["path"] = [str((data.parent / p).resolve()) for p in sample["path"]]
    path = out.parent / f"{out.name}-sample.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, sample.to_csv(index=False))
    return path, "source_image", (f"{len(sample)} crops of {photos} of the {len(names)} smear photos in {data} "
                                  f"(listed in {path}), grouped by photo")
