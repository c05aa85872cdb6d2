"""What the pages show, read from run folders and the job table: lists, headline metrics, progress, comparisons.

Pure functions over files, so that the pages always agree with the run folders the CLI writes.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from biolens import console
from biolens.engine import registry
from biolens.runs import RUN_FILE, read_json

TASK_NAMES = {name: spec.title for name, spec in registry.TASKS.items()}
# the files a biologist downloads first (the outputs each task lists in the registry, report first); the rest are
# under "all files"
MAIN_FILES = tuple(dict.fromkeys(["report.html", *(name for spec in registry.TASKS.values() for name in spec.outputs
                                                   if name != "run.json"), "possible_label_errors.csv", "run.json",
                                   "regions.html", "regions.tsv"]))
# an association over a BED file of regions (`tasks/associate_regions`): one run per region inside the folder, and
# this page and table over them in place of a report
REGIONS_PAGE, REGIONS_TABLE = "regions.html", "regions.tsv"


def report_page(folder: Path) -> str | None:
    """The page the Run page shows: the run's report, or a regions run's table of regions (which links to theirs)."""
    return next((name for name in ("report.html", REGIONS_PAGE) if (folder / name).is_file()), None)


def regions_headline(folder: Path) -> str:
    """The one line of a regions run: how many regions were run and how many hold a claim across the list."""
    file = folder / REGIONS_TABLE
    if not file.is_file():
        return ""
    with open(file, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    run = [r for r in rows if r.get("status") == "complete"]
    holding = sum(r.get("holds_across_regions") not in ("", "no", None) for r in run)
    return (f"{len(run)} of {len(rows)} regions run; {holding} with a claim holding across them (q < 0.05 / "
            f"{max(len(run), 1)})")


# the Run page's "Use this model elsewhere" menu: `biolens export` formats and what each is for
EXPORT_FORMATS = {"tflite": "TensorFlow Lite (phones, field apps)",
                  "onnx": "ONNX (Fiji, QuPath, Python or R scripts)",
                  "tfjs": "TensorFlow.js (web pages, in the browser)",
                  "savedmodel": "TensorFlow SavedModel (servers, scripts)"}


def run_info(folder: Path) -> dict:
    return _json_or_empty(folder / RUN_FILE)


def run_metrics(folder: Path) -> dict:
    return _json_or_empty(folder / "metrics.json")


def _json_or_empty(file: Path) -> dict:
    try:
        return read_json(file) if file.exists() else {}
    except ValueError:
        return {}  # being replaced this instant (writes are atomic, but a reader may race the rename on some systems)


def status_of(info: dict, job: dict | None) -> str:
    """The job table knows about queued and cancelled, and about a second step running on a finished run; the run
    folder knows the rest."""
    if job and job["status"] in ("queued", "running", "cancelled") and info.get("status") != "complete":
        return job["status"]
    if job and job["status"] in ("queued", "running") and "second_step" in json.loads(job.get("params") or "{}"):
        return job["status"]
    return info.get("status") or (job["status"] if job else "unknown")


def headline(info: dict, metrics: dict) -> str:
    """The one figure a list of runs shows (the task registry's headline, the same as the report's)."""
    spec = registry.of_run(info)
    return spec.summary(metrics) if spec else ""


def at_chance_note(metrics: dict) -> str:
    """The short caution shown beside a guessing model's headline wherever the headline is (Home, Predict's menu)."""
    return "not clearly better than guessing" if metrics.get("at_chance") else ""


def written_warnings(metrics: dict) -> list[str]:
    """The warnings the run wrote beside its headline (engine.supervised.honesty_warnings: chance level,
    calibration), for the Run page."""
    warnings = metrics.get("warnings")
    return [w for w in warnings if isinstance(w, str)] if isinstance(warnings, list) else []


def learning_curve_offer(info: dict, metrics: dict) -> str:
    """The Run page's offer to add the learning curve to a finished run that has none (empty when there is none to
    make), with the time the run itself predicted for it."""
    spec = registry.of_run(info)
    if info.get("status") != "complete" or spec is None or spec.learning_curve is None or metrics.get("learning_curve"):
        return ""
    seconds = metrics.get("learning_curve_expected_seconds")
    when = f" (about {max(1, round(seconds / 60))} minutes on this machine)" if seconds else ""
    return ("Is the data enough? The learning curve retrains the model on a quarter and a half of the training data "
            f"and shows whether more annotation would still help{when}.")


HEADLINE_LABELS = {"classify": "Result on held-out data", "sequence_classify": "Result on held-out data",
                   "detect": "Result on held-out data", "associate": "Result (cross-validated)"}


def headline_label(info: dict) -> str:
    """What the headline figure is: held-out (supervised tasks), cross-validated (association), or neither
    (clustering and pretraining have no held-out data, and must not claim any)."""
    return HEADLINE_LABELS.get(info.get("task"), "Result")


# the CLI's flags, as the New run form names them
FORM_WORDS = {"--trait": "the Trait column field", "--covariates": "the Covariates field",
              "--group-column": "the Group column field", "--compare-with": "the Known label column field",
              "--phenotypes": "the phenotype table", "--genotypes": "the genotype file", "--epochs": "Maximum epochs",
              "--object-size": "Object size", "--skip-bad": "leaving the unreadable files out of the upload",
              "--kind": "What the annotations mark", "--images": "the images given under Data",
              "--time-budget": "the training time limit", "--labels": "the label table",
              "--length": "Bases the model reads", "--min-per-class": "the minimum per class (command line only)",
              "--stack max, mean or first": 'the Multi-page TIFFs field ("one plane": maximum, mean or first page)',
              "--stack channels": 'the Multi-page TIFFs field ("a page per channel")',
              "--stack": "the Multi-page TIFFs field", "--structure-pcs": "the Principal components field",
              "--structure-genotypes FILE": "the Genome-wide markers field",
              "--structure-genotypes": "the Genome-wide markers field",
              "--transpose/--no-transpose": "the \"A table's rows are\" menu"}


def in_web_words(message: str, uploads: Path) -> str:
    """An engine error as the web form shows it: the server's upload folders cut down to the names the person
    uploaded, and the CLI's flags replaced by the form's field names."""
    import re

    root = str(Path(uploads).resolve())
    message = re.sub(re.escape(root) + r"/[^/\s]+/[^/\s]+/", "", message)  # uploads/RUN/WHAT/name -> name
    message = message.replace(root + "/", "")
    for flag, words in sorted(FORM_WORDS.items(), key=lambda item: -len(item[0])):
        message = re.sub(re.escape(flag) + r"(?![\w-])", words, message)
    return message


def table_columns(path: Path, limit: int = 200) -> list[str]:
    """The column names of a table (the shared table reader: any separator, compressed or not); [] for a folder or
    anything that is not a table."""
    from biolens.readers.phenotypes import FAM_COLUMNS
    from biolens.readers.tables import is_table, read_table

    if Path(path).suffix.lower() == ".fam":  # a PLINK .fam: no header, its six columns by name (readers/phenotypes)
        return list(FAM_COLUMNS)
    if not Path(path).is_file() or not is_table(path):
        return []
    columns = [str(c) for c in read_table(path, Path(path).name).columns[:limit]]
    # a commented header's first name (a .psam's #IID) as the phenotype reader reads it (readers/phenotypes.read_table)
    return [columns[0].lstrip("#")] + columns[1:] if columns else columns


def with_ci(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    if not isinstance(value, (int, float)):
        return "-"
    ci = metrics.get(f"{key}_ci95")
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if isinstance(ci, (list, tuple)) and len(ci) == 2 else f"{value:.3f}"


def list_runs(runs_dir: Path, jobs: list[dict]) -> list[dict]:
    """Every run folder under runs_dir (CLI runs too) and every queued job, newest first."""
    latest = {}
    for job in sorted(jobs, key=lambda j: j["id"]):
        latest[job["run"]] = job
    names = {p.name for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
             and ((p / RUN_FILE).exists() or (p / REGIONS_TABLE).exists())}
    rows = []
    for name in names | set(latest):
        folder = runs_dir / name
        info, job = run_info(folder), latest.get(name)
        if not info and not job:
            continue
        metrics = run_metrics(folder)
        regions = not info and (folder / REGIONS_TABLE).exists()  # a regions run made by the CLI has no job
        rows.append({"name": name, "task": TASK_NAMES.get(info.get("task") or (job or {}).get("task")
                                                          or ("associate" if regions else None), "-"),
                     "status": status_of(info, job) if info or job else "complete",
                     "headline": headline(info, metrics) or regions_headline(folder),
                     "caution": at_chance_note(metrics),
                     "created": info.get("created") or time.strftime(
                         "%Y-%m-%dT%H:%M:%S%z", time.localtime(job["created"] if job else folder.stat().st_mtime)),
                     "error": info.get("error") or (job or {}).get("error") or ""})
    return sorted(rows, key=lambda r: r["created"], reverse=True)


def read_history(folder: Path) -> list[dict]:
    file = folder / "history.csv"
    if not file.exists():
        return []
    with open(file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def progress(folder: Path, job: dict | None, log_file: Path) -> dict:
    """What the Run page refreshes every second: status, epoch of epochs, curves, a training ETA and the log.

    A run is marked complete a moment before its report is written; the page reloads only once both are there.
    """
    info = run_info(folder)
    history = read_history(folder)
    epochs = int(info.get("config", {}).get("epochs") or 0)
    status = status_of(info, job)
    eta = None
    if status == "running" and history and epochs:
        elapsed = float(history[-1].get("elapsed_s") or 0)
        eta = round(elapsed / len(history) * max(epochs - len(history), 0))
    return {"status": status, "epoch": len(history), "epochs": epochs, "eta_s": eta,
            "stages": stages(folder) if status == "running" else [],
            "history": [{k: row.get(k) for k in ("epoch", "loss", "val_loss", "val_balanced_accuracy")} for row in history],
            "log": tail(log_file, 40), "error": info.get("error") or (job or {}).get("error") or "",
            "done": status not in ("queued", "running") and (status != "complete" or report_page(folder) is not None)}


def stages(folder: Path) -> list[dict]:
    """The stages under way (outermost first) from the run's progress.json, as the page shows them: name, 'done of
    total unit', the share done and an ETA from the pace so far (the same events the CLI's Rich bars show)."""
    file, region = folder / console.PROGRESS_FILE, ""
    if not file.exists():  # a regions run: the stages of the region under way (the one whose progress moved last)
        inner = [p for p in folder.glob(f"*/{console.PROGRESS_FILE}")]
        if inner:
            file = max(inner, key=lambda p: p.stat().st_mtime)
            region = f"{file.parent.name}: "
    try:
        running = read_json(file).get("running", []) if file.exists() else []
    except (OSError, ValueError):  # a file being replaced right now: the next refresh reads it
        return []
    now, shown = time.time(), []
    for stage in running:
        done, total = stage.get("done"), stage.get("total")
        elapsed = max(now - float(stage.get("started") or now), 0.0)
        item = {"name": region + stage.get("name", ""), "elapsed_s": round(elapsed), "fraction": None, "eta_s": None,
                "count": ""}
        if total:
            item["fraction"] = round(min(max(done or 0, 0) / total, 1.0), 3)
            item["count"] = f"{done or 0} of {total} {stage.get('unit') or ''}".strip()
            first = stage.get("first_done") or 0   # a resumed training starts at its last finished epoch
            if (done or 0) > first:
                item["eta_s"] = round(elapsed / (done - first) * max(total - done, 0))
        shown.append(item)
    return shown


def tail(file: Path, lines: int) -> str:
    if not file.exists():
        return ""
    with open(file, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(handle.tell() - 64_000, 0))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


def downloads(folder: Path) -> tuple[list[str], list[str]]:
    """(main files present, every other file) as paths relative to the run folder; checkpoints stay out."""
    main = [name for name in MAIN_FILES if (folder / name).is_file()]
    rest = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") or part in ("checkpoints", "cache", "tensorboard")
                                             for part in p.relative_to(folder).parts)
                  and p.name not in main and p.name != console.PROGRESS_FILE)
    return main, rest


def compare(runs_dir: Path, names: list[str]) -> dict:
    """Settings side by side (the differing ones first) and every metric that has a CI, for two or more runs."""
    infos = {name: run_info(runs_dir / name) for name in names}
    metrics = {name: run_metrics(runs_dir / name) for name in names}
    keys = sorted({k for info in infos.values() for k in info.get("config", {})})
    settings = []
    for key in keys:
        values = [_setting(key, infos[n].get("config", {})) for n in names]
        settings.append({"key": key.replace("_", " "), "cells": values, "differs": len(set(values)) > 1})
    settings.sort(key=lambda s: not s["differs"])
    settings = [{"key": "task", "cells": [TASK_NAMES.get(infos[n].get("task"), "-") for n in names],
                 "differs": len({infos[n].get("task") for n in names}) > 1}, *settings]
    metric_keys = [k for k in dict.fromkeys(k for m in metrics.values() for k in m)
                   if any(isinstance(m.get(k), (int, float)) and not isinstance(m.get(k), bool) for m in metrics.values())
                   and not k.endswith("_ci95")]
    has_ci = {k for k in metric_keys if any(f"{k}_ci95" in m for m in metrics.values())}
    rows = [{"key": METRIC_NAMES.get(k, k.replace("_", " ")), "cells": [_metric(metrics[n], k) for n in names]}
            for k in metric_keys]
    return {"names": names, "settings": settings, "verdicts": verdicts(runs_dir, names),
            "metrics": [r for r, k in zip(rows, metric_keys) if k in has_ci],
            "other_metrics": [r for r, k in zip(rows, metric_keys) if k not in has_ci]}


METRIC_NAMES = {"balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1", "ece": "calibration error (ECE)",
                "accuracy": "accuracy", "auc_deep": "AUC, deep model", "auc_additive": "AUC, additive model",
                "r2_deep": "R², deep model", "r2_additive": "R², additive model",
                "r2_main_effects": "R², additive + dominance model", "auc_main_effects": "AUC, additive + dominance model",
                "r2_dominance_over_additive": "R² gain, additive + dominance over additive",
                "auc_dominance_over_additive": "AUC gain, additive + dominance over additive",
                "f1": "F1 (objects)",
                "count_mae": "count error per unit (MAE)", "nmi": "NMI with the known label", "ari": "ARI with the known label",
                "n_train": "training items", "n_val": "validation items", "n_test": "test items",
                "best_epoch": "epoch kept", "epochs_run": "epochs run", "train_seconds": "training time",
                "ece_before_calibration": "calibration error before calibration",
                "temperature": "calibration temperature", "learning_curve_expected_seconds": "learning curve, time expected",
                "misclassified_total": "test items misclassified", "n_test_units": "test units",
                "n_test_objects": "test objects", "object_size_px": "object size (px)",
                "matching_radius_px": "matching radius (px)", "count_error_pct": "count error (%)"}
BACKBONE_CHOICES = [("compact", "Compact (trains from scratch; best on a laptop)"),
                    ("MobileNetV3Small", "MobileNetV3 Small (ImageNet start when available)"),
                    ("EfficientNetB0", "EfficientNet B0 (ImageNet start when available; GPU advised)"),
                    ("ResNet50V2", "ResNet50 v2 (ImageNet start when available; GPU advised)"),
                    ("ConvNeXtTiny", "ConvNeXt Tiny (ImageNet start when available; GPU advised)")]
NEW_RUN_CHOICES = {"backbones": BACKBONE_CHOICES, "image_sizes": [0, 32, 48, 64, 96, 128, 224]}
def estimate_words(facts: dict) -> str:
    """The New run form's time estimate, in a sentence or three."""
    minutes = facts["total_minutes_at_most"]
    total = f"{minutes:.0f} minutes" if minutes >= 1.5 else "about a minute" if minutes >= 0.75 else "under a minute"
    if facts.get("task") == "detect":
        words = (f"Measured on this machine: {facts['n_objects']} annotated objects in {facts['n_images']} image(s), "
                 f"about {facts['epoch_seconds']:.0f} s per epoch for {facts['epochs']} epochs"
                 + (f" of each of {facts['networks']} networks (few annotated objects: several networks are averaged)"
                    if facts.get("networks", 1) > 1 else "")
                 + f", so at most {total} in all (early stopping often ends sooner)")
        if facts["region_split"]:
            words += ", counting the delivered network trained again on every annotated region"
        words += "." + (f" The learning curve adds about {facts['learning_curve_minutes']:.0f} minutes of that."
                        if facts["learning_curve_runs"] else
                        f" The learning curve would add about {facts['learning_curve_minutes']:.0f} minutes and is "
                        "not run unless asked for.")
        if "a GPU would matter" in facts.get("advice", ""):
            words += " A GPU would matter here, or a training time limit caps it."
        return words
    words = (f"Measured on this machine: {facts['n_images']} images at {facts['image_size']} x {facts['image_size']} "
             f"px, about {facts['epoch_seconds']:.0f} s per epoch, so at most {total} for {facts['epochs']} epochs "
             "(early stopping often ends sooner; the learning curve, when it runs, adds up to three quarters of that "
             "again).")
    if facts.get("read_seconds", 0) >= 5:
        words += f" Reading the images first takes about {facts['read_seconds']:.0f} s."
    if "a GPU would matter" in facts.get("advice", ""):
        words += " A GPU would matter here: convolutions typically run 10-50 times faster on a workstation GPU."
    return words


