"""Unsupervised learning: embed, cluster, explain — assay tables (CSV/TSV/Parquet/h5ad/10x) and image folders.

Stages (checkpointed under checkpoints/, so --resume skips what finished): read + preprocess (stats/preprocess.py)
-> embedding: tables: autoencoder beside PCA; images: a self-supervised encoder (SimCLR, trained here on these
images or taken from --init-from RUN) beside the convolutional autoencoder and PCA of raw pixels
-> clustering of each with the setting chosen by stability (stats/clustering.py) -> what sets clusters apart
(markers for tables, exemplar and average images for images) -> outputs, figures, report.
A known label (`--compare-with`) is only ever used to score (ARI/NMI), never as input.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from biolens import console
from biolens.config import ClusterConfig
from biolens.errors import InputError
from biolens.engine import lifecycle
from biolens.runs import Run, atomic_path, cached_stage, write_csv, write_json

TASK = "cluster"
MIN_IMAGES = 32  # images are embedded by a self-supervised encoder, which contrasts each image with a batch of others
REFERENCE_AUTOENCODER_EPOCHS = 40  # images: the autoencoder is scored beside the self-supervised encoder


def cluster(data: str | Path | None = None, out: str | Path | None = None, *, resume: str | Path | None = None,
            **options) -> Run:
    """Embed, cluster and explain unlabelled data.

    Args:
        data: a table (CSV/TSV/Parquet), an AnnData .h5ad, a 10x matrix (.h5 or folder with matrix.mtx), or a
            folder of images.
        out: the run folder to create.
        resume: an interrupted run folder to continue instead.
        **options: any field of `ClusterConfig` (compare_with, method, resolution, k, embedding, seed, ...).

    Example:
        >>> run = biolens.cluster("pbmc.h5ad", out="runs/clu", compare_with="cell_type")   # doctest: +SKIP
        >>> run.metrics["compare"]["deep"]["ari"]                                           # doctest: +SKIP
    """
    if resume is None:
        if data is None:
            raise InputError("give the data to cluster: a table, an h5ad file, a 10x matrix or a folder of images.")
        options["data"] = str(Path(data).resolve())
    return lifecycle.execute(TASK, out=out, resume=resume, options=options, prepare=_prepare, body=_run_stages)


def _prepare(config: ClusterConfig, run: Run | None, out: Path) -> lifecycle.Prepared:
    source = Path(config.data)
    images = _is_image_folder(source)
    loaded = _load_images(source, config) if images else _load_table(source, config)
    if config.k and config.k > len(loaded["ids"]) // 2:
        raise InputError(f"Invalid value for --k. Received: {config.k}. Expected at most {len(loaded['ids']) // 2} "
                         f"(half of the {len(loaded['ids'])} samples in {source.name}).")
    loaded["images"] = images
    if config.embedding == "autoencoder" and not images:
        raise InputError("--embedding autoencoder is for image folders; for tables the autoencoder is --embedding deep.")
    return lifecycle.Prepared(loaded, lifecycle.data_fingerprint([source]),
                              {"input_kind": "images" if images else loaded["kind"]})


def _is_image_folder(path: Path) -> bool:
    from biolens.readers.assays import is_assay

    return path.is_dir() and not is_assay(path)


def _load_table(source: Path, config: ClusterConfig) -> dict:
    from biolens.readers.assays import read_assay
    from biolens.stats.preprocess import prepare

    with console.step(f"reading {source.name}"):
        assay = read_assay(source, transpose=config.transpose, layer=config.layer, kind=config.data_type,
                           keep=[config.compare_with] if config.compare_with else [])
    truth = None
    if config.compare_with:
        if config.compare_with not in assay.data.obs.columns:
            columns = ", ".join(assay.data.obs.columns) or "none"
            raise InputError(f"{source}: no column '{config.compare_with}' to compare with (label columns: {columns}).")
        truth = assay.data.obs[config.compare_with].astype(str).to_numpy()
    with console.step(f"preprocessing {assay.data.n_obs} samples x {assay.data.n_vars} features ({assay.kind})"):
        prepared = prepare(assay.data, assay.kind)
    keep = prepared.keep_samples
    # only the source path is kept from the reader: the matrix lives on in `prepared` (raw counts and one working copy)
    return {"source": assay.source, "prepared": prepared, "ids": list(assay.data.obs_names[keep]), "kind": assay.kind,
            "truth": truth[keep] if truth is not None else None,
            "notes": assay.notes + prepared.notes, "steps": [assay.orientation, *prepared.steps]}


def _load_images(source: Path, config: ClusterConfig) -> dict:
    from biolens.readers import images as image_reader

    found = image_reader.find_unlabelled([source], minimum=MIN_IMAGES,
                                         why="clustering learns what the images look like by contrasting each with "
                                             "a batch of others, and needs groups to find")
    size = config.image_size or image_reader.auto_image_size(found)
    with console.progress_bar(f"reading {len(found)} images at {size}x{size}", len(found)) as advance:
        loaded = image_reader.load(found, size, allow_duplicates=True, progress=advance, stack=config.stack)
    files = loaded.images.files
    truth = None
    if config.compare_with:
        if config.compare_with != "folder":
            raise InputError("for images, --compare-with folder scores the clusters against the sub-folder names; "
                             f"'{config.compare_with}' is not available.")
        truth = np.array([f.parent.name for f in files])
        if len(set(truth)) < 2:
            raise InputError(f"{source}: --compare-with folder needs images in at least two sub-folders.")
    notes = [f"{count} images: {note}." for note, count in loaded.notes.items()]
    return {"pixels": loaded.pixels, "ids": [str(f) for f in files], "truth": truth, "kind": "images", "notes": notes,
            "steps": [f"images resized to {size}x{size} px, pixels scaled to 0-1"], "image_size": size}


def _run_stages(run: Run, config: ClusterConfig, loaded: dict) -> bool:
    from biolens import hardware
    from biolens.stats.clustering import cluster as cluster_embedding
    from biolens.stats.clustering import neighbor_graph, silhouette, umap_coordinates

    images = loaded["images"]
    hardware.setup("auto")
    run.update_info(preprocessing=loaded["steps"], warnings=loaded["notes"], n_samples=len(loaded["ids"]))
    for note in loaded["notes"]:
        console.say(f"note: {note}")
    embeddings = cached_stage(run, "embedding", lambda: _embed(run, loaded, config, images))
    deep, reference = embeddings["deep"], embeddings["reference"]
    embedding_info = json.loads(str(embeddings["info"]))

    def clusters() -> dict:
        with console.step(f"clustering ({config.method}) and UMAP"):
            graph = neighbor_graph(deep, config.n_neighbors, config.seed)
            labels, choice = cluster_embedding(deep, method=config.method, resolution=config.resolution or None,
                                               k=config.k or None, n_neighbors=config.n_neighbors, seed=config.seed,
                                               graph=graph)
            n_found = int(labels.max() + 1)
            reference_graph = neighbor_graph(reference, config.n_neighbors, config.seed)
            if images:  # the peer the issue names: k-means on raw pixels, same number of clusters
                ref_labels, ref_choice = cluster_embedding(reference, method="kmeans", k=max(2, n_found), seed=config.seed)
            else:
                ref_labels, ref_choice = cluster_embedding(reference, method=config.method,
                                                           resolution=config.resolution or None, k=config.k or None,
                                                           n_neighbors=config.n_neighbors, seed=config.seed,
                                                           graph=reference_graph)
            extra = {}
            if "autoencoder" in embeddings:  # images: the autoencoder is a second peer, with the same k
                extra["autoencoder"], _ = cluster_embedding(embeddings["autoencoder"], method="kmeans",
                                                            k=max(2, n_found), seed=config.seed)
            return {"deep": labels, "reference": ref_labels, **extra,
                    "umap": umap_coordinates(deep, config.n_neighbors, config.seed, graph=graph),
                    "umap_reference": umap_coordinates(reference, config.n_neighbors, config.seed, graph=reference_graph),
                    "choice": np.array(json.dumps({"deep": choice, "reference": ref_choice}))}

    result = cached_stage(run, "clusters", clusters)
    choice = json.loads(str(result["choice"]))
    main = {"deep": "deep", "pca": "reference", "autoencoder": "autoencoder"}[config.embedding]
    labels = result[main]
    # the autoencoder peer is k-means with the self-supervised clustering's k: that is its "choice"
    chosen = choice.get(main, {"method": "kmeans", "k": int(labels.max() + 1), "chosen_by": "the deep clustering"})
    metrics = {"n_samples": len(labels), "input": loaded["kind"], "embedding_used": config.embedding,
               "embedding": embedding_info, "choice": chosen, "n_clusters": int(labels.max() + 1),
               "cluster_sizes": {str(c): int((labels == c).sum()) for c in range(int(labels.max()) + 1)},
               "silhouette": silhouette(embeddings[main], labels, config.seed),
               "reference": {"name": "k-means on PCA of raw pixels" if images else "PCA (50 components) + same clustering",
                             "n_clusters": int(result["reference"].max() + 1), "choice": choice["reference"],
                             "silhouette": silhouette(reference, result["reference"], config.seed)},
               "deep": {"n_clusters": int(result["deep"].max() + 1), "choice": choice["deep"],
                        "silhouette": silhouette(deep, result["deep"], config.seed)}}
    if "autoencoder" in result:
        metrics["autoencoder"] = {"name": "convolutional autoencoder + k-means (same number of clusters)",
                                  "n_clusters": int(result["autoencoder"].max() + 1),
                                  "silhouette": silhouette(embeddings["autoencoder"], result["autoencoder"], config.seed)}
    if (labels < 0).any():
        metrics["noise"] = int((labels < 0).sum())
    truth = loaded["truth"]
    if truth is not None:
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        metrics["compare_with"] = config.compare_with
        metrics["compare"] = {name: {"ari": float(adjusted_rand_score(truth, result[name])),
                                     "nmi": float(normalized_mutual_info_score(truth, result[name]))}
                              for name in ("deep", "autoencoder", "reference") if name in result}
        metrics["contingency"] = _contingency(truth, labels)
        metrics["embedding_verdict"] = _embedding_verdict(metrics["compare"], metrics["embedding_used"])
    _write_outputs(run, config, loaded, images, result, labels, main)
    metrics["seconds"] = round(lifecycle.elapsed_seconds(run), 1)
    write_json(run.path / "metrics.json", metrics)
    summary = f"{metrics['n_clusters']} clusters in {metrics['n_samples']} samples"
    if truth is not None:
        c = metrics["compare"]
        summary += (f"; against '{config.compare_with}': ARI {c['deep']['ari']:.3f} deep vs {c['reference']['ari']:.3f} "
                    f"reference, NMI {c['deep']['nmi']:.3f} vs {c['reference']['nmi']:.3f}")
    console.say(summary)
    return True


def _contingency(truth: np.ndarray, labels: np.ndarray) -> dict:
    """Samples of each known label in each cluster ({label: {cluster: count}}), for the report's table."""
    import pandas as pd

    table = pd.crosstab(pd.Series(truth, name="label"), pd.Series(labels, name="cluster"))
    return {str(label): {str(c): int(n) for c, n in row.items()} for label, row in table.iterrows()}


