"""``zoo push`` with the Hub's network replaced at the huggingface_hub API boundary."""

from __future__ import annotations

import json
from pathlib import Path

import socket
import pytest
from click.testing import CliRunner
from huggingface_hub import HfApi
from huggingface_hub.errors import EntryNotFoundError

from test_hub_load import make_hand_run
from zoo_core.cli import cli
from zoo_core.hub import HubError, card_was_edited, push_run


class FakeHub:
    """Records the HfApi calls of a push and keeps the files of each branch in memory."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.commits: list[dict] = []
        self.branches: dict[str, dict[str, bytes]] = {}

    def create_repo(self, api, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        self.branches.setdefault("main", {})
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, api, repo_id, *, branch, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, "branch": branch, **kwargs}))
        self.branches.setdefault(branch, dict(self.branches.get("main", {})))

    def create_commit(self, api, repo_id, operations, *, commit_message, revision=None, **kwargs):
        files = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}
        branch = revision or "main"
        self.branches.setdefault(branch, {}).update(files)
        self.commits.append({"repo_id": repo_id, "files": files, "message": commit_message, "revision": revision})
        self.calls.append(("create_commit", {"repo_id": repo_id, "revision": revision}))

        class Info:
            commit_url = f"https://huggingface.co/{repo_id}/commit/{len(self.commits):040d}"
            oid = f"{len(self.commits):040d}"

        return Info()

    def hf_hub_download(self, api, repo_id, filename, *, revision=None, local_dir=None, **kwargs):
        self.calls.append(("hf_hub_download", {"repo_id": repo_id, "filename": filename, "revision": revision}))
        files = self.branches.get(revision or "main", {})
        if filename not in files:
            raise EntryNotFoundError(f"{filename} not found in {repo_id}")
        path = Path(local_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[filename])
        return str(path)


@pytest.fixture
def fake_hub(monkeypatch):
    hub = FakeHub()
    for name in ("create_repo", "create_branch", "create_commit", "hf_hub_download"):
        method = getattr(hub, name)
        monkeypatch.setattr(HfApi, name, lambda api, *args, _method=method, **kwargs: _method(api, *args, **kwargs))

    def reject_connection(sock, address, *args, **kwargs):
        raise AssertionError(f"a push test tried to open a connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", reject_connection)
    monkeypatch.setattr(socket.socket, "connect_ex", reject_connection)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    return hub


@pytest.fixture
def hand_run(tmp_path):
    run_dir = tmp_path / "run"
    make_hand_run(run_dir)
    return run_dir


def test_push_sends_files_and_message(fake_hub, hand_run):
    result = push_run(hand_run, "brain-zoo/hand", private=True)
    assert fake_hub.calls[0] == ("create_repo", {"repo_id": "brain-zoo/hand", "private": True,
                                                  "repo_type": "model", "exist_ok": True})
    assert len(fake_hub.commits) == 1
    commit = fake_hub.commits[0]
    assert set(commit["files"]) == {"model.safetensors", "config.json", "README.md"}
    assert commit["revision"] is None
    assert commit["message"] == "Upload best checkpoint of brain-zoo run hand (test top-1 50.00% on 4 images)"
    config = json.loads(commit["files"]["config.json"])
    assert config["architecture"] == "test_convnext"
    assert config["label_names"] == ["glioma", "meningioma", "notumor", "pituitary"]
    card = commit["files"]["README.md"].decode()
    assert "hf-hub:brain-zoo/hand" in card
    assert result.card_kept is False
    assert result.commit_url.endswith("1".rjust(40, "0"))


def test_push_again_keeps_edited_card(fake_hub, hand_run):
    push_run(hand_run, "brain-zoo/hand")
    edited = fake_hub.branches["main"]["README.md"].decode().replace("# brain-zoo/hand", "# My edited title")
    fake_hub.branches["main"]["README.md"] = edited.encode()
    assert card_was_edited(edited)

    result = push_run(hand_run, "brain-zoo/hand")
    assert len(fake_hub.commits) == 2
    assert set(fake_hub.commits[1]["files"]) == {"model.safetensors", "config.json"}
    assert result.card_kept is True
    assert fake_hub.branches["main"]["README.md"].decode() == edited

    push_run(hand_run, "brain-zoo/hand", overwrite_card=True)
    assert "README.md" in fake_hub.commits[2]["files"]
    assert "# brain-zoo/hand" in fake_hub.branches["main"]["README.md"].decode()


def test_push_again_replaces_unedited_card(fake_hub, hand_run):
    push_run(hand_run, "brain-zoo/hand")
    assert not card_was_edited(fake_hub.branches["main"]["README.md"].decode())
    result = push_run(hand_run, "brain-zoo/hand")
    assert "README.md" in fake_hub.commits[1]["files"]
    assert result.card_kept is False


def test_push_cli_with_revision(fake_hub, hand_run):
    result = CliRunner().invoke(cli, ["push", str(hand_run), "--repo-id", "brain-zoo/hand", "--revision", "v1",
                                      "--commit-message", "First release"])
    assert result.exit_code == 0, result.output
    assert ("create_branch", {"repo_id": "brain-zoo/hand", "branch": "v1", "repo_type": "model",
                              "exist_ok": True}) in fake_hub.calls
    assert fake_hub.commits[0]["revision"] == "v1"
    assert fake_hub.commits[0]["message"] == "First release"
    assert "brain-zoo/hand" in result.output


def test_push_without_token_fails(fake_hub, hand_run, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
    with pytest.raises(HubError, match="no Hugging Face token found: set HF_TOKEN"):
        push_run(hand_run, "brain-zoo/hand")
    result = CliRunner().invoke(cli, ["push", str(hand_run), "--repo-id", "brain-zoo/hand"])
    assert result.exit_code == 1
    assert "hf auth login" in result.output
    assert fake_hub.calls == []


def test_push_invalid_repo_id(fake_hub, hand_run):
    with pytest.raises(HubError, match="invalid Hugging Face model id 'hand'"):
        push_run(hand_run, "hand")
    assert fake_hub.calls == []
