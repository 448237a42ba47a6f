"""Stratified validation split with duplicate groups, and the vectorised pair search."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from zoo_core.data import duplicates
from zoo_core.data.duplicates import ImageRecord, duplicate_groups, find_duplicate_pairs
from zoo_core.data.folder import Sample
from zoo_core.data.splits import stratified_split


def _samples(per_class: int) -> list[Sample]:
    return [Sample(f"c{label}/img_{index:03d}.jpg", label) for label in range(4) for index in range(per_class)]


def test_split_fraction_per_class():
    train, val = stratified_split(_samples(20), 0.25, seed=0)

    for label in range(4):
        assert sum(s.label == label for s in val) == 5
        assert sum(s.label == label for s in train) == 15


def test_split_order_independent():
    samples = _samples(10)
    shuffled = samples[:]
    random.Random(5).shuffle(shuffled)

    assert stratified_split(samples, 0.2, seed=3) == stratified_split(shuffled, 0.2, seed=3)


def test_split_seed_changes_val():
    _, first = stratified_split(_samples(30), 0.2, seed=0)
    _, second = stratified_split(_samples(30), 0.2, seed=1)

    assert {s.path for s in first} != {s.path for s in second}


@pytest.mark.parametrize("seed", range(6))
def test_split_keeps_groups_together(seed):
    samples = _samples(12)
    groups = {
        "c0/img_000.jpg": "g1",
        "c0/img_001.jpg": "g1",
        "c0/img_002.jpg": "g1",
        "c1/img_005.jpg": "g2",
        "c2/img_007.jpg": "g2",  # same slice filed under two labels
        "c3/img_000.jpg": "g3",
        "c3/img_001.jpg": "g3",
    }

    train, val = stratified_split(samples, 0.3, seed=seed, groups=groups)

    val_paths = {s.path for s in val}
    for group in set(groups.values()):
        members = [path for path, g in groups.items() if g == group]
        assert len({path in val_paths for path in members}) == 1, f"group {group} split apart"
    assert len(train) + len(val) == len(samples)


def test_split_large_group_stays_in_train():
    samples = _samples(10)
    groups = {f"c0/img_{index:03d}.jpg": "big" for index in range(8)}

    train, val = stratified_split(samples, 0.2, seed=0, groups=groups)

    val_class0 = {s.path for s in val if s.label == 0}
    assert val_class0 == {"c0/img_008.jpg", "c0/img_009.jpg"}
    assert set(groups) <= {s.path for s in train}


def test_split_every_class_in_both():
    samples = [Sample(f"c{label}/{index}.jpg", label) for label in range(4) for index in range(2)]

    train, val = stratified_split(samples, 0.1, seed=0)

    assert {s.label for s in train} == {0, 1, 2, 3}
    assert {s.label for s in val} == {0, 1, 2, 3}


def test_split_invalid_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(_samples(4), 1.5, seed=0)


def _records(hashes: list[int]) -> list[ImageRecord]:
    return [
        ImageRecord(f"img_{index:04d}.jpg", "Training", 0, pixel_sha256=f"sha{index}", phash=value)
        for index, value in enumerate(hashes)
    ]


@pytest.mark.parametrize(("block_rows", "popcount"), [(7, True), (1024, True), (7, False)])
def test_near_pairs_match_brute_force(monkeypatch, block_rows, popcount):
    rng = np.random.default_rng(0)
    centres = [int(value) for value in rng.integers(0, 2**63, size=20, dtype=np.int64)]
    hashes = []
    for centre in centres:
        for _ in range(5):
            flips = rng.choice(64, size=int(rng.integers(0, 12)), replace=False)
            value = centre
            for bit in flips:
                value ^= 1 << int(bit)
            hashes.append(value)
    hashes.append((1 << 64) - 1)
    monkeypatch.setattr(duplicates, "_BLOCK_ROWS", block_rows)
    if not popcount and hasattr(np, "bitwise_count"):
        monkeypatch.delattr(np, "bitwise_count")  # the matrix-product path for numpy < 2

    found = {(p.first.path, p.second.path, p.distance) for p in find_duplicate_pairs(_records(hashes), 8)}

    expected = set()
    for (i, a), (j, b) in itertools.combinations(enumerate(hashes), 2):
        distance = bin(a ^ b).count("1")
        if distance <= 8:
            expected.add((f"img_{i:04d}.jpg", f"img_{j:04d}.jpg", distance))
    assert found == expected
    assert expected, "the test data must contain near pairs"


def test_exact_pairs_by_pixels():
    records = _records([1, 1, 2**40])
    records[1] = ImageRecord("copy.jpg", "Testing", 2, pixel_sha256="sha0", phash=1)

    pairs = find_duplicate_pairs(records, near_threshold=None)

    assert len(pairs) == 1
    assert pairs[0].kind == "exact"
    assert pairs[0].scopes == ["cross_split", "cross_label"]


def test_duplicate_groups_chain():
    records = _records([0b0000, 0b0011, 0b1111, (1 << 64) - 1])

    groups = duplicate_groups(find_duplicate_pairs(records, near_threshold=2))

    assert groups["img_0000.jpg"] == groups["img_0001.jpg"] == groups["img_0002.jpg"]
    assert "img_0003.jpg" not in groups


def test_invalid_threshold():
    with pytest.raises(ValueError, match="threshold 64"):
        find_duplicate_pairs(_records([1, 2]), near_threshold=64)
