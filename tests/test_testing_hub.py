"""
Tests of `trl_ext.testing_hub.LocalHubServer`, the local stand-in for the Hugging Face Hub.

The clients (`huggingface_hub`, `transformers`, `datasets`) run unmodified in subprocesses pointed at the server with
`hub.env()` (the test session itself runs with `HF_HUB_OFFLINE=1`); protocol details are checked with raw HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import httpx
import pytest

from trl_ext.testing_hub import LocalHubServer

PUSH_AND_PULL = textwrap.dedent(
    """
    import json, os, sys

    import datasets
    import torch
    from huggingface_hub import HfApi, snapshot_download, whoami
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trl_ext.testing import make_tiny_causal_lm, make_tokenizer, save_tiny_model

    work = sys.argv[1]
    api = HfApi()
    report = {"whoami": whoami()["name"]}

    tokenizer = make_tokenizer()
    model = make_tiny_causal_lm(tokenizer)
    folder = save_tiny_model(model, tokenizer, os.path.join(work, "tiny"))
    url = api.create_repo("local-user/tiny-lm", exist_ok=True)
    api.create_repo("local-user/tiny-lm", exist_ok=True)  # idempotent
    api.upload_folder(repo_id=url.repo_id, folder_path=folder, commit_message="tiny model")
    model.push_to_hub("local-user/tiny-lm-2")  # transformers' own push path
    tokenizer.push_to_hub("local-user/tiny-lm-2")

    train = datasets.Dataset.from_dict({"prompt": ["a", "bb", "ccc"], "n": [1, 2, 3]})
    train.push_to_hub("local-user/tiny-ds")
    train.select([0]).push_to_hub("local-user/tiny-ds", split="test")

    pulled = snapshot_download("local-user/tiny-lm", cache_dir=os.path.join(work, "cache"))
    report["pulled"] = pulled
    loaded = AutoModelForCausalLM.from_pretrained("local-user/tiny-lm-2", cache_dir=os.path.join(work, "cache2"))
    AutoTokenizer.from_pretrained("local-user/tiny-lm-2", cache_dir=os.path.join(work, "cache2"))
    report["same_weights"] = all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values())
    )
    report["pulled_ds"] = snapshot_download(
        "local-user/tiny-ds", repo_type="dataset", cache_dir=os.path.join(work, "cache")
    )
    back = datasets.load_dataset("local-user/tiny-ds", cache_dir=os.path.join(work, "cache3"))
    report["ds"] = {split: back[split].to_dict() for split in back}
    tree = {f.path: f.lfs is not None for f in api.list_repo_tree("local-user/tiny-lm", recursive=True)}
    report["lfs"] = tree
    print("REPORT " + json.dumps(report))
    """
)


def _run(code: str, env: dict, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _files_under(folder: str) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder).replace(os.sep, "/")] = open(path, "rb").read()
    return out


@pytest.fixture()
def hub():
    with LocalHubServer() as server:
        yield server


def test_push_and_pull_models_and_datasets_with_unmodified_clients(hub, tmp_path):
    env = {**os.environ, **hub.env(), "HF_HOME": str(tmp_path / "hf_home")}
    result = _run(PUSH_AND_PULL, env, str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.split("REPORT ", 1)[1])
    assert report["whoami"] == "local-user"

    # The server holds exactly what was saved locally (plus the Hub's initial .gitattributes), byte for byte.
    local = _files_under(str(tmp_path / "tiny"))
    served = hub.repo_files("local-user/tiny-lm")
    assert set(served) == set(local) | {".gitattributes"}
    assert all(served[name] == content for name, content in local.items())
    # ... and snapshot_download brings the same bytes back.
    assert _files_under(report["pulled"]) == served
    assert report["same_weights"]

    # Binary weights went through LFS (batch + pre-signed PUT + verify), JSON went inline in the commit.
    assert report["lfs"]["model.safetensors"] is True
    assert report["lfs"]["config.json"] is False
    puts = [path for method, path in hub.requests if method == "PUT"]
    sha = hashlib.sha256(local["model.safetensors"]).hexdigest()
    assert f"/lfs-upload/{sha}" in puts
    assert ("POST", f"/lfs-verify/{sha}") in hub.requests
    assert ("POST", "/local-user/tiny-lm.git/info/lfs/objects/batch") in hub.requests
    # The identical safetensors pushed again by `model.push_to_hub` is deduplicated: one PUT per distinct blob.
    assert len(puts) == len(set(puts))
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(hub.repo_files("local-user/tiny-lm-2"))

    # Dataset: parquet shards for both splits and a dataset card whose YAML lists them.
    ds_files = hub.repo_files("local-user/tiny-ds", repo_type="dataset")
    assert {"data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet", "README.md"} <= set(ds_files)
    card = ds_files["README.md"].decode()
    assert "split: train" in card and "split: test" in card and "num_examples: 3" in card
    assert _files_under(report["pulled_ds"]) == ds_files
    assert report["ds"] == {
        "train": {"prompt": ["a", "bb", "ccc"], "n": [1, 2, 3]},
        "test": {"prompt": ["a"], "n": [1]},
    }


def test_wrong_token_fails_clearly_and_writes_nothing(hub, tmp_path):
    code = "from huggingface_hub import HfApi; HfApi().create_repo('local-user/nope')"
    env = {**os.environ, **hub.env(), "HF_TOKEN": "hf_wrong", "HF_HOME": str(tmp_path)}
    result = _run(code, env)
    assert result.returncode != 0
    assert "401" in result.stderr and "Invalid credentials in Authorization header" in result.stderr
    with pytest.raises(KeyError, match="No model repo 'local-user/nope'"):
        hub.repo_files("local-user/nope")


def _api(hub, token: str | None = "default") -> httpx.Client:
    token = hub.token if token == "default" else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=hub.endpoint, headers=headers, timeout=30)


def _commit(client, repo_id: str, lines: list[dict], repo_type: str = "model", parent: str | None = None):
    header = {"summary": "test", "description": ""} | ({"parentCommit": parent} if parent else {})
    payload = [{"key": "header", "value": header}, *lines]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in payload)
    return client.post(
        f"/api/{repo_type}s/{repo_id}/commit/main", content=data, headers={"Content-Type": "application/x-ndjson"}
    )


def _inline(path: str, content: bytes) -> dict:
    return {
        "key": "file",
        "value": {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"},
    }


def test_auth_rules(hub):
    with _api(hub, token=None) as anonymous, _api(hub, token="hf_wrong") as wrong, _api(hub) as client:
        assert anonymous.post("/api/repos/create", json={"name": "x", "type": "model"}).status_code == 401
        assert wrong.post("/api/repos/create", json={"name": "x", "type": "model"}).status_code == 401
        assert wrong.get("/api/whoami-v2").status_code == 401
        assert client.get("/api/whoami-v2").json()["name"] == "local-user"

        assert client.post("/api/repos/create", json={"name": "pub", "type": "model"}).status_code == 200
        second = client.post("/api/repos/create", json={"name": "pub", "type": "model"})
        assert second.status_code == 409 and second.json()["url"] == f"{hub.endpoint}/local-user/pub"
        # Public repos are readable anonymously, but a wrong token is refused even on reads (as on the Hub).
        assert anonymous.get("/api/models/local-user/pub").status_code == 200
        assert wrong.get("/api/models/local-user/pub").status_code == 401
        # Writes to an existing repo need the token too.
        assert _commit(anonymous, "local-user/pub", [_inline("a.txt", b"a")]).status_code == 401

        client.post("/api/repos/create", json={"name": "priv", "type": "model", "visibility": "private"})
        hidden = anonymous.get("/api/models/local-user/priv")
        assert hidden.status_code == 401 and hidden.headers["X-Error-Code"] == "RepoNotFound"
        assert client.get("/api/models/local-user/priv").json()["private"] is True


def test_preupload_modes_follow_gitattributes_size_and_binary_content(hub):
    with _api(hub) as client:
        client.post("/api/repos/create", json={"name": "m", "type": "model"})
        files = [
            {"path": "config.json", "sample": base64.b64encode(b'{"a": 1}').decode(), "size": 8},
            {"path": "sub/model.safetensors", "sample": base64.b64encode(b"{}").decode(), "size": 2},
            {"path": "weights.raw", "sample": base64.b64encode(b"\x00\x01").decode(), "size": 2},
            {"path": "huge.txt", "sample": base64.b64encode(b"text").decode(), "size": 10 * 1024 * 1024},
            {"path": "logs/events.out.tfevents.1", "sample": base64.b64encode(b"x").decode(), "size": 1},
        ]
        modes = client.post("/api/models/local-user/m/preupload/main", json={"files": files}).json()["files"]
        assert {f["path"]: f["uploadMode"] for f in modes} == {
            "config.json": "regular",
            "sub/model.safetensors": "lfs",
            "weights.raw": "lfs",
            "huge.txt": "lfs",
            "logs/events.out.tfevents.1": "lfs",
        }
        # A repo that stops tracking *.safetensors in LFS gets regular uploads for it.
        assert _commit(client, "local-user/m", [_inline(".gitattributes", b"*.bin filter=lfs\n")]).status_code == 200
        modes = client.post("/api/models/local-user/m/preupload/main", json={"files": files[1:2]}).json()["files"]
        assert modes[0]["uploadMode"] == "regular"
        # gitIgnore is honoured.
        body = {"files": files[:1], "gitIgnore": "*.json\n"}
        assert client.post("/api/models/local-user/m/preupload/main", json=body).json()["files"][0]["shouldIgnore"]


def test_lfs_upload_is_verified_and_commits_are_checked(hub):
    content = os.urandom(3000)
    oid, size = hashlib.sha256(content).hexdigest(), len(content)
    with _api(hub) as client, httpx.Client(timeout=30) as no_auth:
        client.post("/api/repos/create", json={"name": "d", "type": "dataset"})
        # A commit may not reference an LFS object that was never uploaded.
        lfs_line = {"key": "lfsFile", "value": {"path": "data/x.parquet", "algo": "sha256", "oid": oid, "size": size}}
        assert _commit(client, "local-user/d", [lfs_line], repo_type="dataset").status_code == 422

        batch = client.post(
            "/datasets/local-user/d.git/info/lfs/objects/batch",
            json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]},
        ).json()
        assert batch["transfer"] == "basic"
        actions = batch["objects"][0]["actions"]
        upload_url = actions["upload"]["href"]
        # The pre-signed URL is the credential: tampering is refused, and the body must match oid and size.
        assert no_auth.put(upload_url.replace("sig=", "sig=0"), content=content).status_code == 403
        assert no_auth.put(upload_url, content=content[:-1] + b"!").status_code == 400
        assert no_auth.put(upload_url, content=content).status_code == 200
        assert client.post(actions["verify"]["href"], json={"oid": oid, "size": size}).status_code == 200
        again = client.post(
            "/datasets/local-user/d.git/info/lfs/objects/batch",
            json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]},
        ).json()
        assert "actions" not in again["objects"][0]  # already stored: nothing to upload

        head = client.get("/api/datasets/local-user/d").json()["sha"]
        stale = _commit(client, "local-user/d", [lfs_line], repo_type="dataset", parent="0" * 40)
        assert stale.status_code == 412
        done = _commit(client, "local-user/d", [lfs_line, _inline("README.md", b"hi")], "dataset", parent=head)
        assert done.status_code == 200
        new_head = done.json()["commitOid"]
        assert hub.repo_files("local-user/d", repo_type="dataset")["data/x.parquet"] == content

        # Reads at the new commit: tree entries carry LFS info, resolve serves bytes, ranges and the Hub's headers.
        tree = client.get(f"/api/datasets/local-user/d/tree/{new_head}", params={"recursive": True}).json()
        entries = {entry["path"]: entry for entry in tree}
        assert entries["data"]["type"] == "directory"
        assert entries["data/x.parquet"]["lfs"]["oid"] == oid and entries["data/x.parquet"]["size"] == size
        resolved = client.get(f"/datasets/local-user/d/resolve/{new_head}/data/x.parquet")
        assert resolved.content == content
        assert resolved.headers["X-Repo-Commit"] == new_head
        assert resolved.headers["X-Linked-Etag"] == f'"{oid}"'
        partial = client.get("/datasets/local-user/d/resolve/main/data/x.parquet", headers={"Range": "bytes=10-19"})
        assert partial.status_code == 206 and partial.content == content[10:20]
        missing = client.head("/datasets/local-user/d/resolve/main/nope.txt")
        assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
        assert client.get("/api/datasets/local-user/d/revision/" + "f" * 40).headers["X-Error-Code"] == (
            "RevisionNotFound"
        )
        # Deletions.
        delete = {"key": "deletedFolder", "value": {"path": "data"}}
        assert _commit(client, "local-user/d", [delete], repo_type="dataset").status_code == 200
        assert "data/x.parquet" not in hub.repo_files("local-user/d", repo_type="dataset")
        history = client.get("/api/datasets/local-user/d/commits/main").json()
        assert [c["id"] for c in history][1] == new_head and len(history) == 3


def test_validate_yaml_rejects_unknown_license_and_pipeline_tag(hub):
    with _api(hub) as client:
        ok = "---\nlicense: apache-2.0\npipeline_tag: text-generation\ntags: [trl]\n---\n# card\n"
        assert client.post("/api/validate-yaml", json={"content": ok, "repoType": "model"}).status_code == 200
        bad = "---\nlicense: apache2\npipeline_tag: code-generation\n---\n"
        response = client.post("/api/validate-yaml", json={"content": bad, "repoType": "model"})
        assert response.status_code == 400
        messages = " ".join(e["message"] for e in response.json()["errors"])
        assert "apache2" in messages and "code-generation" in messages
        broken = "---\nlicense: [unclosed\n---\n"
        assert client.post("/api/validate-yaml", json={"content": broken}).status_code == 400


def test_xet_routes_explain_themselves_and_env_disables_xet(hub):
    env = hub.env()
    assert env["HF_ENDPOINT"] == hub.endpoint and env["HF_TOKEN"] == hub.token and env["HF_HUB_OFFLINE"] == "0"
    assert env["HF_HUB_DISABLE_XET"] == "1"
    with _api(hub) as client:
        client.post("/api/repos/create", json={"name": "m", "type": "model"})
        response = client.get("/api/models/local-user/m/xet-write-token/main")
        assert response.status_code == 501 and "HF_HUB_DISABLE_XET" in response.json()["error"]
    assert ("GET", "/api/models/local-user/m/xet-write-token/main") in hub.requests


def test_env_requires_a_started_server():
    with pytest.raises(RuntimeError, match="not started"):
        LocalHubServer().env()
