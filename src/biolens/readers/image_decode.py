"""Decode one image file of any common microscopy or photo format into a small uint8 array.

Handles JPEG/PNG/BMP/TIFF/WebP and phones' HEIC/HEIF (through pillow-heif's Pillow plugin), 8/16-bit and float,
greyscale/RGB/RGBA/CMYK/palette, multi-channel TIFF (kept as channels, e.g. fluorescence), EXIF rotation, and very
large images, which are downscaled (never tiled: a class label describes the whole image) without holding a
full-resolution float copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif"}
LARGE_SIDE = 4096                  # above this, an image is reported as downscaled from a large original
MAX_PIXELS = 400_000_000           # 20k x 20k: larger images are refused (checked on the header, before decoding)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
try:  # phones save photos as HEIC; pillow-heif (a dependency) lets Pillow open them like any other format
    from pillow_heif import register_heif_opener
except ImportError:  # its decoding-only twin, for packagers who leave GPL code out; without either, HEIC is unread
    try:
        from pi_heif import register_heif_opener
    except ImportError:
        register_heif_opener = None
if register_heif_opener is not None:
    register_heif_opener()
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


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise DecodeError(f"image is {width:,} x {height:,} pixels, above the limit of {MAX_PIXELS:,} (20,000 x 20,000); "
                          "crop or downscale it first")


def decode(path: Path, size: int, stack: str = "refuse") -> Decoded:
    """Read `path` and resize it to `size` x `size`; raise DecodeError with a reason a user can act on.

    8/16/32-bit and float images are scaled by the bit depth they use; a multi-page TIFF (a z-stack or time series)
    is refused unless `stack` says how to make one plane of it (max or mean projection, or the first page)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DecodeError(f"not an image biolens reads (extension '{path.suffix}'); convert it to PNG, JPEG or TIFF")
    tiff = path.suffix.lower() in {".tif", ".tiff"}
    try:
        with Image.open(path) as img:
            _check_pixels(*img.size)
            if tiff and getattr(img, "n_frames", 1) > 1:
                pass  # stacks are read whole by tifffile below
            elif img.mode in _PIL_STANDARD:
                return _decode_pil(img, size)
            elif not tiff:  # 16-bit greyscale PNG ("I;16"), 32-bit integer or float modes
                try:
                    img.load()
                except (OSError, ValueError) as exc:
                    raise DecodeError(_reason(exc)) from None
                return _decode_array(np.asarray(img), size)
    except DecodeError:
        raise
    except Image.DecompressionBombError:
        raise DecodeError(f"image is larger than {MAX_PIXELS:,} pixels; crop or downscale it first") from None
    except (OSError, ValueError, SyntaxError) as exc:
        if not tiff:
            raise DecodeError(_reason(exc)) from None
    return _decode_array(_read_array(path, stack), size)


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


def _read_array(path: Path, stack: str = "refuse") -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            planes = _planes(axes, shape)
            if "Y" in axes and "X" in axes:
                _check_pixels(int(shape[axes.index("X")]), int(shape[axes.index("Y")]))
            array = series.asarray()
    except DecodeError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise DecodeError(_reason(exc)) from None
    if planes:
        array = _project(array, axes, planes, stack)
    array = np.squeeze(array)
    if array.ndim == 3 and array.shape[0] <= 8 and array.shape[2] > 8:
        array = np.moveaxis(array, 0, -1)  # channels-first (C, Y, X), as microscopes often write
    if array.ndim not in (2, 3):
        raise DecodeError(f"a {array.ndim}-D stack {array.shape}; save one 2-D plane (with channels) per file")
    return array


def _planes(axes: str, shape: tuple) -> dict:
    """The stack axes of a TIFF series and their lengths. Z and T are stacks; Q/I are pages of unknown meaning (a
    plain multi-page TIFF): neither is read as colour channels unless the user says so (--stack channels). C and S
    (ImageJ channels, RGB samples) are."""
    return {a: n for a, n in zip(axes, shape) if a in "ZTQI" and n > 1}


