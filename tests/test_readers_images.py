"""Finding and checking labelled images: every bad-input case gives one line naming the file and the fix."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from biolens.errors import InputError
from biolens.readers import images as reader


def _load(data, **kw):
    found = reader.find_labelled(data, kw.pop("group_column", None), kw.get("skip_bad", False))
    return reader.load(found, 32, min_per_class=kw.pop("min_per_class", 5), **kw)


def test_folder_of_folders_reads_real_images(slice_copy):
    loaded = _load(slice_copy / "images")
    assert loaded.pixels.shape[1:] == (32, 32, 3)
    assert set(loaded.images.labels) == {"RBC", "WBC", "Platelets"}
    assert len(loaded.images) == len(list((slice_copy / "images").rglob("*.jpg")))


def test_manifest_with_groups(slice_copy):
    loaded = _load(slice_copy / "manifest.csv", group_column="source_image")
    assert loaded.images.groups is not None and len(set(loaded.images.groups)) == 40


def test_manifest_missing_column(tmp_path):
    (tmp_path / "m.csv").write_text("file,class\na.jpg,x\n")
    with pytest.raises(InputError, match=r"m\.csv: no column path, label"):
        reader.find_labelled(tmp_path / "m.csv")


def test_manifest_empty_label_names_the_line(slice_copy):
    manifest = slice_copy / "manifest.csv"
    lines = manifest.read_text().splitlines()
    first = lines[3].split(",")
    lines[3] = f"{first[0]},,{first[2]}"
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"manifest\.csv line 4: empty label"):
        reader.find_labelled(manifest, "source_image")


def test_manifest_unknown_group_column(slice_copy):
    with pytest.raises(InputError, match="--group-column patient is not a column"):
        reader.find_labelled(slice_copy / "manifest.csv", "patient")


def test_manifest_row_pointing_to_missing_file(slice_copy):
    manifest = slice_copy / "manifest.csv"
    manifest.write_text(manifest.read_text() + "images/RBC/nope.jpg,RBC,BloodImage_99999\n")
    with pytest.raises(InputError, match=r"line \d+ \(images/RBC/nope\.jpg\): file not found"):
        _load(manifest, group_column="source_image")


def test_empty_class_folder(slice_copy):
    (slice_copy / "images" / "Monocyte").mkdir()
    with pytest.raises(InputError, match=r"class folder .*Monocyte is empty"):
        reader.find_labelled(slice_copy / "images")


def test_single_class(slice_copy):
    for name in ("WBC", "Platelets"):
        shutil.rmtree(slice_copy / "images" / name)
    with pytest.raises(InputError, match="single class \\('RBC'\\)"):
        _load(slice_copy / "images")


def test_class_with_too_few_images(slice_copy):
    for extra in sorted((slice_copy / "images" / "WBC").iterdir())[3:]:
        extra.unlink()
    with pytest.raises(InputError, match="class 'WBC' has 3 usable images; at least 5"):
        _load(slice_copy / "images")


def test_corrupt_file_stops_or_is_skipped(slice_copy):
    bad = slice_copy / "images" / "RBC" / "broken.jpg"
    bad.write_bytes(b"not really a jpeg")
    with pytest.raises(InputError, match=r"broken\.jpg: not a readable image.*--skip-bad"):
        _load(slice_copy / "images")
    loaded = _load(slice_copy / "images", skip_bad=True)
    assert [name for name, _ in loaded.bad] == [str(bad)]
    assert bad not in loaded.images.files


def test_duplicated_file_is_named_with_its_twin(slice_copy):
    source = sorted((slice_copy / "images" / "WBC").iterdir())[0]
    shutil.copy(source, slice_copy / "images" / "RBC" / "copy.jpg")
    with pytest.raises(InputError, match=r"the same file as .*\(labelled '\w+' here, '\w+' there\)") as error:
        _load(slice_copy / "images")
    assert "copy.jpg" in str(error.value) and source.name in str(error.value)


def test_mixed_channel_counts(slice_copy):
    tifffile.imwrite(slice_copy / "images" / "RBC" / "five.tif", np.zeros((5, 40, 40), np.uint16) + 7, imagej=True,
                     metadata={"axes": "CYX"})
    with pytest.raises(InputError, match=r"five\.tif: has 5 channels but most images have 3"):
        _load(slice_copy / "images")


def test_loose_file_outside_class_folders(slice_copy):
    Image.new("RGB", (20, 20)).save(slice_copy / "images" / "stray.png")
    with pytest.raises(InputError, match=r"stray\.png is not inside a class sub-folder"):
        reader.find_labelled(slice_copy / "images")


def test_near_duplicates_across_splits_are_found(slice_copy):
    loaded = _load(slice_copy / "images")
    split = np.array(["train"] * len(loaded.images), dtype=object)
    split[0] = "test"
    hashes = loaded.phash.copy()
    hashes[1] = hashes[0] ^ np.uint64(1)  # one bit away: a near-copy in train
    pairs = reader.near_duplicates(hashes, split)
    assert (0, 1, 1) in pairs


def test_a_large_folder_streams_into_the_cache_with_bounded_memory(tmp_path):
    """Decoded pixels go straight to the memory-mapped cache: the anonymous memory a load needs stays far below
    the decoded size (here 3,000 images x 160 px = 230 MB; measured by sampling RssAnon in the loading process)."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "cells" / label).mkdir(parents=True)
        for k in range(1500):
            Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "cells" / label / f"{k}.bmp")
    script = f"""
import threading, time
from pathlib import Path
import numpy as np
from biolens.readers import images

def anon():
    return int([l for l in open('/proc/self/status') if l.startswith('RssAnon')][0].split()[1]) * 1024

peak, done = [0], [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], anon()); time.sleep(0.005)

found = images.find_labelled(Path({str(tmp_path / 'cells')!r}))
baseline = anon()
threading.Thread(target=sample, daemon=True).start()
loaded = images.load(found, 160, cache=Path({str(tmp_path / 'pixels.npy')!r}))
done[0] = True
assert isinstance(loaded.pixels, np.memmap) and loaded.pixels.shape == (3000, 160, 160, 3)
print(peak[0] - baseline, loaded.pixels.nbytes)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    extra, decoded = map(int, result.stdout.split())
    assert extra < decoded / 4, (extra / 2**20, decoded / 2**20)
