"""Figures of an association run: Manhattan (classical beside deep), QQ, LD map, interaction map."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from biolens.report.figures import _save, plt


def _minus_log10(p: np.ndarray) -> np.ndarray:
    return -np.log10(np.clip(np.nan_to_num(p, nan=1.0), 1e-300, 1))


def manhattan(pos: np.ndarray, p_site: np.ndarray, p_perm: np.ndarray, importance: np.ndarray, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), sharex=True)
    panels = [(_minus_log10(p_site), "classical per-site test: -log10 p", "tab:blue"),
              (_minus_log10(p_perm), "deep model: -log10 permutation p", "tab:red"),
              (importance, "deep model: site importance (ISM)", "tab:purple")]
    for axis, (values, title, colour) in zip(axes, panels):
        axis.scatter(pos, values, s=8, color=colour, alpha=0.8)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("position")
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


def ld_map(r2: np.ndarray, pos: np.ndarray, path: Path, bins: int = 400) -> Path:
    fig, axis = plt.subplots(figsize=(4.6, 4))
    image = axis.imshow(_binned(r2, bins), cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=axis, label="LD r²")
    axis.set_title(f"LD between {len(pos)} sites (in site order, {pos.min()}-{pos.max()})", fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    return _save(fig, path)


def interaction_map(pairs: np.ndarray, score: np.ndarray, pos: np.ndarray, n_sites: int, path: Path,
                    bins: int = 400) -> Path:
    matrix = np.zeros((n_sites, n_sites), dtype=np.float32)
    matrix[pairs[:, 0], pairs[:, 1]] = score
    matrix[pairs[:, 1], pairs[:, 0]] = score
    fig, axis = plt.subplots(figsize=(4.6, 4))
    image = axis.imshow(_binned(matrix, bins), cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=axis, label="interaction score")
    axis.set_title("deep-model interaction score of every site pair", fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    return _save(fig, path)