def stack_refusal(path: Path) -> str | None:
    """Why a TIFF needs --stack (read from its header only), or None: not a TIFF, one plane, or unreadable (the run
    says so when it decodes it). For the web form's check before a run is queued."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            planes = _planes(tif.series[0].axes, tif.series[0].shape)
    except Exception:  # damaged: the decoder's own message, when the run reads it
        return None
    return _stack_message(planes) if planes else None


def _stack_message(planes: dict) -> str:
    described = " x ".join(f"{n} {'z-planes' if a == 'Z' else 'time points' if a == 'T' else 'pages'}"
                           for a, n in planes.items())
    return (f"a multi-page TIFF ({described}); say what its pages are with --stack max, mean or first (a z-stack or "
            "time series: one plane is made of it) or --stack channels (one image with a channel per page), or save "
            "one plane per file")


def _project(array: np.ndarray, axes: str, planes: dict, stack: str) -> np.ndarray:
    """One plane from a stack, as the user chose: refused by default, never silently read as colour channels."""
    if stack == "refuse":
        raise DecodeError(_stack_message(planes))
    if stack == "channels":
        return array  # pages first; _read_array moves them to the channel axis
    for axis in sorted((axes.index(a) for a in planes), reverse=True):
        if stack == "max":
            array = array.max(axis=axis)
        elif stack == "mean":
            array = array.astype(np.float32).mean(axis=axis)
        else:
            array = np.take(array, 0, axis=axis)
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


def read_whole(path: Path, *, keep_values: bool = False, stack: str = "refuse") -> np.ndarray:
    """The whole image at full resolution: (H, W, C) uint8 scaled by bit depth like `decode`, or with
    `keep_values` the stored integers untouched (label and dot images). Refuses images above MAX_PIXELS."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DecodeError(f"not an image biolens reads (extension '{path.suffix}'); convert it to PNG, JPEG or TIFF")
    array = None
    if path.suffix.lower() not in {".tif", ".tiff"}:
        try:
            with Image.open(path) as img:
                _check_pixels(*img.size)
                img.load()
                img = ImageOps.exif_transpose(img)
                if keep_values:
                    array = np.asarray(img.convert("RGB") if img.mode in {"P", "PA"} else img)
                elif img.mode in _PIL_STANDARD:
                    rgb = _flatten_alpha(img.convert("RGBA")) if img.mode in {"P", "PA", "LA", "RGBA"} else img.convert("RGB")
                    return np.asarray(rgb, dtype=np.uint8)
                else:
                    array = np.asarray(img)
        except DecodeError:
            raise
        except Image.DecompressionBombError:
            raise DecodeError(f"image is larger than {MAX_PIXELS:,} pixels; crop or downscale it first") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise DecodeError(_reason(exc)) from None
    else:
        array = _read_array(path, stack)
    if keep_values:
        return array
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] == 4:
        array = array[..., :3]
    pixels = to_uint8(array)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[2] == 1 else pixels


ROWS_PER_CHUNK = 512