def _embedding_verdict(compare: dict, used: str) -> str:
    """Plain words on whether the learned embedding grouped the known label better than PCA did (NMI, same k)."""
    deep, reference = compare.get("deep"), compare.get("reference")
    if not deep or not reference or used == "pca":
        return ""
    gain = deep["nmi"] - reference["nmi"]
    if gain >= 0.05:
        return (f"The learned embedding matches the known label clearly better than PCA (NMI {deep['nmi']:.3f} vs "
                f"{reference['nmi']:.3f}).")
    if gain > -0.05:
        return (f"The learned embedding is no better than PCA at matching the known label (NMI {deep['nmi']:.3f} vs "
                f"{reference['nmi']:.3f}): the simpler PCA clusters are as good here.")
    return (f"The learned embedding matches the known label worse than PCA (NMI {deep['nmi']:.3f} vs "
            f"{reference['nmi']:.3f}); prefer --embedding pca for this data.")


def _standardised(x: np.ndarray) -> np.ndarray:
    """Each dimension to unit variance: a learned code has no meaningful scale per dimension (the decoder or the
    projection head absorbs any), so distances are taken after this; PCA's variances do mean something and are kept."""
    return (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8)


def _embed(run: Run, loaded: dict, config: ClusterConfig, images: bool) -> dict:
    from biolens.stats.preprocess import pca_reference
    from biolens.engine.embedding import train_table_embedding

    if images:
        return _embed_images(run, loaded, config)
    with console.step("training the autoencoder"):
        deep, info = train_table_embedding(loaded["prepared"], latent=config.latent or 16, epochs=config.epochs,
                                           seed=config.seed)
    deep = _standardised(deep)
    info["standardised"] = True
    with console.step("PCA reference"):
        reference = pca_reference(loaded["prepared"], seed=config.seed)
    info["reference_dimensions"] = int(reference.shape[1])
    return {"deep": deep, "reference": reference, "info": np.array(json.dumps(info))}


