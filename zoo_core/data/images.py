"""Image loading shared by training, evaluation, the audit and ``zoo predict``.

Every image becomes an 8-bit RGB ``PIL.Image``: EXIF orientation is applied,
grayscale, palette, RGBA, CMYK and 16-bit images are converted with their
intensities scaled (not clipped) to 0-255.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif")
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


class ImageLoadError(ValueError):
    """An image file that cannot be read; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def is_ignored(path: Path) -> bool:
    """Return True for hidden and system files that are never images of the dataset."""
    return path.name.startswith(".") or path.name.lower() in IGNORED_NAMES


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            array = array / 65535.0 * 255.0
        else:
            # 32-bit integer or float data carries no fixed range: scale min-max.
            low, high = float(array.min()), float(array.max())
            array = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
        mode = "L"
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Composite on black, the background of an MRI slice.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as 8-bit RGB, raising ImageLoadError with the reason on failure."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(path, "empty file (0 bytes)")
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(path, f"unreadable or truncated image ({error})") from None
