"""``zoo data download`` with kagglehub's network call replaced."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from zoo_core.cli import cli
from zoo_core.paths import SAMPLE_DIR

kagglehub = pytest.importorskip("kagglehub")


def _fake_download(calls: list):
    """Return a stand-in for kagglehub.dataset_download that writes a small Kaggle-layout tree."""

    def download(handle, path=None, *, force_download=False, output_dir=None):
        calls.append({"handle": handle, "force_download": force_download, "output_dir": output_dir})
        target = Path(output_dir)
        for split, index in (("Training", slice(None, -1)), ("Testing", slice(-1, None))):
            for folder in sorted(SAMPLE_DIR.iterdir()):
                if not folder.is_dir():
                    continue
                (target / split / folder.name).mkdir(parents=True, exist_ok=True)
                for image in sorted(folder.glob("*.jpg"))[index]:
                    shutil.copy(image, target / split / folder.name / image.name)
        return str(target)

    return download


def test_download_prints_folder(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(kagglehub, "dataset_download", _fake_download(calls))

    result = CliRunner().invoke(cli, ["data", "download", "--dest", str(tmp_path / "mri"), "--force"])

    assert result.exit_code == 0, result.output
    assert f"dataset at {tmp_path / 'mri'}" in result.stdout
    assert "Training 13 files" in result.stdout
    assert calls == [
        {"handle": "masoudnickparvar/brain-tumor-mri-dataset", "force_download": True, "output_dir": str(tmp_path / "mri")}
    ]


def test_download_unreachable(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)

    result = CliRunner().invoke(cli, ["data", "download", "--dest", str(tmp_path)])

    assert result.exit_code == 1
    assert "cannot reach Kaggle" in result.output
    assert "kaggle.com/datasets/masoudnickparvar/brain-tumor-mri-dataset" in result.output


def test_download_missing_credentials(monkeypatch, tmp_path):
    from kagglehub.exceptions import UnauthenticatedError

    def rejected(*args, **kwargs):
        raise UnauthenticatedError()

    monkeypatch.setattr(kagglehub, "dataset_download", rejected)

    result = CliRunner().invoke(cli, ["data", "download", "--dest", str(tmp_path)])

    assert result.exit_code == 1
    assert "KAGGLE_USERNAME" in result.output
    assert "kaggle.json" in result.output


def test_download_not_a_dataset(monkeypatch, tmp_path):
    def wrong(handle, path=None, *, force_download=False, output_dir=None):
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "readme.txt").write_text("x")
        return output_dir

    monkeypatch.setattr(kagglehub, "dataset_download", wrong)

    result = CliRunner().invoke(cli, ["data", "download", "--dest", str(tmp_path / "x")])

    assert result.exit_code == 1
    assert "not a usable dataset" in result.output


def test_download_without_kagglehub(monkeypatch):
    monkeypatch.setitem(sys.modules, "kagglehub", None)

    result = CliRunner().invoke(cli, ["data", "download"])

    assert result.exit_code == 1
    assert "pip install 'brain-zoo[download]'" in result.output
