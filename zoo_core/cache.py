"""Decoded-image cache: each image decoded and resized once, then read from a memory-mapped file.

Decoding and resizing a 512-pixel JPEG costs several milliseconds on every
epoch. The cache does that work once per image and stores the result as uint8
pixels in ``pixels.u8``, a flat file that DataLoader workers memory-map, with
``index.json`` giving each image's offset and shape.

Each image is resized with its shorter side set to a base size, with the
torchvision ``Resize`` that timm's evaluation transform uses. For the
evaluation transform (``Resize(base_size)`` then ``CenterCrop``) with
``base_size = floor(img_size / crop_pct)`` that resize then returns the cached
image unchanged, so evaluation sees the same pixels as without the cache. The
training transform (random resized crop, flip, RandAugment) runs on the cached
image in place of the full-size one, so its crops come from a base-size image.

A cache is stored under ``<root>/<key>/``. The key is the SHA-256 of the
sorted SHA-256 hashes of the image files' bytes, the base size, the
interpolation and the format version. Any changed, added or removed image
gives a new key, so a stale cache is never read. Images whose three channels
are equal (most MRI slices) are stored with one channel and expanded to RGB
on reading, which gives the same pixels with a third of the disk space.

Processes that share a machine, such as the ranks of a DDP run, share one
cache: the first process to take the lock file builds it into a temporary
folder and renames that into place, and the others wait on the lock and then
open the finished cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from timm.data.transforms import str_to_interp_mode
from torchvision import transforms

from zoo_core.data.folder import Sample
from zoo_core.data.images import load_image
from zoo_core.paths import cache_dir

logger = logging.getLogger(__name__)

__all__ = [
    "CachedImageDataset",
    "DecodedImageCache",
    "build_image_dataset",
    "cache_base_size",
    "cached_split_datasets",
    "default_cache_root",
    "file_sha256",
    "open_or_build_cache",
]

CACHE_FORMAT_VERSION = 1
PIXELS_FILE = "pixels.u8"
INDEX_FILE = "index.json"


def default_cache_root() -> Path:
    """Return the folder that contains decoded-image caches: ``<ZOO_CACHE_DIR>/decoded``."""
    return cache_dir() / "decoded"


def cache_base_size(img_size: int, crop_pct: float) -> int:
    """Return the shorter-side size that timm's centre-crop evaluation transform resizes to."""
    # Same expression as timm.data.transforms_factory.transforms_imagenet_eval (timm 1.0).
    return math.floor(img_size / crop_pct)


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 of a file's bytes as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_files(paths: Sequence[str], workers: int | None = None) -> list[str]:
    # Hashing is I/O and hashlib releases the GIL, so threads overlap it.
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(file_sha256, paths))


def _cache_key(hashes: Sequence[str], base_size: int, interpolation: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"v{CACHE_FORMAT_VERSION}:{base_size}:{interpolation}\n".encode())
    for value in sorted(set(hashes)):
        digest.update(value.encode() + b"\n")
    return digest.hexdigest()


