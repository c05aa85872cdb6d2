"""Figures for reports, written as PNG files into the run folder's figures/."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from biolens.runs import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def training_curves(history: list[dict], path: Path, best_epoch: int | None = None) -> Path:
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [row.get("loss") for row in history], label="training loss (augmented, weighted)")
    left.plot(epochs, [row.get("val_loss") for row in history], label="validation loss")
    left.set_xlabel("epoch"); left.set_ylabel("cross-entropy"); left.legend(fontsize=8)
    right.plot(epochs, [row.get("val_balanced_accuracy") for row in history], color="tab:green",
               label="validation balanced accuracy")
    right.set_xlabel("epoch"); right.set_ylim(0, 1.02); right.legend(fontsize=8)
    if best_epoch:
        for axis in (left, right):
            axis.axvline(best_epoch, color="grey", linestyle=":", linewidth=1)
    fig.suptitle("Training curves (dotted line: the epoch kept)", fontsize=10)
    return _save(fig, path)


def confusion(matrix: list[list[int]], class_names: list[str], path: Path) -> Path:
    counts = np.asarray(matrix, dtype=float)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(3.5, 0.6 * len(class_names) + 2)
    fig, axis = plt.subplots(figsize=(size, size * 0.85))
    axis.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            axis.text(j, i, f"{int(counts[i, j])}\n{rows[i, j]:.0%}", ha="center", va="center", fontsize=8,
                      color="white" if rows[i, j] > 0.6 else "black")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted"); axis.set_ylabel("true")
    axis.set_title("Test-set confusion matrix (count, row %)", fontsize=10)
    return _save(fig, path)


def reliability(before: dict, after: dict, path: Path) -> Path:
    fig, axis = plt.subplots(figsize=(4, 4))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.plot(before["confidence"], before["accuracy"], "o-", label="raw softmax", alpha=0.6)
    axis.plot(after["confidence"], after["accuracy"], "s-", label="temperature-scaled")
    axis.set_xlabel("confidence"); axis.set_ylabel("accuracy"); axis.set_xlim(0, 1); axis.set_ylim(0, 1.02)
    axis.legend(fontsize=8); axis.set_title("Calibration on the test set", fontsize=10)
    return _save(fig, path)


def class_counts(counts: dict[str, dict[str, int]], path: Path, unit: str = "images") -> Path:
    names = list(next(iter(counts.values())).keys())
    fig, axis = plt.subplots(figsize=(max(4, 0.7 * len(names) + 2), 3))
    bottom = np.zeros(len(names))
    for part, colour in zip(("train", "val", "test"), ("tab:blue", "tab:orange", "tab:green")):
        values = np.array([counts[part].get(n, 0) for n in names])
        axis.bar(names, values, bottom=bottom, label=part, color=colour)
        bottom += values
    axis.set_ylabel(unit); axis.legend(fontsize=8); axis.tick_params(axis="x", rotation=45)
    axis.set_title(f"{unit.capitalize()} per class and split", fontsize=10)
    return _save(fig, path)


def caption(text: str, width: int = 20, lines: int = 3) -> str:
    """A caption that fits under a small image: wrapped at `width` characters, at most `lines` lines, long words
    (file names) shortened in the middle, so neighbouring captions never run into each other."""
    import textwrap

    words = [w if len(w) <= width else w[:width // 2 - 1] + "…" + w[-(width // 2 - 1):] for w in text.split()]
    wrapped = textwrap.wrap(" ".join(words), width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines - 1] + [wrapped[lines - 1][:width - 1] + "…"]
    return "\n".join(wrapped)


def _show(axis, image) -> None:
    """One image as the network sees it: grey for one channel, the first three channels as RGB otherwise."""
    image = np.asarray(image)
    grey = image.shape[-1] == 1
    axis.imshow(image[..., 0] if grey else image[..., :3].astype(np.uint8), cmap="gray" if grey else None)


def class_examples(pixels: np.ndarray, y: np.ndarray, rows: np.ndarray, class_names: list[str], path: Path,
                   per_class: int = 6, seed: int = 0) -> Path:
    """A few training images of each class, one row per class, as the model sees them (after resizing): what the
    labels mean, and whether a class is really what the folder name says."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(class_names), per_class, figsize=(per_class * 1.3, len(class_names) * 1.45),
                             squeeze=False)
    for c, name in enumerate(class_names):
        members = rows[y[rows] == c]
        chosen = np.sort(rng.choice(members, min(per_class, len(members)), replace=False)) if len(members) else []
        for k, axis in enumerate(axes[c]):
            axis.set_xticks([]); axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
            if k < len(chosen):
                _show(axis, pixels[chosen[k]])
        axes[c, 0].set_ylabel(caption(name, width=14, lines=2), fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("Examples of each class (training images, as the network sees them)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def misclassified(pixels: np.ndarray, titles: list[str], path: Path, columns: int = 8) -> Path:
    """The misclassified test images, most confident mistakes first: where a wrong label or an odd image is seen."""
    rows = int(np.ceil(len(pixels) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.45, rows * 1.85), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, title in zip(axes.flat, pixels, titles):
        _show(axis, image)
        axis.set_title(caption(title, width=16), fontsize=6.5)
    fig.suptitle("Misclassified test images (true -> predicted, confidence)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def gradcam_grid(pixels: np.ndarray, heatmaps: np.ndarray, titles: list[str], path: Path, columns: int = 6) -> Path:
    rows = int(np.ceil(len(pixels) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.8, rows * 2.3), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, heat, title in zip(axes.flat, pixels, heatmaps, titles):
        axis.imshow(image[..., :3].astype(np.uint8))
        axis.imshow(heat, cmap="jet", alpha=0.35, vmin=0, vmax=1)
        axis.set_title(caption(title), fontsize=7)
    fig.suptitle("Grad-CAM: where the network found evidence for its prediction", fontsize=10)
    return _save(fig, path)


def motif_logos(motifs: list, path: Path, top: int = 8) -> Path:
    """Information-content sequence logos (logomaker) of the most important learned motifs."""
    import logomaker
    import pandas as pd

    shown = motifs[:top]
    fig, axes = plt.subplots(len(shown), 1, figsize=(6, 1.35 * len(shown)), squeeze=False)
    for axis, motif in zip(axes[:, 0], shown):
        probabilities = pd.DataFrame(motif.probabilities, columns=list("ACGT"))
        bits = logomaker.transform_matrix(probabilities, from_type="probability", to_type="information")
        logomaker.Logo(bits, ax=axis, color_scheme="classic")
        axis.set_ylim(0, 2); axis.set_ylabel("bits", fontsize=8); axis.set_xticks([])
        axis.set_title(f"{motif.name}  {motif.consensus}  ·  favours {motif.favours}  ·  importance "
                       f"{motif.importance:.3f}  ·  {motif.n_sites} sites", fontsize=8, loc="left")
    fig.tight_layout()
    return _save(fig, path)


def learning_curve(curve: dict, path: Path) -> Path:
    """Measured held-out scores per training-set size, the fitted curve, and the predictions at 2x and 4x."""
    from biolens.stats.learning_curve import CurveFit

    sizes = np.asarray(curve["sizes"], dtype=float)
    unit = "training " + curve.get("unit", "images")     # detection curves count annotated objects
    score, class_score = {"f1": ("object F1", "F1")}.get(curve.get("metric"), ("balanced accuracy", "recall"))
    fit = CurveFit(curve["plateau"], curve.get("scale", 0.0), curve["rate"])
    largest = sizes.max()
    grid = np.geomspace(sizes.min(), 4 * largest, 100)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    overall = axes[0]
    overall.scatter(sizes, curve["scores"], color="tab:blue", s=18, label="measured (held-out test)")
    overall.plot(grid, fit.predict(grid), color="tab:blue", linewidth=1, label="fitted curve")
    for factor, (estimate, low, high) in curve["predicted"].items():
        x = largest * float(factor.rstrip("x"))
        overall.errorbar([x], [estimate], yerr=[[estimate - low], [high - estimate]], fmt="s", color="tab:orange",
                         capsize=3, label=f"predicted at {factor} (95% range)" if factor == "2x" else None)
    overall.set_xscale("log"); overall.set_xlabel(unit); overall.set_ylabel(score)
    overall.set_title("Overall", fontsize=9); overall.legend(fontsize=7)
    per_class = axes[1]
    for name, values in curve["per_class"].items():
        shown = [(n, v) for n, v in zip(sizes, values["scores"]) if v is not None]
        per_class.plot([n for n, _ in shown], [v for _, v in shown], marker="o", markersize=3, linewidth=0.8,
                       label=f"{name} (2x: {values['predicted']['2x'][0]:.2f})")
    per_class.set_xscale("log"); per_class.set_xlabel(unit); per_class.set_ylabel(class_score)
    per_class.set_title("Per class", fontsize=9); per_class.legend(fontsize=7)
    fig.suptitle("Is the data enough? Held-out score against training-set size", fontsize=10)
    return _save(fig, path)
