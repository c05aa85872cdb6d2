"""Configuration as data: CLI flags, web forms and the Python API all build these dataclasses.

A run is fully described by its config (stored in run.json), so it can be resumed or re-run exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from biolens.errors import InputError
from biolens.models.image import BACKBONES


@dataclass
class SupervisedConfig:
    """What every classifier shares: the data, the split, the training schedule and the calibration."""
    data: str = ""
    group_column: str | None = None
    epochs: int = 30
    batch_size: int = 0                # 0 = chosen from the training-set size (auto_batch_size)
    learning_rate: float = 3e-3
    patience: int = 8
    time_budget: float = 0.0           # seconds of training, 0 = no limit
    test_fraction: float = 0.15
    val_fraction: float = 0.15
    min_per_class: int = 10
    class_weights: bool = True
    conformal_alpha: float = 0.1       # predictions are "unsure" unless the 90% conformal set holds one class
    mixed_precision: str = "auto"
    seed: int = 0

    def validate(self):
        if self.epochs < 1:
            raise InputError(f"Invalid value for --epochs. Received: {self.epochs}. Expected an integer >= 1.")
        if not 0.05 <= self.test_fraction <= 0.5 or not 0.05 <= self.val_fraction <= 0.5:
            raise InputError("Invalid split: --test-fraction and --val-fraction must each be between 0.05 and 0.5.")
        if self.time_budget < 0:
            raise InputError(f"Invalid value for --time-budget. Received: {self.time_budget}. Expected seconds >= 0.")
        if self.mixed_precision not in {"auto", "on", "off"}:
            raise InputError(f"Invalid value for mixed_precision. Received: {self.mixed_precision}. Expected auto, on or off.")
        return self

    def auto_batch_size(self, n_train: int) -> int:
        """Small data needs small batches: enough optimiser steps per epoch, and BatchNorm statistics that settle."""
        if self.batch_size:
            return self.batch_size
        return 8 if n_train < 500 else 16 if n_train < 2000 else 32

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class ClassifyConfig(SupervisedConfig):
    backbone: str = "compact"          # "compact" or a keras.applications name (see BACKBONES)
    weights: str = "imagenet"          # for backbones: "imagenet", "none", or a weights file path
    image_size: int = 0                # 0 = chosen from the data
    augment: bool = True
    skip_bad: bool = False
    learning_curve: str = "auto"       # auto (when affordable), on, off: "is my data enough?"
    add_labels: str = ""               # review.csv with a filled-in 'label' column: extra training images

    def validate(self) -> "ClassifyConfig":
        if self.learning_curve not in {"auto", "on", "off"}:
            raise InputError(f"Invalid value for learning_curve. Received: {self.learning_curve}. Expected auto, on or off.")
        if self.backbone != "compact" and self.backbone not in BACKBONES:
            raise InputError(f"Invalid value for --backbone. Received: {self.backbone}. Expected 'compact' or one of: {', '.join(BACKBONES)}.")
        if self.image_size and not 16 <= self.image_size <= 1024:
            raise InputError(f"Invalid value for --image-size. Received: {self.image_size}. Expected 16 to 1024 pixels.")
        return super().validate()


@dataclass
class SequenceConfig(SupervisedConfig):
    labels: str = ""                   # TSV/CSV with columns id, label (and the group column if one is named)
    length: int = 0                    # 0 = the longest sequence; others are centred and padded with N / cut
    filters: int = 64                  # first-layer filters = candidate motifs
    filter_width: int = 15             # bases per motif window
    both_strands: bool = True          # read both strands (off for strand-specific data such as RNA or mRNA)

    def validate(self) -> "SequenceConfig":
        if self.length and not 8 <= self.length <= 1_000_000:
            raise InputError(f"Invalid value for --length. Received: {self.length}. Expected 8 to 1,000,000 bases.")
        if not 4 <= self.filter_width <= 50:
            raise InputError(f"Invalid value for --filter-width. Received: {self.filter_width}. Expected 4 to 50 bases.")
        if not 4 <= self.filters <= 512:
            raise InputError(f"Invalid value for --filters. Received: {self.filters}. Expected 4 to 512.")
        return super().validate()

    def auto_batch_size(self, n_train: int) -> int:
        """One-hot sequences are small: 16 for small sets (enough steps per epoch; measured steadier than 32
        over seeds on 300 training sequences), then 32 and 64."""
        if self.batch_size:
            return self.batch_size
        return 16 if n_train < 1000 else 32 if n_train < 5000 else 64


@dataclass
class ClusterConfig:
    data: str = ""
    compare_with: str | None = None    # a known label (table column, h5ad obs column, or 'folder' for images): scored, never used
    method: str = "leiden"             # leiden, kmeans or hdbscan
    resolution: float = 0.0            # Leiden resolution, 0 = chosen by stability
    k: int = 0                         # k-means k, 0 = chosen by stability
    embedding: str = "deep"            # which embedding clusters.csv comes from: deep (autoencoder) or pca
    latent: int = 0                    # embedding dimensions, 0 = 16 for tables, 32 for images
    epochs: int = 0                    # autoencoder epochs, 0 = chosen from the data size (early stopping on held-out samples)
    transpose: bool | None = None      # tables: True = rows are features; None = detected
    layer: str | None = None           # h5ad: a layer name or 'raw' (default .X)
    data_type: str = "auto"            # auto, counts or continuous
    image_size: int = 0                # images: 0 = chosen from the data
    n_neighbors: int = 15
    seed: int = 0

    def validate(self) -> "ClusterConfig":
        if self.method not in {"leiden", "kmeans", "hdbscan"}:
            raise InputError(f"Invalid value for --method. Received: {self.method}. Expected leiden, kmeans or hdbscan.")
        if self.embedding not in {"deep", "pca"}:
            raise InputError(f"Invalid value for --embedding. Received: {self.embedding}. Expected deep or pca.")
        if self.data_type not in {"auto", "counts", "continuous"}:
            raise InputError(f"Invalid value for --data-type. Received: {self.data_type}. Expected auto, counts or continuous.")
        if self.resolution < 0 or self.k < 0 or self.k == 1:
            raise InputError("Invalid --resolution/--k: give a positive resolution, or k >= 2 (0 = chosen by stability).")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
