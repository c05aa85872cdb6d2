"""Figures of a cluster run: UMAP maps, the stability curve, marker heat map, exemplar and average images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse

from biolens.report.figures import _save, plt


def _scatter(axis, coords, values, title: str) -> None:
    def order(value):  # cluster numbers in numeric order, other labels alphabetically
        text = str(value)
        return (0, int(text), "") if text.lstrip("-").isdigit() else (1, 0, text)

    names = sorted(set(values.tolist()), key=order)
    colours = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    size = max(1.0, min(12.0, 3000 / len(coords)))
    for i, name in enumerate(names):
        mask = values == name
        colour = "lightgrey" if str(name) == "-1" else colours(i % colours.N)
        axis.scatter(coords[mask, 0], coords[mask, 1], s=size, color=colour, label=str(name), linewidths=0, rasterized=True)
        if str(name).isdigit() and len(names) <= 40:  # cluster numbers on the map; long label names only in the legend
            centre = np.median(coords[mask], axis=0)
            axis.text(centre[0], centre[1], str(name), fontsize=8, weight="bold", ha="center", va="center")
    axis.set_xticks([]); axis.set_yticks([]); axis.set_title(title, fontsize=9)
    axis.set_xlabel("UMAP 1", fontsize=8); axis.set_ylabel("UMAP 2", fontsize=8)
    if len(names) <= 20:
        axis.legend(fontsize=6, markerscale=max(1, 6 / size), loc="upper left", bbox_to_anchor=(1.0, 1.0),
                    frameon=False)  # beside the map, never over its points


def umap_panels(coords: np.ndarray, labels: np.ndarray, truth: np.ndarray | None, truth_name: str | None, path: Path,
                title: str) -> Path:
    panels = 2 if truth is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6), squeeze=False)
    _scatter(axes[0, 0], coords, labels, f"clusters ({title})")
    if truth is not None:
        _scatter(axes[0, 1], coords, np.asarray(truth), f"'{truth_name}' (for comparison only)")
    fig.tight_layout()
    return _save(fig, path)


def stability_curve(choice: dict, path: Path) -> Path:
    key = "resolution" if "resolution" in choice else "k"
    fig, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(choice["candidates"], choice["stability"], "o-")
    for x, y, n in zip(choice["candidates"], choice["stability"], choice["n_clusters_per_candidate"]):
        axis.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 5), fontsize=7, ha="center")
    axis.axvline(choice[key], color="tab:red", linestyle=":", label=f"chosen {key} {choice[key]}")
    axis.set_xlabel(key); axis.set_ylabel("stability (ARI on 80% subsamples)"); axis.set_ylim(0, 1.05)
    axis.legend(fontsize=8); axis.set_title("How the setting was chosen (numbers: clusters found)", fontsize=9)
    return _save(fig, path)


def marker_heatmap(analysis, labels: np.ndarray, markers, path: Path, per_cluster: int = 3) -> Path:
    """Mean of the top markers per cluster, each feature scaled 0-1 across clusters."""
    top = markers[markers["rank"] <= per_cluster]
    features = list(dict.fromkeys(top["feature"]))
    clusters = sorted(set(labels[labels >= 0].tolist()))
    columns = [list(analysis.var_names).index(f) for f in features]
    matrix = analysis.X[:, columns]
    matrix = matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
    means = np.array([matrix[labels == c].mean(axis=0) for c in clusters])
    span = means.max(axis=0) - means.min(axis=0)
    scaled = (means - means.min(axis=0)) / np.where(span > 0, span, 1)
    fig, axis = plt.subplots(figsize=(max(5, 0.28 * len(features) + 2), max(2.5, 0.3 * len(clusters) + 1.5)))
    image = axis.imshow(scaled, aspect="auto", cmap="viridis")
    axis.set_xticks(range(len(features)), features, rotation=90, fontsize=7)
    axis.set_yticks(range(len(clusters)), [str(c) for c in clusters], fontsize=7)
    axis.set_ylabel("cluster"); fig.colorbar(image, ax=axis, label="mean, scaled per feature")
    axis.set_title(f"Top {per_cluster} marker features per cluster", fontsize=9)
    return _save(fig, path)


def exemplars(pixels: np.ndarray, embedding: np.ndarray, labels: np.ndarray, path: Path,
              per_cluster: int = 6) -> dict[int, list[int]]:
    """Per cluster: the average image and the images nearest the cluster centre in the embedding."""
    clusters = sorted(set(labels[labels >= 0].tolist()))
    chosen: dict[int, list[int]] = {}
    fig, axes = plt.subplots(len(clusters), per_cluster + 1, figsize=(1.3 * (per_cluster + 1), 1.4 * len(clusters)),
                             squeeze=False)
    for row, c in enumerate(clusters):
        members = np.flatnonzero(labels == c)
        centre = embedding[members].mean(axis=0)
        nearest = members[np.argsort(((embedding[members] - centre) ** 2).sum(axis=1))[:per_cluster]]
        chosen[c] = nearest.tolist()
        average = np.asarray(pixels[members[:2000]], dtype=np.float32).mean(axis=0)
        for col, image in enumerate([average, *[pixels[i] for i in nearest]]):
            axis = axes[row, col]
            axis.imshow(np.asarray(image)[..., :3].astype(np.uint8).squeeze(), cmap="gray")
            axis.axis("off")
        axes[row, 0].set_title(f"cluster {c} (n={len(members)})\naverage", fontsize=7)
        for col in range(len(nearest) + 1, per_cluster + 1):
            axes[row, col].axis("off")
    fig.suptitle("Average image and the images nearest each cluster's centre", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return chosen


def umap_map(coords: np.ndarray, values: np.ndarray, path: Path, title: str) -> Path:
    """One UMAP panel coloured by `values` (labels, or one value for all)."""
    fig, axis = plt.subplots(figsize=(5.4, 4.6))
    _scatter(axis, coords, np.asarray(values), title)
    fig.tight_layout()
    return _save(fig, path)


def neighbour_gallery(pixels: np.ndarray, embedding: np.ndarray, path: Path, *, queries: int = 8, neighbours: int = 6,
                      seed: int = 0) -> Path:
    """Rows of a query image and its nearest neighbours in the embedding (cosine), the queries spread over the
    data (the images nearest k-means centres): what the representation treats as alike."""
    from sklearn.cluster import KMeans

    unit = embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-8)
    queries = min(queries, len(pixels))
    centres = KMeans(queries, n_init=4, random_state=seed).fit(unit).cluster_centers_
    picks = list(dict.fromkeys(int(np.argmax(unit @ c)) for c in centres))
    fig, axes = plt.subplots(len(picks), neighbours + 1, figsize=(1.25 * (neighbours + 1), 1.3 * len(picks)),
                             squeeze=False)
    for row, query in enumerate(picks):
        similarity = unit @ unit[query]
        similarity[query] = -np.inf
        nearest = np.argsort(-similarity)[:neighbours]
        for col, index in enumerate([query, *nearest]):
            axis = axes[row, col]
            axis.imshow(np.asarray(pixels[index])[..., :3].astype(np.uint8).squeeze(), cmap="gray")
            axis.axis("off")
            if col:
                axis.set_title(f"{similarity[index]:.2f}", fontsize=6)
        axes[row, 0].set_title("query", fontsize=7, weight="bold")
    fig.suptitle("Each row: an image and its nearest neighbours in the learned representation (cosine similarity)",
                 fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
