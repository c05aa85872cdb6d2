"""Decode one image file of any common microscopy or photo format into a small uint8 array.

Handles JPEG/PNG/BMP/TIFF, 8/16-bit and float, greyscale/RGB/RGBA/CMYK/palette, multi-channel TIFF
(kept as channels, e.g. fluorescence), EXIF rotation, and very large images, which are downscaled
(never tiled: a class label describes the whole image) without holding a full-resolution float copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
LARGE_SIDE = 4096                  # above this, an image is reported as downscaled from a large original
Image.MAX_IMAGE_PIXELS = 400_000_000  # 20k x 20k; larger files are refused as decompression bombs
_PIL_STANDARD = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"}


class DecodeError(Exception):
    """The file cannot be used as an image; the message says why, without the file name."""


@dataclass
class Decoded:
    pixels: np.ndarray     # (size, size, channels) uint8
    original_size: tuple[int, int]   # (width, height) before resizing
    channels: int
    note: str = ""         # how intensities were scaled, when that is not plain 8-bit


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) read from the header only, or None when the header is unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except Exception:
        pass
    if path.suffix.lower() in {".tif", ".tiff"}:
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape
                return (shape[-1], shape[-2]) if len(shape) == 2 else (shape[1], shape[0])
        except Exception:
            return None
    return None


def decode(path: Path, size: int) -> Decoded:
    """Read `path` and resize it to `size` x `size`; raise DecodeError with a reason a user can act on."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DecodeError(f"not an image (extension '{path.suffix}'); biolens reads JPEG, PNG, BMP and TIFF")
    try:
        with Image.open(path) as img:
            if img.mode in _PIL_STANDARD:
                return _decode_pil(img, size)
    except DecodeError:
        raise
    except Image.DecompressionBombError:
        raise DecodeError(f"image is larger than {Image.MAX_IMAGE_PIXELS:,} pixels; crop or downscale it first")
    except (OSError, ValueError, SyntaxError) as exc:
        if path.suffix.lower() not in {".tif", ".tiff"}:
            raise DecodeError(_reason(exc)) from None
    return _decode_array(_read_array(path), size)


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "truncated" in text:
        return "the file is truncated (incomplete download or copy); copy it again"
    if "cannot identify" in text or "not a" in text:
        return "not a readable image (corrupt, or another file type renamed); replace or remove it"
    return f"cannot be decoded ({exc}); replace or remove it"


def _decode_pil(img: Image.Image, size: int) -> Decoded:
    original = img.size
    if img.format == "JPEG":
        img.draft("RGB", (size * 2, size * 2))  # DCT-domain downscale: a 10k x 10k JPEG never decodes fully
    try:
        img.load()
    except (OSError, ValueError) as exc:
        raise DecodeError(_reason(exc)) from None
    img = ImageOps.exif_transpose(img)
    if img.mode == "CMYK":
        img = img.convert("RGB")
    elif img.mode in {"P", "PA", "LA", "RGBA"}:
        img = _flatten_alpha(img.convert("RGBA"))
    elif img.mode != "RGB":
        img = img.convert("L").convert("RGB")
    note = "downscaled from a large original" if max(original) > LARGE_SIDE else ""
    resized = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return Decoded(np.asarray(resized, dtype=np.uint8), original, 3, note)


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _read_array(path: Path) -> np.ndarray:
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for damaged files
        raise DecodeError(_reason(exc)) from None
    array = np.squeeze(array)
    if array.ndim == 3 and array.shape[0] <= 8 and array.shape[2] > 8:
        array = np.moveaxis(array, 0, -1)  # channels-first (C, Y, X), as microscopes often write
    if array.ndim not in (2, 3):
        raise DecodeError(f"a {array.ndim}-D stack {array.shape}; save one 2-D plane (with channels) per file")
    return array


def _decode_array(array: np.ndarray, size: int) -> Decoded:
    height, width = array.shape[:2]
    step = max(1, min(height, width) // (size * 4))
    if step > 1:
        array = array[::step, ::step]  # cheap pre-shrink before the anti-aliased resize
    array, note = _to_unit_range(array)
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[2]
    if channels == 4:  # RGBA written by tifffile: drop alpha
        array, channels = array[..., :3], 3
    planes = [
        np.asarray(Image.fromarray(array[..., c].astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR))
        for c in range(channels)
    ]
    pixels = np.clip(np.stack(planes, axis=-1) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if channels == 1:
        pixels, channels = np.repeat(pixels, 3, axis=-1), 3
    if max(width, height) > LARGE_SIDE:
        note = "; ".join(filter(None, [note, "downscaled from a large original"]))
    return Decoded(pixels, (width, height), channels, note)


def _to_unit_range(array: np.ndarray) -> tuple[np.ndarray, str]:
    """Scale intensities to [0, 1] by the bit depth the data actually uses (e.g. 12-bit in a 16-bit file)."""
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float32))
        low, high = float(array.min()), float(array.max())
        if low >= 0 and high <= 1:
            return array, "float image in [0, 1]"
        return (array - low) / max(high - low, 1e-12), "float image min-max scaled"
    array = array.astype(np.float32)
    peak = float(array.max()) if array.size else 0.0
    if peak <= 255:
        return array / 255.0, ""
    bits = min(16 if peak < 65536 else 32, max(10, 2 * math.ceil(math.log2(peak + 1) / 2)))
    return array / float(2**bits - 1), f"{bits}-bit intensities scaled to 8-bit"
