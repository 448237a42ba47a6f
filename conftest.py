"""Shared fixtures: an isolated cache and Hub, and the tiny test-model plugin."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent
TEST_PLUGIN_DIR = Path(__file__).resolve().parent / "tests" / "plugins"
sys.path.insert(0, str(TEST_PLUGIN_DIR))
sys.path.insert(0, str(REPO_ROOT / "tests"))


def pytest_configure(config):
    """Point the Hugging Face libraries at an empty offline cache before anything imports them.

    huggingface_hub reads HF_HUB_OFFLINE and HF_HOME when it is first imported,
    which happens while tests are collected, before any fixture runs.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="zoo-test-hf-home-")


@pytest.fixture(scope="session", autouse=True)
def session_environment(tmp_path_factory):
    """Keep the whole session away from the user's caches, plugins and the network."""
    patch = pytest.MonkeyPatch()
    base = tmp_path_factory.getbasetemp()
    patch.setenv("ZOO_CACHE_DIR", str(base / "zoo-cache"))
    patch.setenv("ZOO_PLUGIN_MODULES", "zoo_test_plugins")
    patch.setenv("PYTHONPATH", os.pathsep.join([str(TEST_PLUGIN_DIR), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    patch.delenv("ZOO_LOAD_PLUGINS", raising=False)
    # pytest-xdist runs one worker per core: one thread each avoids oversubscription,
    # and subprocesses (CLI runs, DDP ranks) inherit the same setting.
    patch.setenv("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def fresh_plugins():
    """Load plugins anew for each test, so a test that filters them cannot leak into the next."""
    from zoo_core import plugins

    plugins.reload_plugins()
    yield
    plugins._state = None


@pytest.fixture
def sample_dir() -> Path:
    from zoo_core.paths import SAMPLE_DIR

    return SAMPLE_DIR
