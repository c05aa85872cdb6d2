"""The registry of tasks: everything the faces, predict and the report need to know about a task, in one entry.

Adding a task is one `TaskSpec` here plus its module in tasks/ (which calls `engine.lifecycle.execute`).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from biolens import config as configs
from biolens.errors import InputError


def _pct(value) -> str:
    return f"{100 * value:.1f}%"


@dataclass(frozen=True)
class TaskSpec:
    """One task. `entry` and `predictor` are "module:function" strings, imported only when used (TensorFlow is
    heavy); `headline` turns metrics.json into the one line shown on Home, Compare and the CLI."""
    name: str
    title: str
    config: type
    entry: str
    outputs: tuple[str, ...]
    template: str
    methods: str
    headline_metric: str
    headline_label: str
    headline: Callable[[dict], str]
    predictor: str | None = None
    learning_curve: str | None = None   # "module:function(run, config, metrics)": the curve added to a finished run
    web_form: bool = False
    model: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def function(self, which: str = "entry") -> Callable:
        module, name = getattr(self, which).split(":")
        return getattr(importlib.import_module(module), name)

    def summary(self, metrics: dict) -> str:
        """The headline for a list of runs, or '' when the run has no metrics yet."""
        try:
            return self.headline(metrics) if metrics else ""
        except (KeyError, TypeError, ValueError, IndexError):
            return ""


def _with_ci(metrics: dict, key: str, label: str) -> str:
    value, ci = metrics[key], metrics.get(f"{key}_ci95")
    text = f"{label} {_pct(value)}"
    return text + (f" (95% CI {_pct(ci[0])}-{_pct(ci[1])})" if ci else "")


def quoted_figures(metrics: dict) -> dict:
    """The balanced accuracy a reader is told to quote, and where it comes from: with small data the
    cross-validated estimate over all images (a test set of a few images per class says little), else the test
    set's. The headline (below), the chance-level check (engine/supervised.py) and the warnings all read this one."""
    cv = (metrics.get("small_data") or {}).get("cross_validation")
    if cv:
        return {**cv, "cross_validated": True, "where": "cross-validated over all images"}
    return {**metrics, "cross_validated": False,
            "where": f"on the {metrics.get('n_test', 'held-out')} test {metrics.get('unit', 'images')}"}


def _classify_headline(metrics: dict) -> str:
    """The network's figure, with the classical baseline's beside it (runs since 2026-12-07 have one)."""
    quoted = quoted_figures(metrics)
    text = _with_ci(quoted, "balanced_accuracy",
                    "cross-validated balanced accuracy" if quoted["cross_validated"] else "balanced accuracy")
    base = metrics.get("classical_baseline")
    return text + (f" vs {base['name']} {_pct(base['balanced_accuracy'])}" if base else "")


def _number_ci(metrics: dict, key: str) -> str:
    ci = metrics.get(f"{key}_ci95")
    return f"{metrics[key]:.3f}" + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def _associate_headline(metrics: dict) -> str:
    key = "auc_deep" if "auc_deep" in metrics else "r2_deep"
    return (f"{key.split('_')[0].upper()} deep {_number_ci(metrics, key)} vs additive "
            f"{_number_ci(metrics, key.replace('deep', 'additive'))}")


def _cluster_headline(metrics: dict) -> str:
    ari = (metrics.get("compare") or {}).get("deep", {}).get("ari")
    return f"{metrics['n_clusters']} clusters" + (f", ARI {ari:.3f} vs known labels" if isinstance(ari, (int, float)) else "")


def _pretrain_headline(metrics: dict) -> str:
    probe = metrics.get("probe") or {}
    if "pretrained" in probe:
        return (f"linear probe {_pct(probe['pretrained']['linear_probe'])} vs raw pixels "
                f"{_pct(probe['pixels']['linear_probe'])} (balanced accuracy, folder labels)")
    pre = metrics["pretraining"]
    return f"{metrics['n_images']} images, {pre['epochs_run']} epochs, contrastive loss {pre['final_loss']:.2f}"


def _detect_headline(metrics: dict) -> str:
    return _with_ci(metrics, "f1", "object F1") + f", mean count error {metrics['count_error_pct']:.1f}%"


# the files every finished run of a task holds (some tasks write more when there is something to say, e.g.
# possible_label_errors.csv)
SUPERVISED_OUTPUTS = ("run.json", "metrics.json", "model.keras", "predictions.csv", "splits.csv", "history.csv",
                      "report.html")
CLASSIFY_OUTPUTS = SUPERVISED_OUTPUTS + ("duplicates.csv", "skipped.csv")  # images: near-duplicates, skipped files

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("classify", "image classification", configs.ClassifyConfig, "biolens.tasks.classify:train",
             CLASSIFY_OUTPUTS, "classify.html.j2", "image_methods", "balanced_accuracy", "balanced accuracy",
             _classify_headline, predictor="biolens.tasks.predict:predict_classes",
             learning_curve="biolens.tasks.classify:add_learning_curve", web_form=True, model=True),
    TaskSpec("sequence_classify", "sequence classification", configs.SequenceConfig,
             "biolens.tasks.sequence_classify:train", SUPERVISED_OUTPUTS + ("motifs.tsv", "motifs.meme"),
             "classify.html.j2", "sequence_methods", "balanced_accuracy", "balanced accuracy", _classify_headline,
             predictor="biolens.tasks.predict:predict_classes",
             learning_curve="biolens.tasks.sequence_classify:add_learning_curve", web_form=True, model=True),
    TaskSpec("cluster", "clustering", configs.ClusterConfig, "biolens.tasks.cluster:cluster",
             ("run.json", "metrics.json", "clusters.csv", "embedding.parquet", "markers.tsv", "report.html"),
             "cluster.html.j2", "cluster_methods", "n_clusters", "clusters",
             _cluster_headline,
             web_form=True),
    TaskSpec("associate", "association", configs.AssociateConfig, "biolens.tasks.associate:associate",
             ("run.json", "metrics.json", "variants.tsv", "interactions.tsv", "report.html"),
             "associate.html.j2", "association_methods", "auc_deep", "deep vs additive", _associate_headline,
             web_form=True),
    TaskSpec("detect", "objects in images", configs.DetectConfig, "biolens.tasks.detect:detect",
             ("run.json", "metrics.json", "model.keras", "splits.csv", "history.csv", "test_objects.csv", "report.html"),
             "detect.html.j2", "detect_methods", "f1", "F1 (objects)", _detect_headline,
             predictor="biolens.tasks.detect_predict:predict_objects",
             learning_curve="biolens.tasks.detect:add_learning_curve", web_form=True, model=True),
    TaskSpec("pretrain", "self-supervised image representation", configs.PretrainConfig,
             "biolens.tasks.pretrain:pretrain", ("run.json", "metrics.json", "model.keras", "embedding.parquet",
                                                 "report.html"),
             "pretrain.html.j2", "pretrain_methods", "pretraining", "representation", _pretrain_headline,
             web_form=True, model=True),
)}


def get(name: str | None) -> TaskSpec:
    """The spec of a task name as written in run.json."""
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; biolens knows: {', '.join(TASKS)}.")
    return TASKS[name]


def of_run(info: dict) -> TaskSpec | None:
    """The spec of a run folder's run.json, or None for a folder no task wrote (e.g. a web job still queued)."""
    return TASKS.get(info.get("task"))


def web_tasks() -> list[TaskSpec]:
    return [spec for spec in TASKS.values() if spec.web_form]
