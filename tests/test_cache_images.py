"""The decoded-image cache: same pixels as the uncached path, reuse, invalidation and shared builds."""

import json
import multiprocessing
import os

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import tiny_recipe
from zoo_core.augment.policy import MriPolicy
from zoo_core.cache import (
    CachedImageDataset,
    cache_base_size,
    cached_split_datasets,
    open_or_build_cache,
)
from zoo_core.data.datasets import ImageDataset, build_sample
from zoo_core.data.folder import Sample
from zoo_core.data.images import ImageLoadError
from zoo_core.recipe import AugmentConfig, DataConfig
from zoo_core.train.distributed import DistributedContext
from zoo_core.train.run import train_recipe
from zoo_core.train.sampling import SeededTrainDataset
from zoo_core.train.trainer import DefaultTrainer


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "zoo-cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(root))
    return root / "decoded"


@pytest.fixture(scope="module")
def sample_splits():
    return build_sample(DataConfig(name="sample"), 0, progress=False)


def write_jpeg(path, seed, size=(96, 80), colour=False):
    rng = np.random.default_rng(seed)
    if colour:
        array = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    else:
        array = np.repeat(rng.integers(0, 256, size=(size[1], size[0], 1), dtype=np.uint8), 3, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=90)
    return str(path)


@pytest.mark.parametrize("img_size,crop_pct,interpolation", [(224, 0.875, "bicubic"), (64, 1.0, "bilinear")])
def test_cache_eval_pixels_match_uncached(sample_splits, cache_root, img_size, crop_pct, interpolation):
    datasets = cached_split_datasets(sample_splits, img_size, crop_pct, interpolation, root=cache_root)
    policy = MriPolicy(AugmentConfig(crop_pct=crop_pct, interpolation=interpolation), img_size)
    transform = policy.eval_transform()
    for split in ("train", "val", "test"):
        cached = datasets[split]
        uncached = ImageDataset(getattr(sample_splits, split))
        assert len(cached) == len(uncached)
        for index in range(len(cached)):
            cached_image, cached_label = cached[index]
            image, label = uncached[index]
            assert cached_label == label
            assert torch.equal(transform(cached_image), transform(image)), f"{split} image {index} differs"


def test_cache_stores_base_size_short_side(sample_splits, cache_root):
    datasets = cached_split_datasets(sample_splits, 224, 0.875, "bicubic", root=cache_root)
    base = cache_base_size(224, 0.875)
    assert base == 256
    for index, sample in enumerate(sample_splits.train):
        width, height = Image.open(sample.path).size
        cached_width, cached_height = datasets["train"][index][0].size
        assert min(cached_width, cached_height) == base
        # The aspect ratio is kept to within one pixel of rounding.
        assert abs(cached_width / cached_height - width / height) < 2 / base


def test_cache_grey_one_channel_colour_three(tmp_path, cache_root):
    grey = write_jpeg(tmp_path / "grey.jpg", 0)
    colour = write_jpeg(tmp_path / "colour.png".replace(".png", ".jpg"), 1, colour=True)
    cache, hashes = open_or_build_cache([grey, colour], 40, "bicubic", root=cache_root)
    assert cache.array(hashes[0]).ndim == 2
    assert cache.array(hashes[1]).shape[2] == 3
    for value in hashes:
        assert cache.image(value).mode == "RGB"


def test_cache_reused_without_rebuild(tmp_path, cache_root):
    paths = [write_jpeg(tmp_path / f"{i}.jpg", i) for i in range(3)]
    first, _ = open_or_build_cache(paths, 32, "bicubic", root=cache_root)
    stat = os.stat(first.folder / "pixels.u8")
    second, _ = open_or_build_cache(list(reversed(paths)), 32, "bicubic", root=cache_root)
    assert second.folder == first.folder
    assert os.stat(second.folder / "pixels.u8").st_ino == stat.st_ino
    assert os.stat(second.folder / "pixels.u8").st_mtime_ns == stat.st_mtime_ns