def _embed_images(run: Run, loaded: dict, config: ClusterConfig) -> dict:
    """Three embeddings of the images: self-supervised (the one clustered by default), the convolutional
    autoencoder and PCA of raw pixels (the peers the report scores it against)."""
    from biolens.engine import pretraining
    from biolens.engine.embedding import train_image_embedding

    pixels = loaded["pixels"]
    if config.init_from:
        model, source = pretraining.transferable_model(Path(config.init_from))
        encoder = pretraining.as_encoder(model, pixels.shape[-1], config.init_from)
        summary = {"from_run": str(config.init_from), "from_task": source.get("task"),
                   "from_images": source.get("n_images") or (source.get("config") or {}).get("data")}
    else:
        encoder, summary = pretraining.encoder_in_run(run, pixels, seed=config.seed, epochs=config.epochs,
                                                      label="self-supervised pretraining")
    with console.step("features of every image"):
        deep = _standardised(pretraining.features(encoder, pixels))
    with console.step("training the autoencoder (reference)"):  # a peer now, so capped: at most 40 epochs by default
        autoencoder, ae_info = train_image_embedding(pixels, latent=config.latent or 32,
                                                     epochs=config.epochs or REFERENCE_AUTOENCODER_EPOCHS,
                                                     seed=config.seed)
    with console.step("PCA reference"):
        reference = pretraining.pixel_reference(pixels, config.seed)
    info = {"method": "self-supervised (SimCLR) encoder", "self_supervised": summary, "autoencoder": ae_info,
            "standardised": True, "reference_dimensions": int(reference.shape[1])}
    return {"deep": deep, "autoencoder": _standardised(autoencoder), "reference": reference,
            "info": np.array(json.dumps(info))}