def to_uint8(array: np.ndarray) -> np.ndarray:
    """`array` scaled to uint8 by the bit depth it uses (as `_to_unit_range`), a band of rows at a time: a 20,000 x
    20,000 RGB image never exists as float32 (4.8 GB), only as its uint8 result (1.2 GB) beside the original."""
    if array.dtype == np.uint8:
        return array
    floating = np.issubdtype(array.dtype, np.floating)
    if floating:
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
    else:
        low, high = 0.0, float(array.max()) if array.size else 0.0
    offset, span = _offset_and_span(low, high, floating)
    out = np.empty(array.shape, np.uint8)
    for start in range(0, array.shape[0], ROWS_PER_CHUNK):
        band = np.nan_to_num(array[start:start + ROWS_PER_CHUNK].astype(np.float32))
        out[start:start + ROWS_PER_CHUNK] = np.clip((band - offset) / span * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


LAZY_BYTES = 256 * 1024**2         # TIFFs whose decoded uint8 RGB would exceed this are read a window at a time
LAZY_MAX_PIXELS = 4_000_000_000    # ...up to 63,000 x 63,000 (the whole-image limit, MAX_PIXELS, does not apply)
LAZY_CHUNK_BYTES = 64 * 1024**2    # a TIFF stored in chunks larger than this (one huge strip) cannot be windowed


class TiffWindows:
    """A large single-plane TIFF read from disk a window at a time (memory-mapped when uncompressed, else through
    tifffile's zarr store, which decodes only the tiles or strips a window touches), so an orthomosaic larger than
    memory can be tiled. Windows are (h, w, 3) uint8, scaled as `read_whole` scales the whole image (the bit depth or
    value range comes from one banded pass over the file).
    Indexing takes row and column slices (`image[y0:y1, x0:x1]`), as `inference.tiles.window` uses it."""

    def __init__(self, path: Path, array, channels: int):
        self.path, self._array, self._channels = path, array, channels
        self._file = None  # the open TIFF a zarr store reads through, kept alive with the windows
        height, width = int(array.shape[0]), int(array.shape[1])
        self.shape, self.dtype, self.ndim = (height, width, 3), np.dtype(np.uint8), 3
        self._offset, self._span = 0.0, 255.0
        if array.dtype != np.uint8:
            self._offset, self._span = _scaling(array)

    def __getitem__(self, key):
        rows, cols = (key, slice(None)) if not isinstance(key, tuple) else key[:2]
        block = np.asarray(self._array[rows, cols])
        if block.ndim == 2:
            block = block[..., None]
        block = block[..., :3]  # alpha dropped, as read_whole does
        if block.dtype != np.uint8:
            band = np.nan_to_num(block.astype(np.float32))
            block = np.clip((band - self._offset) / self._span * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(block, 3, axis=-1) if block.shape[2] == 1 else block

    def thumbnail(self, max_side: int = 4096) -> tuple[np.ndarray, int]:
        """(every step-th pixel as uint8 RGB, step): a picture of the whole image to draw on, at most max_side."""
        step = max(1, int(np.ceil(max(self.shape[:2]) / max_side)))
        rows = [self[y:y + ROWS_PER_CHUNK * step:step, ::step] for y in range(0, self.shape[0], ROWS_PER_CHUNK * step)]
        return np.concatenate(rows, axis=0), step


def _scaling(array) -> tuple[float, float]:
    """(offset, span) mapping stored values to 0-255 as `to_uint8` does, from a banded pass (never the whole array)."""
    low, high = np.inf, -np.inf
    for start in range(0, int(array.shape[0]), ROWS_PER_CHUNK):
        band = np.asarray(array[start:start + ROWS_PER_CHUNK])
        low, high = min(low, float(np.nanmin(band))), max(high, float(np.nanmax(band)))
    return _offset_and_span(low, high, np.issubdtype(array.dtype, np.floating))


def _offset_and_span(low: float, high: float, floating: bool) -> tuple[float, float]:
    """uint8 = (value - offset) / span * 255: floats by their range (unless already in [0, 1]), integers by the bit
    depth their largest value needs (12-bit data in a 16-bit file spans 4,095, not 65,535)."""
    if floating:
        return (0.0, 1.0) if low >= 0 and high <= 1 else (low, max(high - low, 1e-12))
    bits = 8 if high <= 255 else min(16 if high < 65536 else 32, max(10, 2 * math.ceil(math.log2(high + 1) / 2)))
    return 0.0, float(2**bits - 1)


def read_for_tiles(path: Path, *, stack: str = "refuse"):
    """The image for tiled prediction: a `TiffWindows` for a TIFF too large to hold decoded (one 2-D plane, with
    or without colour samples, stored in tiles or strips), else the whole image as `read_whole` gives it."""
    path = Path(path)
    if path.suffix.lower() in {".tif", ".tiff"}:
        windows = _tiff_windows(path)
        if windows is not None:
            return windows
    return read_whole(path, stack=stack)


def _tiff_windows(path: Path) -> TiffWindows | None:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
        series = tif.series[0]
        axes, shape = series.axes, tuple(int(n) for n in series.shape)
    except Exception:  # noqa: BLE001 - a damaged file is reported by read_whole's own decoding, with its reason
        return None
    samples = shape[2] if axes == "YXS" else 1
    if axes not in ("YX", "YXS") or samples not in (1, 3, 4) or shape[0] * shape[1] * 3 <= LAZY_BYTES:
        tif.close()
        return None
    if shape[0] * shape[1] > LAZY_MAX_PIXELS:
        tif.close()
        raise DecodeError(f"image is {shape[1]:,} x {shape[0]:,} pixels, above the limit of {LAZY_MAX_PIXELS:,}; "
                          "split it into parts first")
    try:  # uncompressed, contiguous data: mapped from disk, so a window reads only its own rows' pages
        mapped = tifffile.memmap(path)
        tif.close()
        return TiffWindows(path, mapped, samples)
    except (ValueError, OSError):
        pass
    import zarr

    array = zarr.open(series.aszarr(), mode="r")  # compressed tiles or strips: only those a window touches
    if int(np.prod(array.chunks[:2])) * samples * series.dtype.itemsize > LAZY_CHUNK_BYTES:
        tif.close()  # one huge compressed strip: every window would decode all of it; read the image whole
        return None
    windows = TiffWindows(path, array, samples)
    windows._file = tif  # the store reads through this open file
    return windows