def test_cache_invalidated_when_image_changes(tmp_path, cache_root):
    paths = [write_jpeg(tmp_path / f"{i}.jpg", i) for i in range(3)]
    before, before_hashes = open_or_build_cache(paths, 32, "bicubic", root=cache_root)
    old_pixels = before.array(before_hashes[1])

    write_jpeg(tmp_path / "1.jpg", 99)
    after, after_hashes = open_or_build_cache(paths, 32, "bicubic", root=cache_root)
    assert after.folder != before.folder
    assert after_hashes[0] == before_hashes[0]
    assert after_hashes[1] != before_hashes[1]
    expected = np.asarray(ImageDataset([Sample(paths[1], 0)])[0][0].resize((38, 32), Image.BICUBIC))
    assert not np.array_equal(after.array(after_hashes[1]), old_pixels)
    assert after.image(after_hashes[1]).size == (38, 32)
    assert np.abs(np.asarray(after.image(after_hashes[1])).astype(int) - expected.astype(int)).max() <= 1


def test_cache_keyed_by_size_and_interpolation(tmp_path, cache_root):
    paths = [write_jpeg(tmp_path / "a.jpg", 0)]
    folders = {
        open_or_build_cache(paths, 32, "bicubic", root=cache_root)[0].folder,
        open_or_build_cache(paths, 48, "bicubic", root=cache_root)[0].folder,
        open_or_build_cache(paths, 32, "bilinear", root=cache_root)[0].folder,
    }
    assert len(folders) == 3


def test_cache_unreadable_image_leaves_nothing(tmp_path, cache_root):
    good = write_jpeg(tmp_path / "good.jpg", 0)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        open_or_build_cache([good, str(bad)], 32, "bicubic", root=cache_root)
    leftovers = [p.name for p in cache_root.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_cache_dataset_rejects_unknown_hash(tmp_path, cache_root):
    path = write_jpeg(tmp_path / "a.jpg", 0)
    cache, _ = open_or_build_cache([path], 32, "bicubic", root=cache_root)
    with pytest.raises(ValueError, match="not in the cache"):
        CachedImageDataset([Sample(path, 0)], ["0" * 64], cache)


def test_cache_corrupt_index_names_fix(tmp_path, cache_root):
    path = write_jpeg(tmp_path / "a.jpg", 0)
    cache, _ = open_or_build_cache([path], 32, "bicubic", root=cache_root)
    (cache.folder / "index.json").write_text("{truncated")
    with pytest.raises(RuntimeError, match="delete the folder"):
        type(cache)(cache.folder)


def _build_in_process(paths, root, queue):
    cache, hashes = open_or_build_cache(paths, 32, "bicubic", root=root)
    queue.put((str(cache.folder), [cache.array(value).tobytes() for value in hashes]))


def test_cache_concurrent_builders_share_one(tmp_path, cache_root):
    paths = [write_jpeg(tmp_path / f"{i}.jpg", i) for i in range(6)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_build_in_process, args=(paths, cache_root, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert results[0] == results[1]
    folders = [p for p in cache_root.iterdir() if p.is_dir()]
    assert [p.name for p in folders] == [os.path.basename(results[0][0])]
    index = json.loads((folders[0] / "index.json").read_text())
    assert index["num_images"] == 6


def test_cache_seeded_augmentation_repeats(sample_splits, cache_root):
    datasets = cached_split_datasets(sample_splits, 64, 1.0, "bicubic", root=cache_root)
    policy = MriPolicy(AugmentConfig(), 64)
    train = SeededTrainDataset(datasets["train"], policy.train_transform(), seed=3)
    first = train[(2, 5)][0]
    torch.manual_seed(123)
    assert torch.equal(train[(2, 5)][0], first)
    assert not torch.equal(train[(2, 6)][0], first)


def test_cache_training_run_uses_cache(tmp_path, cache_root):
    run_dir = tmp_path / "run"
    summary = train_recipe(tiny_recipe("data.cache=true", "train.epochs=1"), run_dir, progress=False)
    assert summary["epochs_run"] == 1
    folders = [p for p in cache_root.iterdir() if p.is_dir()]
    assert len(folders) == 1
    index = json.loads((folders[0] / "index.json").read_text())
    counts = summary["data"]["counts"]
    assert index["num_images"] == counts["train"]["total"] + counts["val"]["total"] + counts["test"]["total"]


def test_cache_off_by_default(sample_splits, tmp_path, cache_root):
    trainer = DefaultTrainer(tiny_recipe(data="sample"), tmp_path / "run", progress=False)
    context = DistributedContext(device=torch.device("cpu"))
    train_images, val_images = trainer._image_datasets(sample_splits, context)
    assert type(train_images) is ImageDataset
    assert type(val_images) is ImageDataset
    assert not cache_root.exists()
