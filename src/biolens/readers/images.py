"""Labelled and unlabelled image collections: a folder of class sub-folders, or a manifest CSV.

Everything a user can get wrong about their images is checked here, once, before any training:
unreadable files, empty or tiny classes, a single class, duplicated files, mixed channel counts and bad
manifest rows. Each problem is one line naming the file (or manifest line) and the fix.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from biolens.errors import InputError
from biolens.readers.image_decode import IMAGE_SUFFIXES, DecodeError, decode, header_size

IGNORED_NAMES = {"thumbs.db", "desktop.ini"}


@dataclass
class ImageSet:
    """Files with (optional) labels and groups, as found on disk, before decoding."""

    files: list[Path]
    labels: list[str] | None = None
    groups: list[str] | None = None
    origin: list[str] = field(default_factory=list)   # how to name each file in messages
    source: str = ""
    root: Path | None = None
    ignored: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def with_added(self, files: list[Path], labels: list[str], origin: list[str]) -> "ImageSet":
        """This set plus labelled files from elsewhere (each its own group: they only ever go to training)."""
        groups = None if self.groups is None else self.groups + [f"added:{f}" for f in files]
        return ImageSet(self.files + files, self.labels + labels, groups, self.origin + origin, self.source,
                        self.root, self.ignored)

    def subset(self, keep: list[int]) -> "ImageSet":
        pick = lambda seq: None if seq is None else [seq[i] for i in keep]  # noqa: E731
        return ImageSet([self.files[i] for i in keep], pick(self.labels), pick(self.groups),
                        [self.origin[i] for i in keep], self.source, self.root, self.ignored)


@dataclass
class LoadedImages:
    """Decoded pixels (N, size, size, C) uint8 with what the checks found."""

    images: ImageSet
    pixels: np.ndarray
    sha256: list[str]
    phash: np.ndarray                   # (N,) uint64 perceptual hashes
    original_sizes: list[tuple[int, int]]
    bad: list[tuple[str, str]]          # (file, reason) for files skipped with --skip-bad
    notes: Counter


# ----------------------------------------------------------------------------------------------
# Finding the files
# ----------------------------------------------------------------------------------------------
def find_labelled(data: Path | str, group_column: str | None = None, skip_bad: bool = False) -> ImageSet:
    """A labelled image set from a folder of class sub-folders or a manifest CSV (`path,label[,group]`)."""
    data = Path(data)
    if not data.exists():
        raise InputError(f"{data} does not exist. Give a folder with one sub-folder per class, or a manifest CSV.")
    if data.is_file():
        if data.suffix.lower() not in {".csv", ".tsv", ".txt"}:
            raise InputError(f"{data} is a file but not a manifest CSV. Give a folder of class sub-folders or a CSV with columns path,label.")
        return _from_manifest(data, group_column)
    if group_column:
        raise InputError(f"--group-column {group_column} needs a manifest CSV with that column; {data} is a folder.")
    return _from_class_folders(data, skip_bad)


def _from_class_folders(root: Path, skip_bad: bool) -> ImageSet:
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if p.is_file() and p.name.lower() not in IGNORED_NAMES]
    if not folders:
        raise InputError(f"{root} has no class sub-folders. Put the images of each class in their own folder, "
                         f"e.g. {root}/healthy/ and {root}/infected/, or give a manifest CSV.")
    files, labels, ignored = [], [], []
    for path in loose:
        if skip_bad:
            ignored.append(f"{path}: not inside a class sub-folder")
        else:
            raise InputError(f"{path} is not inside a class sub-folder; move it into one, remove it, or pass --skip-bad.")
    for folder in folders:
        found = [p for p in sorted(folder.rglob("*")) if p.is_file() and not _hidden(p, folder)]
        if not found:
            raise InputError(f"class folder {folder} is empty; add images of class '{folder.name}' or remove the folder.")
        files += found
        labels += [folder.name] * len(found)
    return ImageSet(files, labels, None, [str(f) for f in files], f"folder {root}", root, ignored)


def _hidden(path: Path, base: Path) -> bool:
    parts = path.relative_to(base).parts
    return any(part.startswith(".") for part in parts) or path.name.lower() in IGNORED_NAMES


def _from_manifest(manifest: Path, group_column: str | None) -> ImageSet:
    from biolens.readers.tables import read_table

    table = read_table(manifest, "manifest", missing=[]).fillna("")
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise InputError(f"{manifest}: no column {', '.join(missing)} (found: {', '.join(table.columns)}). The header must include path,label.")
    if group_column and group_column not in table.columns:
        raise InputError(f"{manifest}: --group-column {group_column} is not a column (found: {', '.join(table.columns)}).")
    files, labels, groups, origin = [], [], [], []
    for row_number, row in enumerate(table.itertuples(index=False), start=2):  # line 1 is the header
        record = row._asdict()
        path_text, label = record["path"].strip(), record["label"].strip()
        where = f"{manifest} line {row_number}"
        if not path_text:
            raise InputError(f"{where}: empty path; fill it in or delete the row.")
        if not label:
            raise InputError(f"{where}: empty label for {path_text}; fill it in or delete the row.")
        group = record[group_column].strip() if group_column else None
        if group_column and not group:
            raise InputError(f"{where}: empty {group_column} for {path_text}; every image needs a group when --group-column is used.")
        path = Path(path_text)
        files.append(path if path.is_absolute() else manifest.parent / path)
        labels.append(label)
        groups.append(group)
        origin.append(f"{where} ({path_text})")
    if not files:
        raise InputError(f"{manifest} has no rows; add one row per image: path,label.")
    return ImageSet(files, labels, groups if group_column else None, origin, f"manifest {manifest}", manifest.parent)


def find_unlabelled(inputs: list[Path | str], *, minimum: int = 1, why: str = "") -> ImageSet:
    """Images to predict or cluster: folders (searched recursively), single files, or a mix; fewer than `minimum`
    is a one-line error that says `why` they are needed."""
    files: list[Path] = []
    ignored: list[str] = []
    for item in map(Path, inputs):
        if item.is_dir():
            inside = [p for p in sorted(item.rglob("*")) if p.is_file() and not _hidden(p, item)
                      and p.name.lower() not in IGNORED_NAMES]
            found = [p for p in inside if p.suffix.lower() in IMAGE_SUFFIXES]
            # every other file is named (predict lists it with its reason), never dropped silently
            ignored += [f"{p}: not an image biolens reads (extension '{p.suffix}'); convert it to PNG, JPEG or TIFF"
                        for p in inside if p.suffix.lower() not in IMAGE_SUFFIXES]
            if not found:
                raise InputError(f"{item} holds no JPEG, PNG, BMP or TIFF images.")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{item} does not exist; give image files or folders of images.")
    if len(files) < minimum:
        where = ", ".join(map(str, inputs))
        raise InputError(f"{where}: only {len(files)} images; at least {minimum} are needed" + (f": {why}." if why else "."))
    return ImageSet(files, None, None, [str(f) for f in files], "inputs", ignored=ignored)


# ----------------------------------------------------------------------------------------------
# Decoding and checking
# ----------------------------------------------------------------------------------------------
def auto_image_size(images: ImageSet, sample: int = 400) -> int:
    """Model input side chosen from the data: 64 px for small crops, 96 up to 256 px, else 128.

    Small enough to train from scratch on a laptop CPU, large enough to keep the detail that crops of
    single cells or colonies carry. Override with --image-size.
    """
    rng = np.random.default_rng(0)
    picks = rng.choice(len(images), size=min(sample, len(images)), replace=False)
    sides = [min(s) for i in picks if (s := header_size(images.files[i]))]
    median = float(np.median(sides)) if sides else 128.0
    return 64 if median <= 128 else 96 if median <= 256 else 128


def load(images: ImageSet, size: int, *, skip_bad: bool = False, min_per_class: int = 0,
         allow_duplicates: bool = False, cache: Path | None = None,
         progress: Callable[[int], None] | None = None, stack: str = "refuse") -> LoadedImages:
    """Decode every file to `size` x `size`, check the collection, and return pixels plus findings.

    Without `skip_bad` the first bad file stops everything with one line naming it; with it, bad files
    and exact duplicates are dropped and listed in `LoadedImages.bad`.
    """
    n = len(images)
    workers = min(8, (os.cpu_count() or 2) * 2)

    def work(i: int):
        try:
            raw = images.files[i].read_bytes()
        except FileNotFoundError:
            return i, DecodeError("file not found; check the path"), ""
        except OSError as exc:
            return i, DecodeError(f"cannot be read ({exc.strerror}); check permissions"), ""
        digest = hashlib.sha256(raw).hexdigest()
        try:
            return i, decode(images.files[i], size, stack), digest
        except DecodeError as exc:
            return i, exc, digest

    # Pixels go straight into their row as each file is decoded (a memory-mapped cache file for large sets), so
    # memory holds one batch of decoded images, never the whole set. The usual channel count is the majority of
    # a sample; files that differ are dealt with like any other bad file.
    usual = _usual_channels(images, size, stack=stack)
    shape = (n, size, size, usual)
    pixels = np.lib.format.open_memmap(cache, mode="w+", dtype=np.uint8, shape=shape) if cache else np.empty(shape, np.uint8)
    outcome: list[tuple[str | None, str]] = [("", "")] * n   # (problem or None, sha256)
    facts: list[tuple] = [None] * n                          # type: ignore[list-item]  (original size, note, phash)
    with ThreadPoolExecutor(workers) as pool:
        for i, result, digest in _in_order(pool, work, n, workers):
            if isinstance(result, DecodeError):
                outcome[i] = (str(result), digest)
            elif result.channels != usual:
                outcome[i] = (f"has {result.channels} channels but most images have {usual}; convert it to match", digest)
            else:
                pixels[i] = result.pixels
                facts[i] = (result.original_size, result.note, perceptual_hash(result.pixels))
                outcome[i] = (None, digest)
            if progress:
                progress(1)

    bad: list[tuple[str, str]] = list((name, reason) for name, reason in _split_ignored(images.ignored))
    keep: list[int] = []
    first_seen: dict[str, int] = {}
    for i, (problem, digest) in enumerate(outcome):
        if problem is not None:
            _bad_or_raise(images, i, problem, skip_bad, bad)
            continue
        if digest in first_seen and not allow_duplicates:
            j = first_seen[digest]
            reason = f"the same file as {images.origin[j]}"
            if images.labels and images.labels[i] != images.labels[j]:
                reason += f" (labelled '{images.labels[i]}' here, '{images.labels[j]}' there)"
            _bad_or_raise(images, i, reason + "; remove one copy", skip_bad, bad)
            continue
        first_seen[digest] = i
        keep.append(i)
    if not keep:
        raise InputError(f"no readable images in {images.source}.")
    kept = images.subset(keep)
    if kept.labels is not None:
        check_classes(kept, min_per_class)
    for row, i in enumerate(keep):  # close the gaps the dropped files left (rows only ever move up)
        if row != i:
            pixels[row] = pixels[i]
    pixels = pixels[: len(keep)]
    notes: Counter = Counter()
    for i in keep:
        if facts[i][1]:
            notes.update(facts[i][1].split("; "))
    hashes = np.array([facts[i][2] for i in keep], dtype=np.uint64)
    return LoadedImages(kept, pixels, [outcome[i][1] for i in keep], hashes, [facts[i][0] for i in keep], bad, notes)


def _usual_channels(images: ImageSet, size: int, sample: int = 64, stack: str = "refuse") -> int:
    """The channel count most of a spread sample of files decode to (3 for RGB and converted modes)."""
    counts: Counter = Counter()
    for i in np.linspace(0, len(images) - 1, min(sample, len(images))).astype(int):
        try:
            counts[decode(images.files[i], min(size, 32), stack).channels] += 1
        except (DecodeError, OSError):
            continue
    return counts.most_common(1)[0][0] if counts else 3


def _in_order(pool: ThreadPoolExecutor, work, n: int, workers: int):
    """pool.map that keeps at most a few batches of decoded images waiting (map itself would queue them all)."""
    window = workers * 4
    pending = [pool.submit(work, i) for i in range(min(window, n))]
    for i in range(n):
        yield pending[i].result()
        pending[i] = None  # release the decoded image
        if i + window < n:
            pending.append(pool.submit(work, i + window))


def _split_ignored(ignored: list[str]):
    for line in ignored:
        name, _, reason = line.partition(": ")
        yield name, reason


def _bad_or_raise(images: ImageSet, i: int, reason: str, skip_bad: bool, bad: list) -> None:
    if not skip_bad:
        raise InputError(f"{images.origin[i]}: {reason}. Fix it, or pass --skip-bad to leave such files out (they are listed in the run folder).")
    bad.append((images.origin[i], reason))


def check_classes(images: ImageSet, min_per_class: int) -> None:
    counts = Counter(images.labels)
    if len(counts) < 2:
        only = next(iter(counts), "?")
        raise InputError(f"{images.source} has a single class ('{only}'); a classifier needs at least two. Add a folder (or label) for each other class.")
    for label, count in sorted(counts.items(), key=lambda kv: kv[1]):
        if count < min_per_class:
            raise InputError(f"class '{label}' has {count} usable images; at least {min_per_class} are needed to train, "
                             "validate and test. Add images, merge it with another class, or lower --min-per-class.")


def perceptual_hash(pixels: np.ndarray) -> np.uint64:
    """64-bit pHash (DCT of a 32x32 greyscale thumbnail), as in imagehash, packed into one integer."""
    import imagehash
    from PIL import Image

    grey = pixels[..., :3].mean(axis=-1).astype(np.uint8)
    bits = imagehash.phash(Image.fromarray(grey)).hash.flatten()
    return np.uint64(int("".join("1" if b else "0" for b in bits), 2))


def near_duplicates(hashes: np.ndarray, split: np.ndarray, max_distance: int = 4) -> list[tuple[int, int, int]]:
    """Pairs (i, j, distance) of images in different splits whose pHashes differ in <= max_distance bits."""
    pairs = []
    for i in np.flatnonzero(split != "train"):
        distance = np.bitwise_count(np.bitwise_xor(hashes, hashes[i]))
        for j in np.flatnonzero((distance <= max_distance) & (split != split[i])):
            if split[j] == "train" or j > i:
                pairs.append((int(i), int(j), int(distance[j])))
    return pairs


def read_added_labels(path: Path, class_names: list[str]) -> tuple[list[Path], list[str], list[str]]:
    """Rows of a review.csv (or any CSV with columns file, label) whose label is filled in: (files, labels, origin)
    (train --add-labels)."""
    from biolens.readers.tables import read_table

    table = read_table(path, "--add-labels", missing=[]).fillna("")
    missing = {"file", "label"} - set(table.columns)
    if missing:
        raise InputError(f"--add-labels {path}: needs columns file and label (missing: {', '.join(sorted(missing))}).")
    files, labels, origin = [], [], []
    for line, row in enumerate(table.itertuples(index=False), start=2):
        label = row.label.strip()
        if not label:
            continue
        if label not in class_names:
            raise InputError(f"--add-labels {path}, line {line}: label '{label}' is not one of the classes "
                             f"({', '.join(class_names)}); correct it or leave it empty to skip the image.")
        file = Path(row.file) if Path(row.file).is_absolute() else path.parent / row.file
        if not file.exists():
            raise InputError(f"--add-labels {path}, line {line}: {row.file} does not exist.")
        files.append(file.resolve())
        labels.append(label)
        origin.append(f"{path.name} line {line}")
    if not files:
        raise InputError(f"--add-labels {path}: no row has a label; fill in the 'label' column first.")
    return files, labels, origin