class DecodedImageCache:
    """Read side of one cache folder: images by content hash, as RGB ``PIL.Image``.

    The pixel file is memory-mapped on first access in each process, so the
    object can be pickled into DataLoader workers without copying pixels.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index_path = self.folder / INDEX_FILE
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"cannot read the decoded-image cache index {index_path} ({error}); "
                f"delete the folder {self.folder} and it is rebuilt on the next run"
            ) from None
        if index.get("version") != CACHE_FORMAT_VERSION:
            raise RuntimeError(
                f"{index_path} has cache format version {index.get('version')}, expected {CACHE_FORMAT_VERSION}; "
                f"delete the folder {self.folder} and it is rebuilt on the next run"
            )
        self.base_size: int = index["base_size"]
        self.interpolation: str = index["interpolation"]
        self.entries: dict[str, tuple[int, int, int, int]] = {
            entry["sha256"]: (entry["offset"], entry["height"], entry["width"], entry["channels"])
            for entry in index["entries"]
        }
        self._pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self.entries

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pixels"] = None
        return state

    def _pixel_file(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = np.memmap(self.folder / PIXELS_FILE, dtype=np.uint8, mode="r")
        return self._pixels

    def array(self, sha256: str) -> np.ndarray:
        """Return the stored pixels of one image: (height, width) for grey, else (height, width, 3)."""
        offset, height, width, channels = self.entries[sha256]
        flat = self._pixel_file()[offset : offset + height * width * channels]
        shape = (height, width) if channels == 1 else (height, width, channels)
        return np.array(flat).reshape(shape)

    def image(self, sha256: str) -> Image.Image:
        """Return one cached image as 8-bit RGB."""
        array = self.array(sha256)
        if array.ndim == 2:
            return Image.fromarray(array, mode="L").convert("RGB")
        return Image.fromarray(array, mode="RGB")


class CachedImageDataset(torch.utils.data.Dataset):
    """Samples read from a :class:`DecodedImageCache`, interchangeable with ``ImageDataset``."""

    def __init__(self, samples: list[Sample], hashes: list[str], cache: DecodedImageCache, transform=None):
        if len(samples) != len(hashes):
            raise ValueError(f"got {len(samples)} samples but {len(hashes)} hashes; pass one hash per sample")
        missing = [sample.path for sample, value in zip(samples, hashes) if value not in cache]
        if missing:
            raise ValueError(
                f"{len(missing)} image(s) are not in the cache {cache.folder}, e.g. {missing[0]}; "
                "build the cache from every sample that the dataset reads"
            )
        self.samples = samples
        self.hashes = hashes
        self.cache = cache
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        image = self.cache.image(self.hashes[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.samples[index].label


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block, so other processes wait until it is released."""
    # NOTE: flock locks between the processes of one machine. On a network file
    # system it may not lock across machines, so multi-node runs need a node-local cache root.
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _decode_resized(path: str, resize) -> np.ndarray:
    array = np.asarray(resize(load_image(path)))
    if (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all():
        return np.ascontiguousarray(array[..., 0])
    return np.ascontiguousarray(array)


def _write_cache(folder: Path, paths: Sequence[str], hashes: Sequence[str], base_size: int, interpolation: str,
                 progress: bool) -> None:
    """Decode every distinct image once and write ``pixels.u8`` and ``index.json`` into ``folder``."""
    resize = transforms.Resize(base_size, interpolation=str_to_interp_mode(interpolation))
    unique: dict[str, str] = {}
    for path, value in zip(paths, hashes):
        unique.setdefault(value, path)

    items = list(unique.items())
    workers = min(4, os.cpu_count() or 1)
    entries = []
    offset = 0
    with open(folder / PIXELS_FILE, "wb") as handle, ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = pool.map(lambda item: _decode_resized(item[1], resize), items)
        if progress:
            from tqdm.auto import tqdm

            arrays = tqdm(arrays, total=len(items), desc="caching decoded images", unit="img", leave=False)
        for (value, path), array in zip(items, arrays):
            handle.write(array.tobytes())
            channels = 1 if array.ndim == 2 else array.shape[2]
            entries.append({"sha256": value, "offset": offset, "height": array.shape[0], "width": array.shape[1],
                            "channels": channels, "source": path})
            offset += array.nbytes
        handle.flush()
        os.fsync(handle.fileno())

    index = {"version": CACHE_FORMAT_VERSION, "base_size": base_size, "interpolation": interpolation,
             "num_images": len(entries), "num_bytes": offset, "entries": entries}
    (folder / INDEX_FILE).write_text(json.dumps(index))


def open_or_build_cache(paths: Sequence[str], base_size: int, interpolation: str, root: str | Path | None = None,
                        hashes: Sequence[str] | None = None, progress: bool = False) -> tuple[DecodedImageCache, list[str]]:
    """Return the cache that contains ``paths`` at ``base_size``, building it first when none matches.

    Also returns the SHA-256 of each file, in the order of ``paths``, which
    :class:`CachedImageDataset` uses to find its images. Unreadable images
    raise ``ImageLoadError`` while building.
    """
    if base_size < 1:
        raise ValueError(f"base_size must be a positive number of pixels, got {base_size}")
    root = Path(root) if root is not None else default_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    hashes = list(hashes) if hashes is not None else _hash_files(list(paths))
    key = _cache_key(hashes, base_size, interpolation)
    folder = root / key
    # NOTE: caches of earlier image sets are never removed, because another dataset
    # may still use them. Deleting ``root`` is safe: what is missing is rebuilt.

    if not (folder / INDEX_FILE).is_file():
        with _file_lock(root / f"{key}.lock"):
            # Another process may have finished the build while this one waited for the lock.
            if not (folder / INDEX_FILE).is_file():
                temporary = root / f".{key}.tmp-{os.getpid()}"
                shutil.rmtree(temporary, ignore_errors=True)
                temporary.mkdir()
                start = time.perf_counter()
                try:
                    _write_cache(temporary, paths, hashes, base_size, interpolation, progress)
                    shutil.rmtree(folder, ignore_errors=True)
                    os.replace(temporary, folder)
                except BaseException:
                    shutil.rmtree(temporary, ignore_errors=True)
                    raise
                logger.info("built the decoded-image cache %s (%d images, %.1f s)", folder, len(set(hashes)),
                            time.perf_counter() - start)
    return DecodedImageCache(folder), hashes


def build_image_dataset(samples: list[Sample], cache: DecodedImageCache, hashes_by_path: dict[str, str],
                        transform=None) -> CachedImageDataset:
    """Return a dataset of ``samples`` read from ``cache``, given each file's SHA-256 by path."""
    return CachedImageDataset(samples, [hashes_by_path[sample.path] for sample in samples], cache, transform)


def cached_split_datasets(splits, img_size: int, crop_pct: float, interpolation: str, root: str | Path | None = None,
                          progress: bool = False) -> dict[str, CachedImageDataset]:
    """Return cached train, val and test datasets of a ``DatasetSplits``, from one cache shared by all three.

    One cache covers every split, so a different seed or ``data.val_fraction``
    reuses it.
    """
    samples = [sample for split in (splits.train, splits.val, splits.test) for sample in split]
    paths = [sample.path for sample in samples]
    cache, hashes = open_or_build_cache(paths, cache_base_size(img_size, crop_pct), interpolation, root,
                                        progress=progress)
    hashes_by_path = dict(zip(paths, hashes))
    return {name: build_image_dataset(getattr(splits, name), cache, hashes_by_path)
            for name in ("train", "val", "test")}