AUTOMATIC_WHEN_ZERO = ("image_size", "object_size", "time_budget", "epochs_pretrain", "n_clusters", "learning_rate",
                       "batch_size")


def _setting(key: str, config: dict) -> str:
    """A run's setting as a person reads it: 0 for a chosen-for-you value says 'auto', no empty cells, no 'None',
    and starting weights only for a network that takes them (the compact one always trains from scratch)."""
    value = config.get(key, "")
    if value in (None, ""):
        return "-"
    if key == "weights" and config.get("backbone", "compact") == "compact":
        return "- (compact trains from scratch)"
    if value == 0 and key in AUTOMATIC_WHEN_ZERO:
        return "auto" if key != "time_budget" else "none"
    return _short(value)


def _metric(metrics: dict, key: str) -> str:
    """A metric with its interval; otherwise whole numbers (counts, epochs) without decimals, times in seconds,
    anything else to three significant digits (issue 18: "65.000" and "10.300" read as false precision)."""
    value = metrics.get(key)
    if f"{key}_ci95" in metrics or not isinstance(value, (int, float)) or isinstance(value, bool):
        return with_ci(metrics, key)
    if key.endswith("seconds"):
        return f"{value:,.0f} s"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


PAIRED_TASKS = ("classify", "sequence_classify")   # runs whose predictions.csv lists each test item's prediction


