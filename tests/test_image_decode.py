"""Decoding every image format a biologist brings, with the traps: bit depth, channels, EXIF, size."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from biolens.readers.image_decode import DecodeError, decode


def _gradient(width=80, height=60):
    x = np.linspace(0, 255, width, dtype=np.float32)
    return np.tile(x, (height, 1)).astype(np.uint8)


@pytest.mark.parametrize("suffix,mode", [(".jpg", "RGB"), (".png", "RGBA"), (".bmp", "RGB"), (".png", "L"),
                                         (".tif", "RGB"), (".png", "P"), (".jpg", "CMYK"), (".png", "1"),
                                         (".webp", "RGB"), (".heic", "RGB"), (".heif", "RGBA")])
def test_common_formats_become_rgb_uint8(tmp_path, suffix, mode):
    img = Image.fromarray(_gradient()).convert(mode)
    path = tmp_path / f"img{suffix}"
    img.save(path)
    out = decode(path, 32)
    assert out.pixels.shape == (32, 32, 3) and out.pixels.dtype == np.uint8
    assert out.original_size == (80, 60)
    assert out.pixels[:, -1].mean() > out.pixels[:, 0].mean() + 100  # the gradient survives


def test_16bit_tiff_with_12bit_data_uses_full_range(tmp_path):
    data = (np.linspace(0, 4095, 64 * 64).reshape(64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", data)
    out = decode(tmp_path / "x.tif", 32)
    assert out.pixels.max() >= 250 and out.pixels.min() <= 5
    assert "12-bit" in out.note


def test_multichannel_tiff_keeps_channels(tmp_path):
    data = np.random.default_rng(0).integers(0, 65535, (5, 50, 40), dtype=np.uint16)  # channels first
    tifffile.imwrite(tmp_path / "fiji.tif", data, imagej=True, metadata={"axes": "CYX"})  # Fiji: named channels
    out = decode(tmp_path / "fiji.tif", 16)
    assert out.pixels.shape == (16, 16, 5) and out.channels == 5
    tifffile.imwrite(tmp_path / "pages.tif", data)  # plain pages: channels only when the user says so
    with pytest.raises(DecodeError, match="--stack"):
        decode(tmp_path / "pages.tif", 16)
    assert decode(tmp_path / "pages.tif", 16, stack="channels").channels == 5


def test_z_stack_is_refused_or_projected_as_chosen_never_read_as_rgb(tmp_path):
    stack = np.zeros((3, 40, 40), np.uint16)
    stack[1, 10:20, 10:20] = 4000  # one bright square in the middle plane
    tifffile.imwrite(tmp_path / "z.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(DecodeError, match="3 z-planes"):
        decode(tmp_path / "z.tif", 40)
    projected = decode(tmp_path / "z.tif", 40, stack="max")
    assert projected.pixels[15, 15, 0] > 200 and (projected.pixels[15, 15] == projected.pixels[15, 15, 0]).all()
    assert decode(tmp_path / "z.tif", 40, stack="first").pixels.max() == 0


def test_16_bit_greyscale_png_is_read_by_its_bit_depth(tmp_path):
    values = np.zeros((30, 30), np.uint16)
    values[:, 15:] = 4095  # 12-bit camera data in a 16-bit PNG
    Image.fromarray(values).save(tmp_path / "camera.png")
    out = decode(tmp_path / "camera.png", 30)
    assert out.pixels[:, :10].max() == 0 and out.pixels[:, 20:].min() >= 250


def test_a_header_claiming_more_than_the_limit_is_refused_before_decoding(tmp_path):
    from test_hostile_inputs import _png_header_only

    _png_header_only(tmp_path / "bomb.png", 24000, 24000)
    with pytest.raises(DecodeError, match="above the limit"):
        decode(tmp_path / "bomb.png", 64)


def test_exif_rotation_is_honoured(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :20] = 255  # bright band on the left of a landscape image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    out = decode(tmp_path / "r.jpg", 40)
    assert out.pixels[:10].mean() > 200 and out.pixels[-10:].mean() < 50  # band now on top


@pytest.mark.parametrize("content,expected", [(b"this is a text file", "not a readable image"), (b"", "not a readable image")])
def test_not_an_image(tmp_path, content, expected):
    (tmp_path / "fake.jpg").write_bytes(content)
    with pytest.raises(DecodeError, match=expected):
        decode(tmp_path / "fake.jpg", 32)


def test_truncated_jpeg(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated"):
        decode(tmp_path / "a.jpg", 32)


def test_a_phone_photo_cut_short_is_named_not_read(tmp_path):
    """HEIC, the format phones save photos in, decoded through pillow-heif; a file cut short is one reason."""
    from biolens.readers.image_decode import read_whole

    photo = np.zeros((120, 160, 3), np.uint8)
    photo[30:90, 40:120] = (200, 60, 40)  # a red colony on a dark plate
    Image.fromarray(photo).save(tmp_path / "plate.heic", quality=90)
    whole = read_whole(tmp_path / "plate.heic")
    assert whole.shape == (120, 160, 3) and whole[60, 80, 0] > 150 and whole[5, 5].max() < 40
    data = (tmp_path / "plate.heic").read_bytes()
    (tmp_path / "cut.heic").write_bytes(data[: len(data) // 3])
    with pytest.raises(DecodeError):
        decode(tmp_path / "cut.heic", 32)


def test_wrong_extension(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DecodeError, match="extension"):
        decode(tmp_path / "notes.txt", 32)


def test_very_large_jpeg_decodes_in_little_memory(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (10000, 10000), (120, 30, 200)).save(path, quality=70)
    code = ("from pathlib import Path; from biolens.readers.image_decode import decode;"
            f"d = decode(Path({str(path)!r}), 96); print(d.note);"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0];"
            "print(int(hwm.split()[1]) // 1024)")  # peak resident memory of this process, in MB
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert "downscaled" in out[0]
    assert int(out[1]) < 250, f"peak memory {out[1]} MB; a full 10k x 10k RGB decode alone needs 300 MB"
