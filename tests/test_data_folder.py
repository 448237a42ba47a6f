"""Kaggle folder scanning: folder-name variants, empty and missing classes, hidden files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zoo_core.data.classes import CLASS_NAMES, canonical_class
from zoo_core.data.datasets import build_kaggle, build_sample, samples_from_folder
from zoo_core.data.folder import DatasetError
from zoo_core.paths import SAMPLE_DIR
from zoo_core.recipe import DataConfig

@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))


CANONICAL_FOLDERS = {"glioma": "glioma", "meningioma": "meningioma", "notumor": "notumor", "pituitary": "pituitary"}


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("glioma", "glioma"),
        ("glioma_tumor", "glioma"),
        ("Glioma Tumor", "glioma"),
        ("GLIOMA-TUMOR", "glioma"),
        ("meningioma", "meningioma"),
        ("meningioma_tumor", "meningioma"),
        ("Meningioma", "meningioma"),
        ("notumor", "notumor"),
        ("no_tumor", "notumor"),
        ("No Tumor", "notumor"),
        ("NOTUMOUR", "notumor"),
        ("pituitary", "pituitary"),
        ("pituitary_tumor", "pituitary"),
        ("Pituitary-Tumour", "pituitary"),
    ],
)
def test_canonical_class_variants(folder, expected):
    assert canonical_class(folder) == expected


def test_canonical_class_unknown():
    assert canonical_class("tumour_misc") is None


def make_tree(root: Path, train: dict[str, str] | None = None, test: dict[str, str] | None = None) -> Path:
    """Copy sample images into root/Training/<folder> and root/Testing/<folder>.

    Each mapping is folder name -> source class; Training gets all but the last
    image of the class, Testing the last.
    """
    train = CANONICAL_FOLDERS if train is None else train
    test = CANONICAL_FOLDERS if test is None else test
    for split, layout in (("Training", train), ("Testing", test)):
        for folder, source in layout.items():
            files = sorted((SAMPLE_DIR / source).glob("*.jpg"))
            chosen = files[:-1] if split == "Training" else files[-1:]
            (root / split / folder).mkdir(parents=True)
            for path in chosen:
                shutil.copy(path, root / split / folder / path.name)
    return root


def _build(root: Path, **values):
    return build_kaggle(DataConfig(name="kaggle", root=str(root), **values), seed=0)


def test_build_variant_folder_names(tmp_path):
    train = {"Glioma_Tumor": "glioma", "meningioma_tumor": "meningioma", "no_tumor": "notumor", "PITUITARY": "pituitary"}
    root = make_tree(tmp_path, train=train)

    splits = _build(root)

    counts = splits.counts()
    assert counts["test"] == {"total": 4, "glioma": 1, "meningioma": 1, "notumor": 1, "pituitary": 1}
    assert counts["train"]["total"] + counts["val"]["total"] == 13
    assert splits.class_names == CLASS_NAMES


def test_build_lowercase_split_names(tmp_path):
    root = make_tree(tmp_path / "data")
    (root / "Training").rename(root / "training")
    (root / "Testing").rename(root / "TESTING")

    splits = _build(root)

    assert len(splits.test) == 4


def test_build_unknown_folder(tmp_path):
    root = make_tree(tmp_path, train={**CANONICAL_FOLDERS, "tumour_misc": "glioma"})

    with pytest.raises(DatasetError) as caught:
        _build(root)

    message = str(caught.value)
    assert "tumour_misc" in message
    assert "no_tumor" in message or "notumor" in message


def test_build_empty_class(tmp_path):
    root = make_tree(tmp_path)
    shutil.rmtree(root / "Training" / "meningioma")
    (root / "Training" / "meningioma").mkdir()

    with pytest.raises(DatasetError) as caught:
        _build(root)

    assert "meningioma" in str(caught.value)
    assert "is empty" in str(caught.value)


def test_build_class_with_hidden_files_only(tmp_path):
    root = make_tree(tmp_path)
    shutil.rmtree(root / "Testing" / "notumor")
    (root / "Testing" / "notumor").mkdir()
    (root / "Testing" / "notumor" / ".DS_Store").write_bytes(b"\x00")

    with pytest.raises(DatasetError, match="is empty"):
        _build(root)


def test_build_class_missing_from_testing(tmp_path):
    test = {name: name for name in CLASS_NAMES if name != "pituitary"}
    root = make_tree(tmp_path, test=test)

    with pytest.raises(DatasetError) as caught:
        _build(root)

    message = str(caught.value)
    assert "'pituitary' missing from the Testing split" in message
    assert "present in Training" in message


def test_build_two_folders_one_class(tmp_path):
    root = make_tree(tmp_path, train={**CANONICAL_FOLDERS, "glioma_tumor": "glioma"})

    with pytest.raises(DatasetError, match="both map to class 'glioma'"):
        _build(root)


def test_build_two_training_folders(tmp_path):
    root = make_tree(tmp_path)
    shutil.copytree(root / "Training", root / "train")

    with pytest.raises(DatasetError, match="several folders for one split"):
        _build(root)


def test_build_ignores_hidden_files(tmp_path):
    root = make_tree(tmp_path)
    (root / "Training" / "glioma" / ".DS_Store").write_bytes(b"\x00")
    (root / "Training" / "glioma" / "Thumbs.db").write_bytes(b"\x00")
    (root / "Training" / "glioma" / "._Te-gl_0010.jpg").write_bytes(b"\x00")
    (root / "Training" / "__MACOSX").mkdir()
    (root / "Training" / ".cache").mkdir()

    splits = _build(root)

    assert splits.skipped == []
    assert splits.counts()["train"]["glioma"] + splits.counts()["val"]["glioma"] == 5


def test_build_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        _build(tmp_path / "absent")


def test_build_sample_split():
    splits = build_sample(DataConfig(name="sample"), seed=0)

    assert len(splits.test) == 4
    assert {sample.label for sample in splits.val} == {0, 1, 2, 3}
    assert splits.notes["duplicates"]["pairs"]["exact"] == 0


def test_samples_from_folder_testing(tmp_path):
    root = make_tree(tmp_path)

    samples, split = samples_from_folder(root)

    assert split == "Testing"
    assert len(samples) == 4


def test_audit_reports_layout_problems_and_goes_on(tmp_path):
    import shutil

    from zoo_core.data.audit import audit_folder
    from zoo_core.paths import SAMPLE_DIR

    shutil.copytree(SAMPLE_DIR / "glioma", tmp_path / "Training" / "glioma")
    shutil.copytree(SAMPLE_DIR / "meningioma", tmp_path / "Training" / "meningeoma")
    shutil.copytree(SAMPLE_DIR / "notumor", tmp_path / "Testing" / "notumor")
    (tmp_path / "Testing" / "pituitary").mkdir(parents=True)

    report = audit_folder(tmp_path, use_cache=False)
    problems = "\n".join(report.layout_problems)
    assert "meningeoma' does not name a class" in problems
    assert "pituitary' is empty" in problems
    assert "missing from the Testing split" in problems
    assert len(report.records) == 6 + 3
    assert report.to_dict()["layout_problems"] == report.layout_problems
    assert "Layout problems (training would stop on these): " in report.format_text()