def verdicts(runs_dir: Path, names: list[str]) -> list[str]:
    """One plain sentence per pair of runs (the first four ticked): which is better on the same test items (a paired
    bootstrap of the balanced-accuracy difference, or of object F1 over the same held-out units), no clear
    difference, or why they cannot be compared."""
    from itertools import combinations

    from biolens.engine.evaluation import paired_difference

    sentences = []
    for a, b in list(combinations(names[:4], 2)):
        task_a, task_b = run_info(runs_dir / a).get("task"), run_info(runs_dir / b).get("task")
        if task_a != task_b:
            sentences.append(f"{a} and {b} are not comparable: different tasks ({TASK_NAMES.get(task_a, task_a)} "
                             f"and {TASK_NAMES.get(task_b, task_b)}).")
            continue
        if task_a == "detect":
            sentences.append(_detection_verdict(runs_dir, a, b))
            continue
        if task_a not in PAIRED_TASKS:
            sentences.append(f"{a} and {b}: no paired test for {TASK_NAMES.get(task_a, task_a)} runs; read the "
                             "intervals below (intervals that overlap widely are no evidence of a difference).")
            continue
        tables = [_test_predictions(runs_dir / n) for n in (a, b)]
        if any(t is None for t in tables):
            sentences.append(f"{a} and {b}: one of them has no predictions.csv (unfinished?); no verdict.")
            continue
        if set(tables[0]) != set(tables[1]) or any(tables[0][k][0] != tables[1][k][0] for k in tables[0]):
            sentences.append(f"{a} and {b} were tested on different images (or labels), so their scores are not "
                             "comparable head to head; read each one's interval below.")
            continue
        keys = sorted(tables[0])
        found = paired_difference([tables[0][k][0] for k in keys], [tables[0][k][1] for k in keys],
                                  [tables[1][k][1] for k in keys])
        low, high = found["ci95"]
        figures = (f"balanced accuracy {found['a']:.3f} vs {found['b']:.3f} on the same {found['n_items']} test items; "
                   f"difference {found['difference']:+.3f} (95% CI {low:+.3f} to {high:+.3f}, paired bootstrap)")
        sentences.append(_which_is_better(a, b, low, high, figures))
    return sentences


