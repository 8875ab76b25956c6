"""Every odd input either becomes a clean upright RGB image or fails with a specific ImageError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.images.loading import ImageError, load_image


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


@pytest.fixture
def photo() -> Image.Image:
    """A small asymmetric picture, so a wrong rotation is detectable."""
    array = np.zeros((40, 60, 3), dtype=np.uint8)
    array[:, :30] = (200, 30, 30)
    array[:10, :] = (20, 20, 220)
    return Image.fromarray(array)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path, photo: Image.Image) -> None:
    out = load_image(_save(photo.convert("CMYK"), tmp_path / "cmyk.jpg", quality=95))
    assert out.mode == "RGB" and out.size == (60, 40)
    assert np.abs(np.asarray(out, dtype=int) - np.asarray(photo, dtype=int)).mean() < 12


def test_16bit_png_is_scaled_to_8bit(tmp_path: Path) -> None:
    ramp = (np.linspace(0, 65535, 64 * 16).reshape(16, 64)).astype(np.uint16)
    out = load_image(_save(Image.fromarray(ramp), tmp_path / "deep.png"))
    values = np.asarray(out)[:, :, 0]
    assert out.mode == "RGB" and values.min() == 0 and values.max() == 255


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    out = np.asarray(load_image(_save(rgba, tmp_path / "alpha.png")))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[5, 5]) == (255, 255, 255)


def test_grayscale_and_palette(tmp_path: Path, photo: Image.Image) -> None:
    for mode in ("L", "P", "1"):
        out = load_image(_save(photo.convert(mode), tmp_path / f"{mode}.png"))
        assert out.mode == "RGB" and out.size == (60, 40)


def test_exif_rotation_applied(tmp_path: Path, photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held sideways: display rotated 90 degrees clockwise
    out = load_image(_save(photo, tmp_path / "rotated.jpg", exif=exif, quality=95))
    assert out.size == (40, 60)


def test_numpy_and_bytes_inputs(photo: Image.Image) -> None:
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    assert load_image(buffer.getvalue()).size == (60, 40)
    assert load_image(np.asarray(photo)).size == (60, 40)
    assert load_image(np.asarray(photo, dtype=np.float32) / 255.0).mode == "RGB"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not a picture\n"), "not an image"),
        (lambda p: None, "does not exist"),
    ],
)
def test_unusable_files_name_the_problem(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "upload.jpg"
    make(path)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert "upload.jpg" in str(info.value)


def test_truncated_jpeg(tmp_path: Path, photo: Image.Image) -> None:
    whole = tmp_path / "whole.jpg"
    photo.resize((600, 400)).save(whole, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(cut)


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    # A 1-bit PNG of 20000 x 20000 pixels is ~50 KB on disk but 1.2 GB as RGB.
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb, optimize=True)
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb)


def test_huge_array_refused() -> None:
    with pytest.raises(ImageError, match="too large"):
        load_image(np.zeros((9000, 9000), dtype=np.uint8))


def test_bad_array_shape_and_type() -> None:
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(ImageError, match="cannot read"):
        load_image(12345)  # type: ignore[arg-type]


def test_messages_use_the_name_the_caller_gives(tmp_path: Path) -> None:
    """A server names the photo as its user knows it, never its own temporary copy."""
    fake = tmp_path / "upload-1234.jpg"
    fake.write_text("not a photo")
    with pytest.raises(ImageError, match=r"^the query photo is not an image") as error:
        load_image(fake, name="the query photo")
    assert str(tmp_path) not in str(error.value)


def test_draft_decodes_large_jpegs_small_and_keeps_the_full_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (1200, 1800, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated: the full upright size is 1200 x 1800
    path = _save(big, tmp_path / "big.jpg", exif=exif, quality=90)
    drafted = load_image(path, draft=240)
    assert min(drafted.size) >= 240 and max(drafted.size) <= 900  # decoded at a reduced scale
    assert drafted.info["full_size"] == (1200, 1800) == load_image(path).info["full_size"]
    small = _save(big.resize((300, 200)), tmp_path / "small.jpg")
    assert load_image(small, draft=240).size == (300, 200)  # not large enough to draft
