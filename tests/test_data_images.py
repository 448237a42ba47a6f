"""The shared image loader: formats, colour modes, EXIF orientation and bad files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from zoo_core.data.images import (
    ImageLoadError,
    collect_image_files,
    load_image,
    load_image_with_info,
    load_images,
)
from zoo_core.paths import SAMPLE_DIR

SLICE = SAMPLE_DIR / "glioma" / "Te-gl_0010.jpg"


@pytest.mark.parametrize(
    ("name", "format"),
    [
        ("a.JPG", "JPEG"),
        ("b.jpeg", "JPEG"),
        ("c.Png", "PNG"),
        ("d.BMP", "BMP"),
        ("e.tif", "TIFF"),
        ("f.TIFF", "TIFF"),
        ("g.GIF", "GIF"),
    ],
)
def test_load_image_formats(tmp_path, name, format):
    source = Image.open(SLICE).convert("L").resize((64, 48))
    source.save(tmp_path / name, format=format)

    image, info = load_image_with_info(tmp_path / name)

    assert image.mode == "RGB"
    assert image.size == (64, 48)
    assert info.format == format


def test_load_image_grayscale_to_rgb(tmp_path):
    Image.fromarray(np.full((8, 8), 77, dtype=np.uint8), mode="L").save(tmp_path / "gray.png")

    pixels = np.asarray(load_image(tmp_path / "gray.png"))

    assert pixels.shape == (8, 8, 3)
    assert (pixels == 77).all()


def test_load_image_palette(tmp_path):
    Image.new("RGB", (8, 8), (10, 200, 30)).convert("P").save(tmp_path / "palette.gif")

    pixels = np.asarray(load_image(tmp_path / "palette.gif"))

    assert pixels[0, 0].tolist() == list(np.asarray(Image.open(tmp_path / "palette.gif").convert("RGB"))[0, 0])


def test_load_image_rgba_on_black(tmp_path):
    array = np.zeros((4, 4, 4), dtype=np.uint8)
    array[..., :3] = 200
    array[0, 0, 3] = 255
    array[0, 1, 3] = 0
    array[0, 2, 3] = 128
    Image.fromarray(array, mode="RGBA").save(tmp_path / "alpha.png")

    pixels = np.asarray(load_image(tmp_path / "alpha.png"))

    assert pixels[0, 0].tolist() == [200, 200, 200]
    assert pixels[0, 1].tolist() == [0, 0, 0]
    assert abs(int(pixels[0, 2, 0]) - 100) <= 1


def test_load_image_gray_alpha(tmp_path):
    array = np.zeros((2, 2, 2), dtype=np.uint8)
    array[..., 0] = 180
    array[0, 0, 1] = 255
    Image.fromarray(array, mode="LA").save(tmp_path / "gray_alpha.png")

    pixels = np.asarray(load_image(tmp_path / "gray_alpha.png"))

    assert pixels[0, 0].tolist() == [180, 180, 180]
    assert pixels[1, 1].tolist() == [0, 0, 0]


def test_load_image_bilevel(tmp_path):
    Image.fromarray(np.eye(4, dtype=bool)).save(tmp_path / "mask.bmp")

    pixels = np.asarray(load_image(tmp_path / "mask.bmp"))

    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 1].tolist() == [0, 0, 0]


def test_load_image_cmyk(tmp_path):
    Image.new("RGB", (16, 16), (200, 100, 50)).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)

    image, info = load_image_with_info(tmp_path / "cmyk.jpg")

    assert info.mode == "CMYK"
    red, green, blue = np.asarray(image)[8, 8].tolist()
    assert abs(red - 200) <= 3
    assert abs(green - 100) <= 3
    assert abs(blue - 50) <= 3


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_load_image_16bit_scaled(tmp_path, suffix):
    values = np.array([[0, 4096, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / f"deep{suffix}")

    image, info = load_image_with_info(tmp_path / f"deep{suffix}")

    assert info.mode.startswith("I;16")
    assert np.asarray(image)[0, :, 0].tolist() == [0, 16, 128, 255]


def test_load_image_exif_orientation(tmp_path):
    array = np.zeros((20, 40), dtype=np.uint8)
    array[:, :5] = 255  # bright band on the left edge of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; display after turning 90 degrees clockwise
    Image.fromarray(array, mode="L").save(tmp_path / "rotated.jpg", exif=exif, quality=95)

    pixels = np.asarray(load_image(tmp_path / "rotated.jpg"))[..., 0]

    assert pixels.shape == (40, 20)
    assert pixels[:5].mean() > 200
    assert pixels[-5:].mean() < 50


def test_load_image_truncated_jpeg(tmp_path):
    data = SLICE.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])

    with pytest.raises(ImageLoadError) as caught:
        load_image(tmp_path / "cut.jpg")

    assert "truncated" in caught.value.reason
    assert "cut.jpg" in str(caught.value)


def test_load_image_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")

    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(tmp_path / "empty.jpg")


def test_load_image_text_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("not pixels\n")

    with pytest.raises(ImageLoadError, match="not an image file"):
        load_image(tmp_path / "notes.jpg")


def test_load_image_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "absent.jpg")


def test_load_images_reports_and_continues(tmp_path, caplog):
    (tmp_path / "broken.jpg").write_text("oops")
    paths = [SLICE, tmp_path / "broken.jpg", SAMPLE_DIR / "notumor" / "Te-no_0021.jpg"]

    with caplog.at_level(logging.WARNING, logger="zoo_core.data.images"):
        results = list(load_images(paths))

    assert [result.ok for result in results] == [True, False, True]
    assert results[1].image is None
    assert results[1].error.path == str(tmp_path / "broken.jpg")
    assert "broken.jpg" in caplog.text


def test_collect_image_files(tmp_path):
    (tmp_path / "scans" / "nested").mkdir(parents=True)
    (tmp_path / "scans" / "a.JPG").write_bytes(SLICE.read_bytes())
    (tmp_path / "scans" / "nested" / "b.png").write_bytes(b"")
    (tmp_path / "scans" / ".DS_Store").write_bytes(b"\x00")
    (tmp_path / "scans" / "Thumbs.db").write_bytes(b"\x00")
    (tmp_path / "scans" / "notes.txt").write_text("x")
    (tmp_path / "single.dat").write_text("x")

    files = collect_image_files([tmp_path / "scans", tmp_path / "single.dat"])

    names = [path.name for path in files]
    assert names == ["a.JPG", "b.png", "single.dat"]


def test_collect_image_files_missing(tmp_path):
    with pytest.raises(ImageLoadError, match="not found"):
        collect_image_files([tmp_path / "nowhere"])