def _which_is_better(a: str, b: str, low: float, high: float, figures: str) -> str:
    """The verdict of a paired interval of the difference a - b: better only when it excludes 0."""
    if low > 0:
        return f"{a} is better than {b}: {figures}."
    if high < 0:
        return f"{b} is better than {a}: {figures}."
    return f"No clear difference between {a} and {b}: {figures}."


def _detection_verdict(runs_dir: Path, a: str, b: str) -> str:
    """Object-finding runs: a paired bootstrap of the object F1 difference over the held-out units both share."""
    from biolens.stats.objects import paired_f1_difference

    tables = [_test_counts(runs_dir / n) for n in (a, b)]
    if any(t is None for t in tables):
        return f"{a} and {b}: one of them has no test_counts.tsv (unfinished?); no verdict."
    if set(tables[0]) != set(tables[1]) or any(tables[0][k][0] != tables[1][k][0] for k in tables[0]):
        return (f"{a} and {b} were tested on different held-out images (or annotations), so their scores are not "
                "comparable head to head; read each one's interval below.")
    units = sorted({key[0] for key in tables[0]})

    def per_unit(table: dict, column: int) -> list[int]:  # summed over classes: 0 true, 1 found, 2 matched
        totals = dict.fromkeys(units, 0)
        for key, values in table.items():
            totals[key[0]] += values[column]
        return [totals[unit] for unit in units]

    first, second = tables
    found = paired_f1_difference(per_unit(first, 0), per_unit(first, 1), per_unit(first, 2), per_unit(second, 1),
                                 per_unit(second, 2))
    low, high = found["ci95"]
    figures = (f"object F1 {found['a']:.3f} vs {found['b']:.3f} on the same {found['n_units']} held-out units; "
               f"difference {found['difference']:+.3f} (95% CI {low:+.3f} to {high:+.3f}, paired bootstrap)")
    return _which_is_better(a, b, low, high, figures)


