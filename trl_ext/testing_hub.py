"""
A local stand-in for the Hugging Face Hub, for tests and offline rehearsals of `--push_to_hub`.

[`LocalHubServer`] is a real HTTP server (threaded, on a random free port of 127.0.0.1) that speaks the part of the
Hub's protocol that `huggingface_hub` uses to publish and fetch repositories, so that the unmodified client code of
`huggingface_hub`, `transformers` (`push_to_hub`, `Trainer.push_to_hub`, `from_pretrained`) and `datasets`
(`Dataset.push_to_hub`) runs against it end to end:

- account: `GET /api/whoami-v2`;
- repositories: `POST /api/repos/create` (model, dataset and space repos; a new repo starts with one commit holding
  the Hub's default `.gitattributes`), `DELETE /api/repos/delete`, `POST /api/{type}s/{id}/branch/{branch}`;
- commits: `POST /api/{type}s/{id}/preupload/{rev}` (upload mode per file: LFS when `.gitattributes` tracks the path,
  the file is 10 MiB or more, or its first bytes are binary; regular otherwise), the LFS batch API
  `POST /{prefix}{id}.git/info/lfs/objects/batch` with the `basic` transfer (a pre-signed `PUT` URL that needs no
  token, as S3's does, plus a `verify` action), and `POST /api/{type}s/{id}/commit/{rev}` (the NDJSON payload:
  `header`, base64 `file`, `lfsFile`, `deletedFile`, `deletedFolder`; `parentCommit` is enforced with a 412);
- metadata: `POST /api/validate-yaml` (the README's YAML front matter must parse to a mapping; an unknown `license`
  id or `pipeline_tag` is an error, as on the Hub);
- reads: `GET /api/{type}s/{id}[/revision/{rev}]` (repo info with `siblings`, `sha` and `cardData`),
  `GET /api/{type}s/{id}/tree/{rev}[/{path}]`, `POST /api/{type}s/{id}/paths-info/{rev}`,
  `GET /api/{type}s/{id}/refs`, `GET /api/{type}s/{id}/commits/{rev}`, and `HEAD`/`GET`
  `/{prefix}{id}/resolve/{rev}/{path}` with the Hub's `X-Repo-Commit` / `ETag` / `X-Linked-Etag` / `X-Linked-Size`
  headers and byte ranges, so `hf_hub_download`, `snapshot_download` and `HfFileSystem` work.

Xet storage is not served: uploads through Xet would need a content-addressed storage service. `huggingface_hub` picks
Xet on the client side whenever `hf_xet` is installed, so [`LocalHubServer.env`] sets `HF_HUB_DISABLE_XET=1` (the
legacy LFS path is then used), and the Xet token routes answer `501` with that advice.

Authentication is checked like the Hub does: every write needs `Authorization: Bearer <token>` with the server's token
(else `401`); a wrong token is refused on reads too (`401 Invalid credentials in Authorization header`); public repos
can be read without a token. The token may write to any namespace.

`huggingface_hub.constants.ENDPOINT` is read from the environment when `huggingface_hub` is imported (and the test
suite sets `HF_HUB_OFFLINE=1`), so the code under test runs in a subprocess with the server's environment, which is
also how a user points a recipe at another Hub endpoint:

```python
>>> import os, subprocess, sys
>>> from trl_ext.testing_hub import LocalHubServer
>>> with LocalHubServer() as hub:
...     code = "from huggingface_hub import whoami; print(whoami()['name'])"
...     out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **hub.env()}, capture_output=True)
...     out.stdout.decode().strip()
'local-user'
```
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import huggingface_hub.constants as hf_constants
import yaml

__all__ = ["LocalHubServer"]

_API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files of 10 MiB or more in LFS whatever their type
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REPO_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")

# The binary formats the Hub's default `.gitattributes` sends to LFS (model repos; dataset repos add media formats).
_LFS_PATTERNS = [
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz",
    "*.zip", "*.zst", "*tfevents*",
]  # fmt: skip
_DATASET_LFS_PATTERNS = [
    "*.mds", "*.lz4", "*.flac", "*.mp3", "*.ogg", "*.wav", "*.bmp", "*.gif", "*.png", "*.tiff", "*.jpg", "*.jpeg",
    "*.webp", "*.mp4", "*.webm",
]  # fmt: skip


def _default_gitattributes(repo_type: str) -> bytes:
    patterns = _LFS_PATTERNS + (_DATASET_LFS_PATTERNS if repo_type == "dataset" else [])
    return "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in patterns).encode()


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class _Blob:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        return _lfs_pointer(self.sha256, len(self.content))

    @property
    def git_oid(self) -> str:
        # As in git: an LFS file's blob is its pointer file.
        return _git_blob_sha1(self.pointer if self.lfs else self.content)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else _git_blob_sha1(self.content)


@dataclass
class _Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, _Blob]


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> _Commit | None:
        revision = revision.removeprefix("refs/heads/")
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if _COMMIT_RE.match(revision):
            return self.commits.get(revision)
        return None


class _HubError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        headers: dict | None = None,
        body: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}
        self.body = body or {}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class LocalHubServer:
    """
    A local HTTP server that stands in for the Hugging Face Hub (see the module docstring for the routes).

    Args:
        token (`str`, *optional*, defaults to `"hf_local_test_token"`):
            The only token the server accepts. Writes without it are refused with `401`.
        username (`str`, *optional*, defaults to `"local-user"`):
            The account `whoami` reports and the namespace of repos created without one.

    Attributes:
        endpoint (`str`): `"http://127.0.0.1:<port>"`, valid once the server is started.
        token (`str`): the accepted token.
        requests (`list[tuple[str, str]]`): `(method, path)` of every request received, in order (the URL path
            without the query string, still percent-encoded).

    Example:

    ```python
    >>> import os, subprocess, sys
    >>> push = "from huggingface_hub import HfApi; HfApi().upload_file(path_or_fileobj=b'{}', path_in_repo='config.json', repo_id=HfApi().create_repo('my-model').repo_id)"
    >>> with LocalHubServer() as hub:
    ...     env = {**os.environ, **hub.env()}  # run the pushing code in a subprocess with this environment
    ...     _ = subprocess.run([sys.executable, "-c", push], env=env, check=True)
    ...     sorted(hub.repo_files("local-user/my-model"))
    ['.gitattributes', 'config.json']
    ```
    """

    def __init__(self, token: str = "hf_local_test_token", *, username: str = "local-user"):
        if not token:
            raise ValueError("`token` must be a non-empty string.")
        self.token = token
        self.username = username
        self.endpoint = ""
        self.requests: list[tuple[str, str]] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lfs_objects: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._signing_key = secrets.token_bytes(32)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalHubServer:
        """Bind a free port on 127.0.0.1 and serve in a background thread. Returns `self`."""
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        host, port = self._httpd.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="LocalHubServer", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port (the repos' content stays readable through [`repo_files`])."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LocalHubServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ public helpers
    def env(self) -> dict[str, str]:
        """
        The environment variables that point `huggingface_hub` (and everything built on it) at this server.

        Returns:
            `dict[str, str]`: `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE=0`, `HF_HUB_DISABLE_TELEMETRY=1`,
            `HF_HUB_DISABLE_XET=1` (when this `huggingface_hub` knows it), `HF_HUB_ETAG_TIMEOUT` and
            `HF_HUB_DISABLE_PROGRESS_BARS=1`.
        """
        if not self.endpoint:
            raise RuntimeError("The server is not started: call `start()` or use it as a context manager first.")
        env = {
            "HF_ENDPOINT": self.endpoint,
            "HF_TOKEN": self.token,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_ETAG_TIMEOUT": "30",
        }
        if hasattr(hf_constants, "HF_HUB_DISABLE_XET"):
            env["HF_HUB_DISABLE_XET"] = "1"
        return env

    def repo_files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """
        The files at the head of `main` of a repo.

        Args:
            repo_id (`str`): `"namespace/name"` (or `"name"` for a repo of the server's user).
            repo_type (`str`, *optional*, defaults to `"model"`): `"model"`, `"dataset"` or `"space"`.

        Returns:
            `dict[str, bytes]`: path in the repo -> content (LFS files resolved to their content). A new repo already
            holds `.gitattributes`, as on the Hub.
        """
        repo_id = repo_id if "/" in repo_id else f"{self.username}/{repo_id}"
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            if repo is None:
                known = sorted(f"{t}:{i}" for t, i in self._repos)
                raise KeyError(f"No {repo_type} repo {repo_id!r} on this LocalHubServer; repos: {known}.")
            return {path: blob.content for path, blob in repo.commits[repo.branches["main"]].files.items()}

    # ------------------------------------------------------------------ internals used by the handler
    def _sign(self, oid: str, size: int) -> str:
        return hmac.new(self._signing_key, f"{oid}:{size}".encode(), hashlib.sha256).hexdigest()

    def _new_commit(self, repo: _Repo, parent: str | None, files: dict[str, _Blob], title: str, message: str) -> str:
        digest = hashlib.sha1()
        digest.update(f"{parent}\n{title}\n{message}\n{_now()}\n{len(repo.commits)}\n".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{files[path].git_oid}\n".encode())
        oid = digest.hexdigest()
        repo.commits[oid] = _Commit(oid, parent, title, message, _now(), dict(files))
        return oid


class _Server(ThreadingHTTPServer):
    # Bound to 127.0.0.1 only (see `start`): the server accepts a fixed test token and must not be reachable from
    # other machines.
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHubServer
    protocol_version = "HTTP/1.1"
    server_version = "LocalHubServer/1.0"

    def log_message(self, format, *args):  # noqa: A002 - the base class' signature
        pass  # keep test output clean; `hub.requests` records the traffic

    # ------------------------------------------------------------------ plumbing
    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        with self.hub._lock:
            self.hub.requests.append((method, url.path))
        self._query = parse_qs(url.query, keep_blank_values=True)
        try:
            self._body = self._read_body()
            self._route(method, url.path)
        except _HubError as err:
            self._send_error(err)
        except Exception as err:  # a server bug must surface as a 500 with its message, not a hung client
            self._send_error(_HubError(500, f"LocalHubServer internal error: {type(err).__name__}: {err}"))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", headers=None, length=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers=None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _send_error(self, err: _HubError) -> None:
        headers = {"X-Error-Message": err.message.replace("\n", " ")[:500], **err.headers}
        if err.error_code:
            headers["X-Error-Code"] = err.error_code
        self._json({"error": err.message, **err.body}, status=err.status, headers=headers)

    def _json_body(self) -> dict:
        try:
            return json.loads(self._body or b"{}")
        except json.JSONDecodeError as e:
            raise _HubError(400, f"Request body is not valid JSON: {e}") from e

    # ------------------------------------------------------------------ auth
    def _token(self) -> str | None:
        auth = self.headers.get("Authorization")
        if auth is None:
            return None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token != self.hub.token:
            raise _HubError(401, "Invalid credentials in Authorization header")
        return token

    def _require_write(self) -> None:
        if self._token() is None:
            raise _HubError(401, "You must be authenticated to write: send `Authorization: Bearer <token>`.")

    # ------------------------------------------------------------------ routing
    def _route(self, method: str, raw_path: str) -> None:
        parts = raw_path.strip("/").split("/")
        if raw_path == "/api/whoami-v2" and method == "GET":
            return self._whoami()
        if raw_path == "/api/repos/create" and method == "POST":
            return self._create_repo()
        if raw_path == "/api/repos/delete" and method == "DELETE":
            return self._delete_repo()
        if raw_path == "/api/validate-yaml" and method == "POST":
            return self._validate_yaml()
        if raw_path.startswith("/lfs-upload/") and method == "PUT":
            return self._lfs_put(parts[-1])
        if raw_path.startswith("/lfs-verify/") and method == "POST":
            return self._lfs_verify()
        if parts[0] == "api" and len(parts) >= 3 and parts[1] in _API_TYPES:
            return self._api_repo_route(method, _API_TYPES[parts[1]], parts[2:])
        repo_type = "model"
        if parts[0] in ("datasets", "spaces"):
            repo_type = _API_TYPES[parts[0]]
            parts = parts[1:]
        if "resolve" in parts[1:3] and method in ("GET", "HEAD"):
            i = parts.index("resolve", 1)
            repo_id = "/".join(parts[:i])
            revision, path = unquote(parts[i + 1]), unquote("/".join(parts[i + 2 :]))
            return self._resolve(repo_type, repo_id, revision, path)
        if len(parts) >= 1 and parts[-1] == "batch" and ".git" in raw_path and method == "POST":
            joined = "/".join(parts)
            repo_id = joined.split(".git/")[0]
            return self._lfs_batch(repo_type, repo_id)
        raise _HubError(404, f"LocalHubServer does not serve {method} {raw_path}")

    def _api_repo_route(self, method: str, repo_type: str, parts: list[str]) -> None:
        # /api/{type}s/{ns}/{name}[/<action>/...]; repo ids without a namespace are one segment.
        actions = {
            "revision", "tree", "paths-info", "preupload", "commit", "refs", "commits", "branch",
            "xet-write-token", "xet-read-token",
        }  # fmt: skip
        split = 2 if len(parts) >= 2 and parts[1] not in actions else 1
        if len(parts) >= 3 and parts[2] in actions:
            split = 2
        repo_id = "/".join(parts[:split])
        rest = parts[split:]
        action = rest[0] if rest else None
        if action is None and method == "GET":
            return self._repo_info(repo_type, repo_id, "main")
        if action == "revision" and method == "GET":
            return self._repo_info(repo_type, repo_id, unquote("/".join(rest[1:])))
        if action == "tree" and method == "GET":
            return self._tree(repo_type, repo_id, unquote(rest[1]), unquote("/".join(rest[2:])))
        if action == "paths-info" and method == "POST":
            return self._paths_info(repo_type, repo_id, unquote("/".join(rest[1:])))
        if action == "preupload" and method == "POST":
            return self._preupload(repo_type, repo_id, unquote("/".join(rest[1:])))
        if action == "commit" and method == "POST":
            return self._commit(repo_type, repo_id, unquote("/".join(rest[1:])))
        if action == "refs" and method == "GET":
            return self._refs(repo_type, repo_id)
        if action == "commits" and method == "GET":
            return self._list_commits(repo_type, repo_id, unquote("/".join(rest[1:])))
        if action == "branch" and method == "POST":
            return self._create_branch(repo_type, repo_id, unquote("/".join(rest[1:])))
        if action in ("xet-write-token", "xet-read-token"):
            raise _HubError(
                501,
                "LocalHubServer does not serve Xet storage: set HF_HUB_DISABLE_XET=1 (LocalHubServer.env() does) so "
                "huggingface_hub uses the LFS protocol.",
            )
        raise _HubError(404, f"LocalHubServer does not serve {method} /api/{repo_type}s/{'/'.join(parts)}")

    # ------------------------------------------------------------------ repo lookups
    def _repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> _Repo:
        token = self._token()
        repo = self.hub._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and token is None):
            raise _HubError(404 if token else 401, f"Repository {repo_id} not found", "RepoNotFound")
        if write and token is None:
            raise _HubError(401, "You must be authenticated to write: send `Authorization: Bearer <token>`.")
        return repo

    def _commit_at(self, repo: _Repo, revision: str) -> _Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ------------------------------------------------------------------ account and repos
    def _whoami(self) -> None:
        if self._token() is None:
            raise _HubError(401, "Invalid credentials in Authorization header")
        self._json(
            {
                "type": "user",
                "id": hashlib.sha1(self.hub.username.encode()).hexdigest()[:24],
                "name": self.hub.username,
                "fullname": self.hub.username,
                "email": f"{self.hub.username}@localhost",
                "emailVerified": True,
                "isPro": False,
                "canPay": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
            }
        )

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.hub.endpoint}/{_URL_PREFIXES[repo_type]}{repo_id}"

    def _create_repo(self) -> None:
        self._require_write()
        body = self._json_body()
        repo_type = body.get("type") or "model"
        if repo_type not in _URL_PREFIXES:
            raise _HubError(400, f"Invalid repo type {repo_type!r}: expected one of {sorted(_URL_PREFIXES)}.")
        name = body.get("name") or ""
        if not _REPO_NAME_RE.match(name) or name.endswith((".git", ".")) or "--" in name or ".." in name:
            raise _HubError(400, f"Invalid repo name {name!r}.")
        repo_id = f"{body.get('organization') or self.hub.username}/{name}"
        private = body.get("visibility") == "private" or bool(body.get("private"))
        with self.hub._lock:
            if (repo_type, repo_id) in self.hub._repos:
                url = self._repo_url(repo_type, repo_id)
                # The Hub's 409 carries the existing repo's URL, which `create_repo(exist_ok=True)` returns.
                raise _HubError(409, f"You already created this {repo_type} repo", body={"url": url})
            repo = _Repo(repo_type, repo_id, private, _now())
            files = {".gitattributes": _Blob(_default_gitattributes(repo_type), lfs=False)}
            repo.branches["main"] = self.hub._new_commit(repo, None, files, "initial commit", "")
            self.hub._repos[(repo_type, repo_id)] = repo
        self._json({"url": self._repo_url(repo_type, repo_id), "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        self._require_write()
        body = self._json_body()
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or self.hub.username}/{body.get('name')}"
        with self.hub._lock:
            if self.hub._repos.pop((repo_type, repo_id), None) is None:
                raise _HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        self._json({})

    def _create_branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id, write=True)
            if branch in repo.branches:
                raise _HubError(409, f"Reference refs/heads/{branch} already exists")
            start = self._json_body().get("startingPoint") or "main"
            repo.branches[branch] = self._commit_at(repo, start).oid
        self._json({})

    # ------------------------------------------------------------------ metadata validation
    def _validate_yaml(self) -> None:
        body = self._json_body()
        # The same rules as the offline check of trl_ext's model cards, so a card that validates there pushes here.
        from .model_card import metadata_errors

        errors = metadata_errors(body.get("content", ""), body.get("repoType") or "model")
        if errors:
            self._json({"errors": [{"message": e} for e in errors], "warnings": []}, status=400)
        else:
            self._json({"errors": [], "warnings": []})

    # ------------------------------------------------------------------ reads
    def _file_entry(self, path: str, blob: _Blob) -> dict:
        entry = {"type": "file", "oid": blob.git_oid, "size": len(blob.content), "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": len(blob.content), "pointerSize": len(blob.pointer)}
        return entry

    def _folder_entry(self, path: str, files: dict[str, _Blob]) -> dict:
        inner = sorted((p, b.git_oid) for p, b in files.items() if p.startswith(path + "/"))
        oid = hashlib.sha1(repr(inner).encode()).hexdigest()
        return {"type": "directory", "oid": oid, "size": 0, "path": path}

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            commit = self._commit_at(repo, revision)
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling = {"rfilename": path, "size": len(blob.content), "blobId": blob.git_oid}
            if blob.lfs:
                sibling["lfs"] = {"size": len(blob.content), "sha256": blob.sha256, "pointerSize": len(blob.pointer)}
            siblings.append(sibling)
        card_data = _front_matter(commit.files["README.md"].content) if "README.md" in commit.files else None
        info = {
            "_id": hashlib.sha1(f"{repo_type}:{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list((card_data or {}).get("tags") or []),
            "siblings": siblings,
        }
        if card_data:
            info["cardData"] = card_data
            for key in ("library_name", "pipeline_tag"):
                if key in card_data and repo_type == "model":
                    info[key] = card_data[key]
        if repo_type == "space":
            info["sdk"] = (card_data or {}).get("sdk")
        self._json(info)

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        with self.hub._lock:
            commit = self._commit_at(self._repo(repo_type, repo_id), revision)
        path = path.strip("/")
        recursive = self._query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{path}/" if path else ""
        if path and path in commit.files:
            raise _HubError(400, f"{path} is a file, not a folder")
        below = {p: b for p, b in commit.files.items() if p.startswith(prefix)}
        if path and not below:
            raise _HubError(
                404, f"{path} does not exist on {revision}", "EntryNotFound", {"X-Repo-Commit": commit.oid}
            )
        entries, folders = [], set()
        for file_path, blob in sorted(below.items()):
            relative = file_path[len(prefix) :].split("/")
            for depth in range(1, len(relative)):
                folder = prefix + "/".join(relative[:depth])
                if folder not in folders and (recursive or depth == 1):
                    folders.add(folder)
                    entries.append(self._folder_entry(folder, commit.files))
            if recursive or len(relative) == 1:
                entries.append(self._file_entry(file_path, blob))
        self._json(entries)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        with self.hub._lock:
            commit = self._commit_at(self._repo(repo_type, repo_id), revision)
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            paths = self._json_body().get("paths", [])
        else:
            paths = parse_qs(self._body.decode(), keep_blank_values=True).get("paths", [])
        entries = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                entries.append(self._file_entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                entries.append(self._folder_entry(path, commit.files))
        self._json(entries)

    def _refs(self, repo_type: str, repo_id: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid} for name, oid in repo.branches.items()
            ]
        self._json({"branches": branches, "converts": [], "tags": []})

    def _list_commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            commit: _Commit | None = self._commit_at(repo, revision)
            history = []
            while commit is not None:
                history.append(
                    {
                        "id": commit.oid,
                        "title": commit.title,
                        "message": commit.message,
                        "authors": [{"user": self.hub.username}],
                        "date": commit.date,
                    }
                )
                commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(history)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        with self.hub._lock:
            commit = self._commit_at(self._repo(repo_type, repo_id), revision)
        blob = commit.files.get(path)
        if blob is None:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        content = blob.content
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{blob.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
        }
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(len(content))
        status = 200
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if match is None:
                raise _HubError(416, f"Unsupported Range header {range_header!r}")
            start_s, end_s = match.groups()
            if start_s == "":
                start, end = max(len(content) - int(end_s), 0), len(content) - 1
            else:
                start, end = int(start_s), min(int(end_s) if end_s else len(content) - 1, len(content) - 1)
            if start >= len(content) and len(content) > 0:
                raise _HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{len(content)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content = content[start : end + 1]
            status = 206
        self._send(status, content, content_type="application/octet-stream", headers=headers)

    # ------------------------------------------------------------------ writes
    def _upload_mode(self, repo_type: str, files: dict[str, _Blob], path: str, size: int, sample: bytes) -> str:
        if size >= _LFS_SIZE_THRESHOLD or b"\0" in sample:
            return "lfs"
        gitattributes = files.get(".gitattributes")
        text = gitattributes.content.decode(errors="replace") if gitattributes else ""
        return "lfs" if _lfs_tracked(text, path) else "regular"

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id, write=True)
            commit = self._commit_at(repo, revision)
        body = self._json_body()
        gitignore = body.get("gitIgnore")
        if gitignore is None and ".gitignore" in commit.files:
            gitignore = commit.files[".gitignore"].content.decode(errors="replace")
        results = []
        for entry in body.get("files", []):
            path = entry["path"]
            sample = base64.b64decode(entry.get("sample", ""))
            mode = self._upload_mode(repo_type, commit.files, path, int(entry.get("size", 0)), sample)
            existing = commit.files.get(path)
            oid = None
            if existing is not None:
                oid = existing.sha256 if mode == "lfs" else _git_blob_sha1(existing.content)
            results.append(
                {"path": path, "uploadMode": mode, "shouldIgnore": _gitignored(gitignore, path), "oid": oid}
            )
        self._json({"files": results, "commitOid": commit.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        with self.hub._lock:
            self._repo(repo_type, repo_id, write=True)
        body = self._json_body()
        if body.get("operation") != "upload":
            raise _HubError(400, "LocalHubServer's LFS batch endpoint only serves uploads.")
        if "basic" not in (body.get("transfers") or ["basic"]):
            raise _HubError(400, "LocalHubServer only offers the `basic` LFS transfer.")
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int) or size < 0:
                objects.append(
                    {"oid": oid, "size": size if isinstance(size, int) else 0,
                     "error": {"code": 422, "message": "oid must be a sha256 hex digest and size an integer"}}
                )  # fmt: skip
                continue
            with self.hub._lock:
                stored = self.hub._lfs_objects.get(oid)
            item = {"oid": oid, "size": size, "authenticated": True}
            if stored is None or len(stored) != size:
                signature = self.hub._sign(oid, size)
                item["actions"] = {
                    "upload": {"href": f"{self.hub.endpoint}/lfs-upload/{oid}?size={size}&sig={signature}"},
                    "verify": {"href": f"{self.hub.endpoint}/lfs-verify/{oid}"},
                }
            objects.append(item)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_put(self, oid: str) -> None:
        # Like a pre-signed S3 URL: the signature in the query authorises the upload, no token is sent.
        size = int(self._query.get("size", ["-1"])[0])
        signature = self._query.get("sig", [""])[0]
        if not hmac.compare_digest(signature, self.hub._sign(oid, size)):
            raise _HubError(403, "Invalid or missing upload signature.")
        if len(self._body) != size or hashlib.sha256(self._body).hexdigest() != oid:
            raise _HubError(400, f"Uploaded content does not match oid {oid} and size {size}.")
        with self.hub._lock:
            self.hub._lfs_objects[oid] = self._body
        self._send(200, b"", headers={"ETag": f'"{hashlib.md5(self._body).hexdigest()}"'})

    def _lfs_verify(self) -> None:
        self._require_write()
        body = self._json_body()
        with self.hub._lock:
            stored = self.hub._lfs_objects.get(body.get("oid", ""))
        if stored is None or len(stored) != body.get("size"):
            raise _HubError(404, f"LFS object {body.get('oid')} of size {body.get('size')} was not uploaded.")
        self._json({"success": True})

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        if self._query.get("create_pr", ["0"])[0] in ("1", "true"):
            raise _HubError(501, "LocalHubServer does not support pull requests (create_pr=True).")
        lines = [json.loads(line) for line in self._body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _HubError(400, "The commit payload must start with a `header` line.")
        header = lines[0]["value"]
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id, write=True)
            branch = revision.removeprefix("refs/heads/")
            if branch not in repo.branches:
                raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.branches[branch]
            parent = header.get("parentCommit")
            if parent and parent != head:
                raise _HubError(412, f"Parent commit {parent} is not the head of {branch} ({head}).")
            files = dict(repo.commits[head].files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise _HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}.")
                    files[path] = _Blob(base64.b64decode(value.get("content", "")), lfs=False)
                elif key == "lfsFile":
                    content = self.hub._lfs_objects.get(value.get("oid", ""))
                    if content is None:
                        raise _HubError(422, f"LFS object {value.get('oid')} for {path} was never uploaded.")
                    files[path] = _Blob(content, lfs=True)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise _HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    folder = path.rstrip("/") + "/"
                    doomed = [p for p in files if p.startswith(folder)]
                    if not doomed:
                        raise _HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    raise _HubError(400, f"Unknown commit operation {key!r}.")
            title = header.get("summary") or "Update"
            oid = self.hub._new_commit(repo, head, files, title, header.get("description") or "")
            repo.branches[branch] = oid
        commit_url = f"{self._repo_url(repo_type, repo_id)}/commit/{oid}"
        self._json({"success": True, "commitOid": oid, "commitUrl": commit_url, "hookOutput": ""})


def _pattern_matches(pattern: str, path: str) -> bool:
    pattern = pattern.strip()
    if not pattern:
        return False
    if pattern.endswith("/"):
        return path.startswith(pattern.lstrip("/")) or f"/{pattern}" in f"/{path}"
    if "/" in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(path, pattern.lstrip("/").replace("**/", "*"))
    return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def _lfs_tracked(gitattributes: str, path: str) -> bool:
    tracked = False
    for line in gitattributes.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if _pattern_matches(fields[0], path):
            if "filter=lfs" in fields[1:]:
                tracked = True
            elif "-filter" in fields[1:] or "!filter" in fields[1:]:
                tracked = False
    return tracked


def _gitignored(gitignore: str | None, path: str) -> bool:
    if not gitignore:
        return False
    ignored = False
    for line in gitignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if _pattern_matches(line.lstrip("!"), path):
            ignored = not negate
    return ignored


def _front_matter(readme: bytes) -> dict | None:
    text = readme.decode(errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.DOTALL)
    if match is None:
        return None
    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else None
