"""Figures of an association run: Manhattan (classical beside deep), QQ, LD map, interaction map."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from biolens.report.figures import _save, plt


def _minus_log10(p: np.ndarray) -> np.ndarray:
    return -np.log10(np.clip(np.nan_to_num(p, nan=1.0), 1e-300, 1))


def _chromosomes(chrom: list[str] | None, n_sites: int) -> list[tuple[str, np.ndarray]]:
    """Each chromosome (in file order) with its sites' indices; one unnamed group when none are given."""
    if chrom is None or len(chrom) == 0:
        return [("", np.arange(n_sites))]
    chrom = np.asarray(chrom, dtype=str)
    return [(name, np.flatnonzero(chrom == name)) for name in dict.fromkeys(chrom)]


def _side_by_side(pos: np.ndarray, groups: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, list[float]]:
    """x of every site: its position on a single chromosome; several chromosomes laid end to end in file order (a
    gap of 3% of the whole between them), with each one's middle for its label."""
    if len(groups) == 1:
        return pos.astype(float), []
    spans = [max(float(pos[i].max() - pos[i].min()), 1.0) for _, i in groups]
    gap = 0.03 * sum(spans)
    x, middles, offset = np.empty(len(pos)), [], 0.0
    for (_, sites), span in zip(groups, spans):
        x[sites] = offset + pos[sites] - pos[sites].min()
        middles.append(offset + span / 2)
        offset += span + gap
    return x, middles


def manhattan(pos: np.ndarray, p_site: np.ndarray, p_perm: np.ndarray, importance: np.ndarray, path: Path, *,
              pip: np.ndarray | None = None, chrom: list[str] | None = None) -> Path:
    """Each site's evidence along the region: chromosomes side by side in alternating shades when there are
    several (positions repeat between chromosomes, so one position axis would lay them over each other)."""
    panels = [(_minus_log10(p_site), "classical per-site test: -log10 p", "tab:blue"),
              (_minus_log10(p_perm), "deep model: -log10 permutation p", "tab:red"),
              (importance, "deep model: site importance (ISM)", "tab:purple")]
    if pip is not None:
        panels.append((pip, "fine-mapping: posterior inclusion probability", "tab:green"))
    groups = _chromosomes(chrom, len(pos))
    x, middles = _side_by_side(np.asarray(pos), groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.4), sharex=True)
    for axis, (values, title, colour) in zip(axes, panels):
        for k, (_, sites) in enumerate(groups):
            axis.scatter(x[sites], values[sites], s=8, color=colour if k % 2 == 0 else "grey", alpha=0.8)
        axis.set_title(title, fontsize=9)
        if middles:
            axis.set_xticks(middles, [name for name, _ in groups], fontsize=7)
            axis.set_xlabel("chromosome")
        else:
            axis.set_xlabel(f"position on {groups[0][0]}" if groups[0][0] else "position")
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


def _position_axes(axis, pos: np.ndarray, shown: int, chrom: list[str] | None = None) -> None:
    """Tick labels in base positions on both axes of a site-by-site map (sites in order, `shown` cells a side);
    with several chromosomes the labels are `chrom:position` and lines mark where each chromosome starts."""
    ticks = np.linspace(0, shown - 1, 5)
    groups = _chromosomes(chrom, len(pos))
    named = len(groups) > 1
    labels = []
    for t in ticks:
        site = min(len(pos) - 1, int(round(t * len(pos) / shown)))
        labels.append(f"{chrom[site]}:{int(pos[site])}" if named else str(int(pos[site])))
    axis.set_xticks(ticks, labels, fontsize=7, rotation=45)
    axis.set_yticks(ticks, labels, fontsize=7)
    for _, sites in groups[1:]:
        edge = sites.min() * shown / len(pos) - 0.5
        axis.axvline(edge, color="0.6", lw=0.8)
        axis.axhline(edge, color="0.6", lw=0.8)
    axis.set_xlabel("site (chromosome:position)" if named else "site position")
    axis.set_ylabel("site (chromosome:position)" if named else "site position")


def ld_map(r2: np.ndarray, pos: np.ndarray, path: Path, bins: int = 400, chrom: list[str] | None = None) -> Path:
    fig, axis = plt.subplots(figsize=(4.8, 4.3))
    shown = _binned(r2, bins)
    image = axis.imshow(shown, cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=axis, label="LD r²")
    axis.set_title(f"LD between {len(pos)} sites", fontsize=9)
    _position_axes(axis, pos, shown.shape[0], chrom)
    fig.tight_layout()
    return _save(fig, path)


def interaction_map(pairs: np.ndarray, score: np.ndarray, pos: np.ndarray, n_sites: int, path: Path,
                    bins: int = 400, saturated: np.ndarray | None = None, chrom: list[str] | None = None) -> Path:
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
        _position_axes(axis, pos, shown.shape[0], chrom)
    fig.tight_layout()
    return _save(fig, path)