def _test_counts(folder: Path) -> dict | None:
    """{(unit, image, label): (true, found, matched)} from a detection run's test_counts.tsv."""
    file = folder / "test_counts.tsv"
    if not file.exists():
        return None
    with open(file, newline="") as handle:
        return {(row["unit"], row["image"], row["label"]): (int(row["true"]), int(row["found"]), int(row["matched"]))
                for row in csv.DictReader(handle, delimiter="\t")}


def _test_predictions(folder: Path) -> dict | None:
    """{test item: (true, predicted)} from a run's predictions.csv."""
    file = folder / "predictions.csv"
    if not file.exists():
        return None
    with open(file, newline="") as handle:
        return {row["file"]: (row["true"], row["predicted"]) for row in csv.DictReader(handle)}


THUMBNAIL_PX = 160


def thumbnails(sources: list[Path], folder: Path) -> list[str]:
    """A small PNG per source image (k.png in `folder`, the k-th source), for the Predict table; '' where an image
    cannot be drawn (a stack, an unusual TIFF), which then shows its name only."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k, source in enumerate(sources):
        try:
            with Image.open(source) as image:
                image.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))
                image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                image.convert("RGB").save(folder / f"{k}.png")
            names.append(f"{k}.png")
        except (OSError, ValueError):
            names.append("")
    return names


def _short(value) -> str:
    text = {True: "yes", False: "no"}[value] if isinstance(value, bool) else str(value)
    return text if len(text) <= 80 else "..." + text[-77:]