def _write_outputs(run: Run, config, loaded, images, result, labels, main) -> None:
    from biolens.report import cluster_figures

    ids = loaded["ids"]
    write_csv(run.path / "clusters.csv", ["id", "cluster"], [[i, int(c)] for i, c in zip(ids, labels)])
    chosen = _embedding_of(run, main)
    frame = pd.DataFrame(chosen, columns=[f"dim_{i + 1}" for i in range(chosen.shape[1])])
    frame.insert(0, "id", ids)
    with atomic_path(run.path / "embedding.parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    figures = run.path / "figures"
    truth = loaded["truth"]
    cluster_figures.umap_panels(result["umap"], result["deep"], truth, config.compare_with, figures / "umap.png",
                                title="self-supervised embedding" if images else "autoencoder embedding")
    cluster_figures.umap_panels(result["umap_reference"], result["reference"], truth, config.compare_with,
                                figures / "umap_reference.png", title="classical reference")
    choice = json.loads(str(result["choice"])).get(main, {})
    if choice.get("chosen_by") == "stability":
        cluster_figures.stability_curve(choice, figures / "stability.png")
    if images:
        trained = run.path / "checkpoints" / "encoder.keras"
        if trained.exists():  # the encoder learned here, for `--init-from` in a later run
            import shutil

            with atomic_path(run.path / "encoder.keras") as tmp:
                shutil.copyfile(trained, tmp)
        embedding = np.asarray(_embedding_of(run, main))
        rows = cluster_figures.exemplars(loaded["pixels"], embedding, labels, figures / "cluster_images.png")
        write_csv(run.path / "exemplars.csv", ["cluster", "rank", "file"],
                  [[c, r + 1, ids[i]] for c, members in rows.items() for r, i in enumerate(members)])
        return
    from biolens.stats.markers import cluster_markers

    with console.step("marker features per cluster (rank-sum tests)"):
        prepared = loaded["prepared"]
        markers = cluster_markers(prepared.analysis, labels, kind=loaded["kind"], seed=config.seed)
    if loaded["kind"] == "counts":
        markers = markers.rename(columns={"effect_size": "log2_fold_change"})
    else:  # the share of non-zero values means nothing for continuous measurements
        markers = markers.rename(columns={"effect_size": "mean_difference"}).drop(columns=["pct_in", "pct_out"])
    readable = markers.drop(columns=["p_value", "q_value"]).round(6)  # p and q are never rounded to 0
    readable[["p_value", "q_value"]] = markers[["p_value", "q_value"]].map(lambda v: f"{v:.4g}")
    write_csv(run.path / "markers.tsv", list(markers.columns), readable[list(markers.columns)].values.tolist(),
              delimiter="\t")
    if len(markers):
        cluster_figures.marker_heatmap(prepared.analysis, labels, markers, figures / "markers.png")
    if loaded["source"].name.lower().endswith(".h5ad"):
        _write_result_h5ad(run, loaded, result, labels, main)


def _embedding_of(run: Run, main: str) -> np.ndarray:
    with np.load(run.path / "checkpoints" / "embedding.npz", allow_pickle=False) as saved:
        return saved[main]


def _write_result_h5ad(run: Run, loaded, result, labels, main) -> None:
    """The input AnnData with obsm['X_biolens'], obsm['X_umap'] and obs['biolens_cluster'] (samples left out: NaN/-1)."""
    import warnings

    import anndata

    with warnings.catch_warnings():  # anndata's notes about old files' layout are not the user's concern
        warnings.simplefilter("ignore", FutureWarning)
        original = anndata.read_h5ad(loaded["source"])
    keep = loaded["prepared"].keep_samples
    embedding = _embedding_of(run, main)
    full = np.full((original.n_obs, embedding.shape[1]), np.nan, dtype=np.float32)
    full[keep] = embedding
    umap = np.full((original.n_obs, 2), np.nan, dtype=np.float32)
    umap[keep] = result["umap"] if main == "deep" else result["umap_reference"]
    clusters = np.full(original.n_obs, -1)
    clusters[keep] = labels
    original.obsm["X_biolens"] = full
    original.obsm["X_umap"] = umap
    original.obs["biolens_cluster"] = pd.Categorical(clusters.astype(str))
    with atomic_path(run.path / "result.h5ad") as tmp:
        original.write_h5ad(tmp)
