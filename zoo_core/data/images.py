"""Image loading shared by training, evaluation, the audit and ``zoo predict``.

Every image becomes an 8-bit RGB ``PIL.Image``: EXIF orientation is applied,
and grayscale, palette, RGBA, CMYK and 16-bit images are converted with their
intensities scaled (not clipped) to 0-255. Transparent pixels are composited
on black, the background of an MRI slice. Animated GIFs give their first frame.

A file that cannot be read raises :class:`ImageLoadError` with the file and
the reason. :func:`load_images` turns that into a per-file result, so that a
caller such as ``zoo predict`` can report a bad file by name and go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageInfo",
    "ImageLoadError",
    "LoadResult",
    "collect_image_files",
    "is_ignored",
    "is_image_file",
    "load_image",
    "load_image_with_info",
    "load_images",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif")
# Operating-system and archive leftovers that are never part of a dataset.
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "__macosx", "@eadir"}

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageLoadError(ValueError):
    """An image file that cannot be read; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ImageInfo:
    """Properties of an image file as stored, before conversion to RGB."""

    format: str
    mode: str
    width: int
    height: int


@dataclass(frozen=True)
class LoadResult:
    """Outcome of loading one file: ``image`` on success, otherwise ``error``."""

    path: str
    image: Image.Image | None
    error: ImageLoadError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def is_ignored(path: Path) -> bool:
    """Return True for hidden and system files that are never images of the dataset."""
    return path.name.startswith(".") or path.name.lower() in IGNORED_NAMES


def is_image_file(path: Path) -> bool:
    """Return True when the extension, in any case, is one of ``IMAGE_EXTENSIONS``."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode in _SIXTEEN_BIT_MODES:
            array = array / 65535.0 * 255.0
        else:
            # 32-bit integer or float data carries no fixed range, so scale min-max.
            # NOTE: Pillow 13 opens 16-bit PNG and TIFF as I;16 (tested); a reader
            # that returns mode I for them gets this contrast stretch instead.
            low, high = float(array.min()), float(array.max())
            array = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
        mode = "L"

    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image_with_info(path: str | Path) -> tuple[Image.Image, ImageInfo]:
    """Read an image file as 8-bit RGB and return it with its stored format, mode and size.

    Raises :class:`ImageLoadError` naming the file and the reason when the file
    is missing, empty, not an image, truncated or otherwise undecodable.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(path, "empty file (0 bytes)")
        with Image.open(path) as image:
            image.load()
            info = ImageInfo(image.format or "unknown", image.mode, image.width, image.height)
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image), info
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageLoadError(path, "is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not an image file (format not recognised)") from None
    except Image.DecompressionBombError as error:
        raise ImageLoadError(path, f"image too large to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageLoadError(path, f"unreadable or truncated image ({error})") from None


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as 8-bit RGB, raising ImageLoadError with the reason on failure."""
    image, _ = load_image_with_info(path)
    return image


def collect_image_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into a sorted list of files to load.

    A folder gives every image file below it (by extension, any case), with
    hidden and system files skipped. A file named directly is kept whatever its
    extension, so that a bad file the user asked for is reported, not dropped.
    A path that does not exist raises :class:`ImageLoadError`.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.is_file() and is_image_file(p) and not any(is_ignored(Path(part)) for part in p.relative_to(path).parts)
            ]
            files.extend(sorted(found))
        elif path.exists():
            files.append(path)
        else:
            raise ImageLoadError(path, "file or folder not found")
    return files


def load_images(paths: Iterable[str | Path]) -> Iterator[LoadResult]:
    """Load each path in turn, yielding a :class:`LoadResult` instead of raising.

    Each failure is logged as a warning that names the file and the reason.
    """
    for path in paths:
        try:
            image = load_image(path)
        except ImageLoadError as error:
            logger.warning("cannot read image %s: %s", error.path, error.reason)
            yield LoadResult(str(path), None, error)
        else:
            yield LoadResult(str(path), image, None)
