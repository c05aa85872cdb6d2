"""Figures of an association run: Manhattan (classical beside deep), QQ, LD map, interaction map."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from biolens.report.figures import _save, plt


def _minus_log10(p: np.ndarray) -> np.ndarray:
    return -np.log10(np.clip(np.nan_to_num(p, nan=1.0), 1e-300, 1))


def manhattan(pos: np.ndarray, p_site: np.ndarray, p_perm: np.ndarray, importance: np.ndarray, path: Path, *,
              pip: np.ndarray | None = None, chrom: str = "") -> Path:
    panels = [(_minus_log10(p_site), "classical per-site test: -log10 p", "tab:blue"),
              (_minus_log10(p_perm), "deep model: -log10 permutation p", "tab:red"),
              (importance, "deep model: site importance (ISM)", "tab:purple")]
    if pip is not None:
        panels.append((pip, "fine-mapping: posterior inclusion probability", "tab:green"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.4), sharex=True)
    for axis, (values, title, colour) in zip(axes, panels):
        axis.scatter(pos, values, s=8, color=colour, alpha=0.8)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel(f"position on {chrom}" if chrom else "position")
    threshold = -np.log10(0.05 / max(len(pos), 1))
    axes[0].axhline(threshold, color="grey", lw=0.8, ls="--", label="Bonferroni 0.05")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def qq(p_site: np.ndarray, path: Path) -> Path:
    observed = np.sort(_minus_log10(p_site[np.isfinite(p_site)]))[::-1]
    expected = -np.log10((np.arange(1, len(observed) + 1) - 0.5) / len(observed))
    fig, axis = plt.subplots(figsize=(3.8, 3.6))
    axis.scatter(expected, observed, s=8)
    top = max(expected.max(initial=1), observed.max(initial=1))
    axis.plot([0, top], [0, top], color="grey", lw=0.8)
    axis.set_xlabel("expected -log10 p")
    axis.set_ylabel("observed -log10 p")
    axis.set_title("QQ plot, per-site test", fontsize=9)
    return _save(fig, path)


def _binned(matrix: np.ndarray, bins: int) -> np.ndarray:
    """Max over blocks so a 5,000-site matrix still fits a figure without hiding strong cells."""
    size = matrix.shape[0]
    if size <= bins:
        return matrix
    edges = np.linspace(0, size, bins + 1).astype(int)
    return np.maximum.reduceat(np.maximum.reduceat(matrix, edges[:-1], axis=0), edges[:-1], axis=1)


def _position_axes(axis, pos: np.ndarray, shown: int) -> None:
    """Tick labels in base positions on both axes of a site-by-site map (sites in order, `shown` cells a side)."""
    ticks = np.linspace(0, shown - 1, 5)
    labels = [str(int(pos[min(len(pos) - 1, int(round(t * len(pos) / shown)))])) for t in ticks]
    axis.set_xticks(ticks, labels, fontsize=7, rotation=45)
    axis.set_yticks(ticks, labels, fontsize=7)
    axis.set_xlabel("site position")
    axis.set_ylabel("site position")


def ld_map(r2: np.ndarray, pos: np.ndarray, path: Path, bins: int = 400) -> Path:
    fig, axis = plt.subplots(figsize=(4.8, 4.3))
    shown = _binned(r2, bins)
    image = axis.imshow(shown, cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=axis, label="LD r²")
    axis.set_title(f"LD between {len(pos)} sites", fontsize=9)
    _position_axes(axis, pos, shown.shape[0])
    fig.tight_layout()
    return _save(fig, path)


def interaction_map(pairs: np.ndarray, score: np.ndarray, pos: np.ndarray, n_sites: int, path: Path,
                    bins: int = 400, saturated: np.ndarray | None = None) -> Path:
    """Deep interaction score of every pair (upper panel) beside the saturated two-locus test's -log10 p."""
    panels = [(score, "deep model: interaction score", "interaction score (trait SD)", "viridis")]
    if saturated is not None:
        panels.append((_minus_log10(saturated), "saturated 3 x 3 test: -log10 p", "-log10 p", "magma"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.9 * len(panels), 4.3), squeeze=False)
    for axis, (values, title, label, cmap) in zip(axes[0], panels):
        matrix = np.zeros((n_sites, n_sites), dtype=np.float32)
        matrix[pairs[:, 0], pairs[:, 1]] = values
        matrix[pairs[:, 1], pairs[:, 0]] = values
        shown = _binned(matrix, bins)
        image = axis.imshow(shown, cmap=cmap, interpolation="nearest")
        fig.colorbar(image, ax=axis, label=label)
        axis.set_title(title, fontsize=9)
        _position_axes(axis, pos, shown.shape[0])
    fig.tight_layout()
    return _save(fig, path)
