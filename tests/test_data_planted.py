"""Audit, dedup and validation split on a tree built from the bundled real slices.

The tree has planted exact, near and cross-label duplicates, folder-name
variants, hidden files and one file of every bad kind. The audit must find
every planted pair and nothing else.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageEnhance

from zoo_core.cli import cli
from zoo_core.data.audit import audit_folder
from zoo_core.data.datasets import build_kaggle
from zoo_core.data.duplicates import duplicate_groups, find_duplicate_pairs
from zoo_core.data.folder import DatasetError
from zoo_core.paths import SAMPLE_DIR
from zoo_core.recipe import DataConfig

SOURCE = {path.stem: path for path in SAMPLE_DIR.rglob("*.jpg")}

# Folder-name variants on Training, canonical names on Testing.
TRAIN_LAYOUT = {
    "glioma_tumor": ["Te-gl_0010", "Te-gl_0011", "Te-gl_0012", "Te-gl_0013"],
    "Meningioma": ["Te-me_0016", "Te-me_0017", "Te-me_0018"],
    "no_tumor": ["Te-no_0021", "Te-no_0022"],
    "PITUITARY": ["Te-pi_0014", "Te-pi_0015"],
}
TEST_LAYOUT = {
    "glioma": ["Te-gl_0014", "Te-gl_0015"],
    "meningioma": ["Te-me_0019", "Te-me_0020"],
    "notumor": ["Te-no_0023"],
    "pituitary": ["Te-pi_0016"],
}

# (kind, first file, second file, scopes) for every planted pair.
PLANTED_PAIRS = {
    ("exact", "Training/glioma_tumor/Te-gl_0010.jpg", "Testing/glioma/copy_gl_0010.jpg", ("cross_split",)),
    ("near", "Training/Meningioma/Te-me_0016.jpg", "Testing/meningioma/crop_bright_me_0016.jpg", ("cross_split",)),
    ("exact", "Training/no_tumor/Te-no_0021.jpg", "Testing/notumor/lossless_no_0021.png", ("cross_split",)),
    ("exact", "Training/no_tumor/Te-no_0021.jpg", "Testing/notumor/lossless_no_0021.BMP", ("cross_split",)),
    ("exact", "Testing/notumor/lossless_no_0021.BMP", "Testing/notumor/lossless_no_0021.png", ("within_split",)),
    ("exact", "Training/glioma_tumor/Te-gl_0011.jpg", "Training/glioma_tumor/copy_gl_0011.jpg", ("within_split",)),
    ("near", "Training/PITUITARY/Te-pi_0015.jpg", "Training/PITUITARY/reencoded_pi_0015.jpg", ("within_split",)),
    ("near", "Training/Meningioma/Te-me_0017.jpg", "Training/no_tumor/resized_me_0017.jpg", ("cross_label",)),
    ("exact", "Training/glioma_tumor/Te-gl_0012.jpg", "Testing/pituitary/copy_gl_0012.jpg", ("cross_split", "cross_label")),
}

BAD_FILES = {
    "Training/glioma_tumor/truncated.jpg": "truncated",
    "Training/Meningioma/empty.jpg": "empty file",
    "Testing/notumor/notes_as_image.jpg": "not an image file",
    "Testing/pituitary/README.txt": "not an image file (extension '.txt')",
    "Training/no_tumor/error_page.PNG": "not an image file",
}
BAD_FILES_PATHS = list(BAD_FILES)


def _jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def build_planted_tree(root: Path, bad_files: bool = False) -> Path:
    """Write the planted Kaggle-layout tree under ``root`` and return it."""
    for split, layout in (("Training", TRAIN_LAYOUT), ("Testing", TEST_LAYOUT)):
        for folder, stems in layout.items():
            (root / split / folder).mkdir(parents=True)
            for stem in stems:
                shutil.copy(SOURCE[stem], root / split / folder / f"{stem}.jpg")

    shutil.copy(SOURCE["Te-gl_0010"], root / "Testing/glioma/copy_gl_0010.jpg")
    shutil.copy(SOURCE["Te-gl_0011"], root / "Training/glioma_tumor/copy_gl_0011.jpg")
    shutil.copy(SOURCE["Te-gl_0012"], root / "Testing/pituitary/copy_gl_0012.jpg")

    no_0021 = Image.open(SOURCE["Te-no_0021"]).convert("RGB")
    no_0021.save(root / "Testing/notumor/lossless_no_0021.png")
    no_0021.save(root / "Testing/notumor/lossless_no_0021.BMP", format="BMP")

    me_0016 = Image.open(SOURCE["Te-me_0016"]).convert("RGB")
    width, height = me_0016.size
    cropped = me_0016.crop((3, 3, width - 3, height - 3))
    brighter = ImageEnhance.Brightness(cropped).enhance(1.15)
    (root / "Testing/meningioma/crop_bright_me_0016.jpg").write_bytes(_jpeg_bytes(brighter, 85))

    pi_0015 = Image.open(SOURCE["Te-pi_0015"]).convert("RGB")
    (root / "Training/PITUITARY/reencoded_pi_0015.jpg").write_bytes(_jpeg_bytes(pi_0015, 60))

    me_0017 = Image.open(SOURCE["Te-me_0017"]).convert("RGB")
    resized = me_0017.resize((me_0017.width * 3 // 4, me_0017.height * 3 // 4), Image.BICUBIC)
    (root / "Training/no_tumor/resized_me_0017.jpg").write_bytes(_jpeg_bytes(resized, 90))

    # Hidden and system files that must be ignored everywhere.
    (root / "Training/glioma_tumor/.DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "Testing/glioma/Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "Training/PITUITARY/._Te-pi_0014.jpg").write_bytes(b"\x00\x05\x16\x07")
    (root / "__MACOSX/Training").mkdir(parents=True)
    (root / "__MACOSX/Training/._glioma").write_bytes(b"\x00")

    if bad_files:
        data = SOURCE["Te-gl_0013"].read_bytes()
        (root / BAD_FILES_PATHS[0]).write_bytes(data[: len(data) // 2])
        (root / BAD_FILES_PATHS[1]).write_bytes(b"")
        (root / BAD_FILES_PATHS[2]).write_text("scan notes: patient 12, slice 40\n")
        (root / BAD_FILES_PATHS[3]).write_text("images from the hospital archive\n")
        (root / BAD_FILES_PATHS[4]).write_text("<html><body>403 Forbidden</body></html>\n")
    return root


def _pair_key(pair, root: Path):
    first = str(Path(pair.first.path).relative_to(root))
    second = str(Path(pair.second.path).relative_to(root))
    first, second = sorted((first, second))
    return (pair.kind, first, second, tuple(pair.scopes))


def _planted_keys():
    return {(kind, *sorted((a, b)), scopes) for kind, a, b, scopes in PLANTED_PAIRS}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def planted(tmp_path) -> Path:
    return build_planted_tree(tmp_path / "brain-mri")


@pytest.fixture
def planted_with_bad(tmp_path) -> Path:
    return build_planted_tree(tmp_path / "brain-mri", bad_files=True)


def _config(**values) -> DataConfig:
    return DataConfig(name="kaggle", **values)


# ---------------------------------------------------------------- audit


def test_audit_finds_planted_pairs_only(planted_with_bad):
    report = audit_folder(planted_with_bad, workers=2)

    found = {_pair_key(pair, planted_with_bad) for pair in report.pairs}
    assert found - _planted_keys() == set(), "pairs reported that were not planted"
    assert _planted_keys() - found == set(), "planted pairs not found"


def test_audit_near_pairs_within_threshold(planted):
    report = audit_folder(planted, workers=2)

    near = [pair for pair in report.pairs if pair.kind == "near"]
    assert len(near) == 3
    for pair in near:
        assert pair.distance <= report.near_threshold
        assert pair.first.pixel_sha256 != pair.second.pixel_sha256


def test_audit_lists_every_bad_file(planted_with_bad):
    report = audit_folder(planted_with_bad, workers=2)

    reasons = {str(Path(r.path).relative_to(planted_with_bad)): r.error for r in report.unreadable}
    assert set(reasons) == set(BAD_FILES)
    for path, expected in BAD_FILES.items():
        assert expected in reasons[path], f"{path}: {reasons[path]}"


def test_audit_ignores_hidden_files(planted):
    report = audit_folder(planted, workers=2)

    names = {Path(record.path).name for record in report.records}
    assert ".DS_Store" not in names
    assert "Thumbs.db" not in names
    assert "._Te-pi_0014.jpg" not in names
    assert report.splits == ["Training", "Testing"]


def test_audit_class_stats(planted):
    stats = audit_folder(planted, workers=2).class_stats()

    assert stats["Training"]["glioma"]["files"] == 5
    assert stats["Training"]["glioma"]["min_size"] == "512x512"
    assert stats["Testing"]["notumor"]["formats"] == {"JPEG": 1, "PNG": 1, "BMP": 1}
    assert stats["Testing"]["notumor"]["modes"] == {"RGB": 3}
    assert stats["Testing"]["pituitary"]["files"] == 2


def test_audit_threshold_zero_keeps_exact(planted):
    report = audit_folder(planted, near_threshold=0, workers=2)

    kinds = {pair.kind for pair in report.pairs}
    assert "exact" in kinds
    assert all(pair.distance == 0 for pair in report.pairs)
    assert report.leakage


def test_audit_cli_json_names_pairs(planted_with_bad):
    result = CliRunner().invoke(cli, ["data", "audit", str(planted_with_bad), "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["duplicate_counts"]["cross_split"] == 5
    assert report["duplicate_counts"]["cross_label"] == 2
    assert len(report["pairs"]) == len(PLANTED_PAIRS)
    assert len(report["unreadable"]) == len(BAD_FILES)
    named = {Path(p["first"]["path"]).name for p in report["pairs"]} | {Path(p["second"]["path"]).name for p in report["pairs"]}
    assert "crop_bright_me_0016.jpg" in named


def test_audit_cli_text_names_pairs(planted):
    result = CliRunner().invoke(cli, ["data", "audit", str(planted)])

    assert result.exit_code == 0, result.output
    assert "Across splits:" in result.stdout
    assert "copy_gl_0012.jpg" in result.stdout
    assert "Across labels:" in result.stdout


def test_audit_cli_strict_exit_status(planted, tmp_path):
    leaky = CliRunner().invoke(cli, ["data", "audit", str(planted), "--strict"])
    clean = CliRunner().invoke(cli, ["data", "audit", str(SAMPLE_DIR), "--strict", "--json"])

    assert leaky.exit_code == 1
    assert "leakage found" in leaky.output
    assert clean.exit_code == 0, clean.output


def test_audit_cli_writes_output_file(planted, tmp_path):
    target = tmp_path / "reports" / "audit.json"
    result = CliRunner().invoke(cli, ["data", "audit", str(planted), "--output", str(target), "--near-threshold", "4"])

    assert result.exit_code == 0, result.output
    report = json.loads(target.read_text())
    assert report["near_threshold"] == 4


def test_audit_cli_layout_problem_reported(tmp_path):
    (tmp_path / "Training" / "tumour_misc").mkdir(parents=True)
    (tmp_path / "Training" / "tumour_misc" / "a.jpg").write_bytes(SOURCE["Te-gl_0010"].read_bytes())

    result = CliRunner().invoke(cli, ["data", "audit", str(tmp_path)])

    # Only leakage with --strict changes the exit status; layout problems are listed.
    assert result.exit_code == 0
    assert "Layout problems" in result.output
    assert "tumour_misc" in result.output


def test_hash_cache_reuses_unchanged(planted, monkeypatch):
    from zoo_core.data import duplicates

    first = audit_folder(planted, workers=2)
    changed = planted / "Testing/glioma/Te-gl_0014.jpg"
    changed.write_bytes(SOURCE["Te-pi_0016"].read_bytes())
    decoded = []
    original = duplicates._hash_one
    monkeypatch.setattr(duplicates, "_hash_one", lambda *job: decoded.append(job[0]) or original(*job))

    second = audit_folder(planted, workers=2)

    assert decoded == [str(changed)]
    before = {r.path: r for r in first.records}
    after = {r.path: r for r in second.records}
    assert after[str(changed)].pixel_sha256 != before[str(changed)].pixel_sha256
    unchanged = str(planted / "Training/glioma_tumor/Te-gl_0010.jpg")
    assert after[unchanged] == before[unchanged]
    assert len(second.pairs) == len(first.pairs) + 1


def test_hash_cache_off(planted, monkeypatch):
    from zoo_core.data import duplicates

    audit_folder(planted, workers=2)
    decoded = []
    original = duplicates._hash_one
    monkeypatch.setattr(duplicates, "_hash_one", lambda *job: decoded.append(job[0]) or original(*job))

    report = audit_folder(planted, workers=2, use_cache=False)

    assert len(decoded) == len(report.records)


# ---------------------------------------------------------------- training splits


def _relative(samples, root: Path) -> set[str]:
    return {str(Path(sample.path).relative_to(root)) for sample in samples}


def test_build_stops_on_bad_files(planted_with_bad):
    with pytest.raises(DatasetError) as caught:
        build_kaggle(_config(root=str(planted_with_bad)), seed=0)

    message = str(caught.value)
    for path in BAD_FILES:
        assert path in message
    assert "data.skip_bad_images" in message


def test_build_skips_and_records_bad_files(planted_with_bad):
    splits = build_kaggle(_config(root=str(planted_with_bad), skip_bad_images=True), seed=0)

    described = splits.describe()
    skipped = {str(Path(item["path"]).relative_to(planted_with_bad)) for item in described["skipped_files"]}
    assert skipped == set(BAD_FILES)
    used = _relative(splits.train + splits.val + splits.test, planted_with_bad)
    assert used.isdisjoint(BAD_FILES)
    json.dumps(described)


def test_build_dedup_off_counts_pairs(planted):
    splits = build_kaggle(_config(root=str(planted), dedup="off"), seed=0)

    notes = splits.describe()
    assert notes["dedup"] == {"mode": "off", "removed_count": 0, "moved_count": 0, "removed": [], "moved": []}
    assert notes["duplicates"]["pairs"]["cross_split"] == 5
    assert len(notes["duplicates"]["cross_label_pairs"]) == 2
    assert len(splits.test) == 11


def test_build_dedup_remove_test(planted):
    splits = build_kaggle(_config(root=str(planted), dedup="remove_test"), seed=0)

    removed = {item["path"]: item for item in splits.notes["dedup"]["removed"]}
    expected = {
        "Testing/glioma/copy_gl_0010.jpg",
        "Testing/meningioma/crop_bright_me_0016.jpg",
        "Testing/notumor/lossless_no_0021.png",
        "Testing/notumor/lossless_no_0021.BMP",
        "Testing/pituitary/copy_gl_0012.jpg",
    }
    assert {str(Path(p).relative_to(planted)) for p in removed} == expected
    assert _relative(splits.test, planted).isdisjoint(expected)
    assert len(splits.test) == 11 - len(expected)
    near = removed[str(planted / "Testing/meningioma/crop_bright_me_0016.jpg")]
    assert near["kind"] == "near"
    assert near["duplicate_of"] == str(planted / "Training/Meningioma/Te-me_0016.jpg")
    assert splits.notes["dedup"]["removed_count"] == 5


def test_build_dedup_regroup(planted):
    splits = build_kaggle(_config(root=str(planted), dedup="regroup"), seed=0)

    moved = {str(Path(item["path"]).relative_to(planted)): item for item in splits.notes["dedup"]["moved"]}
    # Two of three copies of no_0021 are in Testing, so the Training one moves there;
    # the 1:1 groups go to Training.
    assert moved["Training/no_tumor/Te-no_0021.jpg"]["to"] == "Testing"
    assert moved["Testing/glioma/copy_gl_0010.jpg"]["to"] == "Training"
    assert moved["Testing/meningioma/crop_bright_me_0016.jpg"]["to"] == "Training"
    assert moved["Testing/pituitary/copy_gl_0012.jpg"]["to"] == "Training"
    assert len(moved) == 4

    test_paths = _relative(splits.test, planted)
    train_paths = _relative(splits.train + splits.val, planted)
    assert "Training/no_tumor/Te-no_0021.jpg" in test_paths
    assert "Testing/glioma/copy_gl_0010.jpg" in train_paths
    pairs = find_duplicate_pairs(audit_folder(planted, workers=2).records)
    for group in set(duplicate_groups(pairs).values()):
        members = {p for p, g in duplicate_groups(pairs).items() if g == group}
        sides = {"test" if str(Path(p).relative_to(planted)) in test_paths else "train" for p in members}
        assert len(sides) == 1, f"group {group} spans splits"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_build_val_keeps_groups_together(planted, seed):
    splits = build_kaggle(_config(root=str(planted), val_fraction=0.5), seed=seed)

    val_paths = {sample.path for sample in splits.val}
    train_paths = {sample.path for sample in splits.train}
    groups = {
        ("Training/glioma_tumor/Te-gl_0011.jpg", "Training/glioma_tumor/copy_gl_0011.jpg"),
        ("Training/PITUITARY/Te-pi_0015.jpg", "Training/PITUITARY/reencoded_pi_0015.jpg"),
        ("Training/Meningioma/Te-me_0017.jpg", "Training/no_tumor/resized_me_0017.jpg"),
    }
    for first, second in groups:
        a, b = str(planted / first), str(planted / second)
        assert (a in val_paths) == (b in val_paths), f"{first} and {second} split apart"
        assert (a in train_paths) == (b in train_paths)
    for split in (splits.train, splits.val):
        assert {sample.label for sample in split} == {0, 1, 2, 3}


# ---------------------------------------------------------------- a real run


def test_training_run_records_data_changes(planted_with_bad, tmp_path):
    from helpers import tiny_recipe
    from zoo_core.train.run import train_recipe

    recipe = tiny_recipe(
        f"data.root={planted_with_bad}",
        "data.skip_bad_images=true",
        "data.dedup=remove_test",
        "data.val_fraction=0.3",
        "train.epochs=1",
        model="test_convnext",
        data="kaggle",
    )
    summary = train_recipe(recipe, tmp_path / "run", progress=False)

    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["data"] == summary["data"]
    skipped = {str(Path(item["path"]).relative_to(planted_with_bad)) for item in written["data"]["skipped_files"]}
    assert skipped == set(BAD_FILES)
    assert written["data"]["dedup"]["removed_count"] == 5
    assert written["data"]["counts"]["test"]["total"] == 6
    assert written["data"]["duplicates"]["pairs"]["cross_split"] == 5
