"""A small Hugging Face Hub-protocol server for tests, listening on 127.0.0.1 only.

It speaks the subset of the Hub HTTP API that huggingface_hub (``create_repo``, ``upload_folder``,
``create_commit``, ``create_branch``, ``repo_info``, ``list_repo_tree``, ``get_paths_info``,
``hf_hub_download``, ``snapshot_download``, ``HfFileSystem``), diffusers and datasets
(``Dataset.push_to_hub``, ``load_dataset(repo_id)``) call when ``HF_HUB_DISABLE_XET=1``:

* ``POST /api/repos/create`` and ``/api/repos/delete``; ``GET /api/whoami-v2``; ``POST /api/validate-yaml``
* ``GET /api/{models,datasets}/NS/NAME[/revision/REV]`` (repo info with siblings)
* ``POST .../preupload/REV`` (regular vs LFS upload mode, remote oids)
* ``POST /[datasets/]NS/NAME.git/info/lfs/objects/batch`` (LFS batch API, "basic" transfer), ``PUT`` of
  the object to the returned href and ``POST`` verify
* ``POST .../commit/REV`` (ndjson: header, file, lfsFile, deletedFile, deletedFolder; parentCommit)
* ``POST/DELETE .../branch/BRANCH``, ``GET .../refs``
* ``GET .../tree/REV[/PATH]`` (recursive, expand, cursor pagination with a Link header),
  ``POST .../paths-info/REV``
* ``HEAD/GET /[datasets/]NS/NAME/resolve/REV/PATH`` (ETag, X-Repo-Commit, X-Linked-*, Range)

Everything is kept in memory. Tokens map to user names (``Authorization: Bearer TOKEN``): writes need
the owner's token (401 without a token, 403 with another user's); private repos are invisible (404)
to others. ``fail(...)`` injects faults (a closed connection or an HTTP status) for chosen requests.

The server also acts as an HTTP proxy sink: tests point ``HTTP_PROXY``/``HTTPS_PROXY`` at it, so a
request a client makes to any other host (the datasets-server API that ``datasets`` probes, say)
lands here, is logged in ``strays`` and answered 404 (CONNECT tunnels are refused). Nothing leaves
the loopback interface.

Run it by hand with ``python tests/hub/hub_server.py --port 8765 --token hf_me=me``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

LFS_EXTENSIONS = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".parquet", ".arrow", ".npz", ".npy", ".h5", ".onnx",
    ".msgpack", ".pkl", ".pickle", ".zip", ".gz", ".tar", ".png", ".jpg", ".jpeg", ".webp", ".tiff",
)
LFS_SIZE = 10 * 1024 * 1024  # files above this size are LFS whatever their name
MAX_BODY = 512 * 1024 * 1024  # refuse bodies larger than this
REQUEST_TIMEOUT = 30.0  # seconds a connection may stay idle mid-request


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class FileEntry:
    path: str
    size: int
    sha256: str
    lfs: bool

    @property
    def pointer(self) -> bytes:
        return lfs_pointer(self.sha256, self.size)

    def oid(self, data: bytes | None = None) -> str:
        """The git blob id (of the pointer file for LFS files), as the Hub reports it."""
        return git_blob_oid(self.pointer) if self.lfs else git_blob_oid(data or b"")


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    files: dict[str, FileEntry]
    date: str


@dataclass
class Repo:
    repo_type: str  # "model" | "dataset" | "space"
    repo_id: str
    owner: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    action: str | int  # "close" (drop the connection) or an HTTP status code
    times: int
    after: int = 0  # let this many matching requests through first
    seen: int = 0
    hits: int = 0


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubState:
    """Repos, blobs and users of the fake Hub; all methods are called under ``lock``."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = dict(tokens)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content (regular and LFS files)
        self.lfs_uploaded: set[str] = set()
        self.lock = threading.RLock()

    # ---- repos -----------------------------------------------------------------------------
    def create_repo(self, repo_type: str, repo_id: str, owner: str, private: bool = False) -> Repo:
        key = (repo_type, repo_id)
        if key in self.repos:
            raise HubError(409, "You already created this repo", "RepoExists")
        repo = Repo(repo_type, repo_id, owner, private)
        now = _now()
        gitattributes = b"".join(f"*{ext} filter=lfs diff=lfs merge=lfs -text\n".encode() for ext in LFS_EXTENSIONS)
        sha = self._store(gitattributes)
        files = {".gitattributes": FileEntry(".gitattributes", len(gitattributes), sha, False)}
        commit = Commit(_commit_oid(None, "initial commit", files, now), None, "initial commit", "", files, now)
        repo.commits[commit.oid] = commit
        repo.branches["main"] = commit.oid
        self.repos[key] = repo
        return repo

    def get_repo(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and repo.owner != user):
            raise HubError(404 if user else 401, "Repository not found", "RepoNotFound")
        return repo

    def writable_repo(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        if user is None:
            raise HubError(401, "Invalid username or password.")
        repo = self.get_repo(repo_type, repo_id, user)
        if repo.owner != user:
            raise HubError(403, f"You don't have the rights to write to {repo_type}s/{repo_id}: it belongs to {repo.owner}")
        return repo

    def resolve(self, repo: Repo, revision: str) -> Commit:
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        if revision in repo.tags:
            return repo.commits[repo.tags[revision]]
        if revision.startswith("refs/heads/") and revision[11:] in repo.branches:
            return repo.commits[repo.branches[revision[11:]]]
        if re.fullmatch(r"[0-9a-f]{40}", revision) and revision in repo.commits:
            return repo.commits[revision]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return sha

    # ---- commits ---------------------------------------------------------------------------
    def commit(self, repo: Repo, revision: str, lines: list[dict]) -> Commit:
        if revision not in repo.branches:
            if revision in repo.tags or revision in repo.commits:
                raise HubError(400, f"Cannot commit to {revision}: not a branch")
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        head = repo.commits[repo.branches[revision]]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        parent = header.get("parentCommit")
        if parent and parent != head.oid:
            raise HubError(412, f"A commit has happened since {parent}. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "")
            if not path or path.startswith("/") or ".." in path.split("/"):
                raise HubError(400, f"Invalid path {path!r}")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, "Only base64 file content is supported")
                data = base64.b64decode(value["content"])
                files[path] = FileEntry(path, len(data), self._store(data), False)
            elif key == "lfsFile":
                oid = value["oid"]
                if oid not in self.lfs_uploaded:
                    raise HubError(422, f"LFS file {path} ({oid}) was never uploaded")
                files[path] = FileEntry(path, len(self.blobs[oid]), oid, True)
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                files = {p: f for p, f in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        now = _now()
        title = header.get("summary") or "commit"
        commit = Commit(_commit_oid(head.oid, title, files, now), head.oid, title, header.get("description", ""), files, now)
        repo.commits[commit.oid] = commit
        repo.branches[revision] = commit.oid
        return commit


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _commit_oid(parent: str | None, title: str, files: dict[str, FileEntry], date: str) -> str:
    h = hashlib.sha1(f"{parent}\n{title}\n{date}\n{time.monotonic_ns()}\n".encode())
    for path in sorted(files):
        h.update(f"{path} {files[path].sha256}\n".encode())
    return h.hexdigest()


class HubServer:
    """Start with ``with HubServer(tokens={"hf_me": "me"}) as hub:``; ``hub.url`` is the endpoint."""

    def __init__(self, tokens: dict[str, str] | None = None, port: int = 0, page_size: int = 1000) -> None:
        self.state = HubState(tokens or {})
        self.page_size = page_size
        self.log: list[tuple[str, str, int]] = []
        self.strays: list[str] = []
        self._faults: list[Fault] = []
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> "HubServer":
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- test helpers ----------------------------------------------------------------------
    def fail(self, method: str, path_regex: str, action: str | int = "close", times: int = 1, after: int = 0) -> Fault:
        """Make ``times`` requests matching ``method`` and ``path_regex`` fail, after letting ``after`` through.

        ``action`` is ``"close"`` (the connection is dropped without an answer) or an HTTP status.
        """
        fault = Fault(method.upper(), re.compile(path_regex), action, times, after)
        with self.state.lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.state.lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.state.lock:
            for fault in self._faults:
                if fault.hits < fault.times and fault.method in (method, "*") and fault.pattern.search(path):
                    fault.seen += 1
                    if fault.seen > fault.after:
                        fault.hits += 1
                        return fault
        return None

    def add_repo(self, repo_id: str, owner: str, repo_type: str = "model", private: bool = False,
                 files: dict[str, bytes] | None = None) -> Repo:
        """Create a repo directly (e.g. one owned by somebody else), optionally with files."""
        with self.state.lock:
            repo = self.state.create_repo(repo_type, repo_id, owner, private)
            if files:
                lines: list[dict] = [{"key": "header", "value": {"summary": "add files"}}]
                for path, data in files.items():
                    lines.append({"key": "file", "value": {"path": path, "encoding": "base64",
                                                           "content": base64.b64encode(data).decode()}})
                self.state.commit(repo, "main", lines)
            return repo

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Content of every file of a repo at a revision."""
        with self.state.lock:
            repo = self.state.repos[(repo_type, repo_id)]
            commit = self.state.resolve(repo, revision)
            return {p: self.state.blobs[f.sha256] for p, f in commit.files.items()}

    def commits(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        with self.state.lock:
            return list(self.state.repos[(repo_type, repo_id)].commits.values())


class _ConnectionDropped(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT  # socket timeout: a stalled client cannot hold a thread forever
    server_version = "synthxray-test-hub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    # ---- plumbing --------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_CONNECT(self) -> None:
        self.hub.strays.append(f"CONNECT {self.path} (User-Agent: {self.headers.get('User-Agent', '')})")
        self._send(403, b"tunnels to other hosts are refused by the test hub", "text/plain")
        self.close_connection = True
        self.hub.log.append(("CONNECT", self.path, 403))

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise _ConnectionDropped()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise HubError(413, "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HubError(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)
        self._status = status

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers, head=head)

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
            user = self.hub.state.tokens.get(token)
            if user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            return user
        return None

    def _dispatch(self, method: str) -> None:
        self._status = 0
        raw_path = self.path
        parsed = urllib.parse.urlsplit(raw_path)
        if parsed.scheme and parsed.netloc and parsed.netloc != f"127.0.0.1:{self.hub.port}":
            # a proxied request for another host: log it and refuse it, never forward it
            self.hub.strays.append(f"{method} {raw_path}")
            try:
                self._body()
            except Exception:
                pass
            self._json(404, {"error": "the test hub does not reach other hosts"})
            self.hub.log.append((method, raw_path, 404))
            return
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        try:
            fault = self.hub._take_fault(method, path)
            body = self._body() if method in ("POST", "PUT", "DELETE") else b""
            if fault is not None:
                if fault.action == "close":
                    raise _ConnectionDropped()
                self._json(int(fault.action), {"error": f"injected failure {fault.action}"})
            else:
                with self.hub.state.lock:
                    self._route(method, path, query, body)
        except _ConnectionDropped:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._status = -1
        except HubError as exc:
            headers = {"X-Error-Message": exc.message}
            if exc.code:
                headers["X-Error-Code"] = exc.code
            self._json(exc.status, {"error": exc.message}, headers=headers, head=method == "HEAD")
        except (ConnectionError, socket.timeout):
            self.close_connection = True
            self._status = -1
        except Exception as exc:  # a bug in the fake hub: answer 500 with the reason
            self._json(500, {"error": f"test hub error: {type(exc).__name__}: {exc}"})
        self.hub.log.append((method, path, self._status))

    # ---- routing ---------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        state = self.hub.state
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        user = self._user()
        # ---- /api/... -------------------------------------------------------------------------
        if parts[:1] == ["api"]:
            rest = parts[1:]
            if rest == ["whoami-v2"] and method == "GET":
                if user is None:
                    raise HubError(401, "Invalid user token.")
                return self._json(200, {"type": "user", "name": user, "fullname": user, "orgs": [],
                                        "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})
            if rest == ["validate-yaml"] and method == "POST":
                return self._validate_yaml(body)
            if rest[:2] == ["repos", "create"] and method == "POST":
                return self._create_repo(user, json.loads(body or b"{}"))
            if rest[:2] == ["repos", "delete"] and method == "DELETE":
                payload = json.loads(body or b"{}")
                repo_id = f"{payload.get('organization') or user}/{payload['name']}"
                repo = state.writable_repo(payload.get("type") or "model", repo_id, user)
                del state.repos[(repo.repo_type, repo.repo_id)]
                return self._json(200, {})
            if len(rest) >= 3 and rest[0] in ("models", "datasets", "spaces"):
                repo_type = rest[0][:-1]
                repo_id = f"{rest[1]}/{rest[2]}"
                return self._repo_api(method, repo_type, repo_id, rest[3:], query, body, user)
            raise HubError(404, f"no such API route {path}")
        # ---- LFS batch / upload / verify ---------------------------------------------------------
        if parts[:1] == ["lfs-objects"]:
            return self._lfs_object(method, parts[1:], body)
        repo_type = "model"
        if parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0][:-1], parts[1:]
        if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}", json.loads(body or b"{}"), user)
        # ---- downloads: /NS/NAME/resolve/REV/PATH ----------------------------------------------
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(method, repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), user)
        raise HubError(404, f"no such route {path}")

    def _validate_yaml(self, body: bytes) -> None:
        import yaml

        content = json.loads(body or b"{}").get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, flags=re.S)
        if match:
            try:
                meta = yaml.safe_load(match.group(1))
            except yaml.YAMLError as exc:
                return self._json(400, {"errors": [{"message": f"YAML error: {exc}"}]})
            if meta is not None and not isinstance(meta, dict):
                return self._json(400, {"errors": [{"message": "metadata must be a YAML mapping"}]})
        return self._json(200, {"warnings": []})

    def _create_repo(self, user: str | None, payload: dict) -> None:
        if user is None:
            raise HubError(401, "You must be logged in to create a repo")
        owner = payload.get("organization") or user
        name = payload.get("name") or ""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name) or "--" in name or ".." in name:
            raise HubError(400, f"Invalid repo name {name!r}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{owner}/{name}"
        if owner != user:
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace \"{owner}\"")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.url}/{prefix}{repo_id}"
        if (repo_type, repo_id) in self.hub.state.repos:  # the Hub names the existing repo in its 409
            return self._json(409, {"error": f"You already created this {repo_type} repo", "url": url},
                              headers={"X-Error-Message": f"You already created this {repo_type} repo"})
        self.hub.state.create_repo(repo_type, repo_id, owner, private)
        return self._json(200, {"url": url, "name": repo_id})

    def _repo_api(self, method: str, repo_type: str, repo_id: str, rest: list[str], query: dict,
                  body: bytes, user: str | None) -> None:
        state = self.hub.state
        if method == "GET" and (not rest or rest[0] == "revision"):
            repo = state.get_repo(repo_type, repo_id, user)
            revision = "/".join(rest[1:]) if rest else "main"
            commit = state.resolve(repo, revision)
            return self._json(200, self._repo_info(repo, commit))
        if not rest:
            raise HubError(404, "no such route")
        op = rest[0]
        if op == "preupload" and method == "POST":
            repo = state.writable_repo(repo_type, repo_id, user)
            commit = state.resolve(repo, "/".join(rest[1:]))
            files = []
            for f in json.loads(body or b"{}").get("files", []):
                sample = base64.b64decode(f.get("sample", ""))
                lfs = (f["path"].lower().endswith(LFS_EXTENSIONS) or int(f.get("size", 0)) > LFS_SIZE
                       or b"\0" in sample or not _is_utf8(sample))
                existing = commit.files.get(f["path"])
                oid = None
                if existing is not None:
                    oid = existing.sha256 if existing.lfs else git_blob_oid(state.blobs[existing.sha256])
                files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
            return self._json(200, {"files": files, "commitOid": commit.oid})
        if op == "commit" and method == "POST":
            repo = state.writable_repo(repo_type, repo_id, user)
            revision = "/".join(rest[1:])
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            commit = state.commit(repo, revision, lines)
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            return self._json(200, {"success": True, "commitOid": commit.oid,
                                    "commitUrl": f"{self.hub.url}/{prefix}{repo_id}/commit/{commit.oid}"})
        if op == "branch" and method in ("POST", "DELETE"):
            repo = state.writable_repo(repo_type, repo_id, user)
            branch = "/".join(rest[1:])
            if method == "DELETE":
                if branch not in repo.branches or branch == "main":
                    raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
                del repo.branches[branch]
                return self._json(200, {})
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            start = json.loads(body or b"{}").get("startingPoint") or "main"
            repo.branches[branch] = state.resolve(repo, start).oid
            return self._json(200, {})
        if op == "refs" and method == "GET":
            repo = state.get_repo(repo_type, repo_id, user)
            return self._json(200, {
                "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in repo.branches.items()],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in repo.tags.items()],
                "converts": [],
            })
        if op == "tree" and method == "GET":
            repo = state.get_repo(repo_type, repo_id, user)
            commit = state.resolve(repo, rest[1] if len(rest) > 1 else "main")
            return self._tree(repo, commit, "/".join(rest[2:]), query)
        if op == "paths-info" and method == "POST":
            repo = state.get_repo(repo_type, repo_id, user)
            commit = state.resolve(repo, "/".join(rest[1:]))
            form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = form.get("expand", ["False"])[0].lower() == "true"
            entries = []
            for p in paths:
                p = p.strip("/")
                if p in commit.files:
                    entries.append(self._file_entry(commit.files[p], commit, expand))
                elif any(f.startswith(p + "/") for f in commit.files) or p == "":
                    entries.append(self._folder_entry(p, commit, expand))
            return self._json(200, entries)
        if op == "commits" and method == "GET":
            repo = state.get_repo(repo_type, repo_id, user)
            commit = state.resolve(repo, rest[1] if len(rest) > 1 else "main")
            history = []
            while commit is not None:
                history.append({"id": commit.oid, "title": commit.title, "message": commit.description,
                                "date": commit.date, "authors": [{"user": repo.owner}]})
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return self._json(200, history)
        raise HubError(404, f"no such route {method} {op}")

    def _repo_info(self, repo: Repo, commit: Commit) -> dict:
        info = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.owner,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": commit.date,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }
        readme = commit.files.get("README.md")
        if readme is not None:
            import yaml

            text = self.hub.state.blobs[readme.sha256].decode("utf-8", "replace")
            match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, flags=re.S)
            if match:
                try:
                    meta = yaml.safe_load(match.group(1)) or {}
                except yaml.YAMLError:
                    meta = {}
                if isinstance(meta, dict):
                    info["cardData"] = meta
                    info["tags"] = [str(t) for t in meta.get("tags", []) or []]
                    if repo.repo_type == "model" and meta.get("library_name"):
                        info["library_name"] = meta["library_name"]
        return info

    def _last_commit(self, commit: Commit) -> dict:
        return {"id": commit.oid, "title": commit.title, "date": commit.date}

    def _file_entry(self, f: FileEntry, commit: Commit, expand: bool) -> dict:
        data = None if f.lfs else self.hub.state.blobs[f.sha256]
        entry: dict[str, Any] = {"type": "file", "oid": f.oid(data), "size": f.size, "path": f.path}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": len(f.pointer)}
        if expand:
            entry["lastCommit"] = self._last_commit(commit)
        return entry

    def _folder_entry(self, path: str, commit: Commit, expand: bool) -> dict:
        h = hashlib.sha1(path.encode())
        for p in sorted(commit.files):
            if p.startswith(path + "/"):
                h.update(f"{p} {commit.files[p].sha256}".encode())
        entry: dict[str, Any] = {"type": "directory", "oid": h.hexdigest(), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = self._last_commit(commit)
        return entry

    def _tree(self, repo: Repo, commit: Commit, folder: str, query: dict) -> None:
        folder = folder.strip("/")
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        expand = query.get("expand", ["False"])[0].lower() == "true"
        prefix = folder + "/" if folder else ""
        if folder and folder in commit.files:
            raise HubError(404, f"{folder} is a file, not a folder", "EntryNotFound")
        under = sorted(p for p in commit.files if p.startswith(prefix))
        if folder and not under:
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        entries: list[dict] = []
        seen_dirs: set[str] = set()
        for p in under:
            rel = p[len(prefix):]
            segments = rel.split("/")
            # the folders on the way to this file
            for depth in range(1, len(segments)):
                if not recursive and depth > 1:
                    break
                d = prefix + "/".join(segments[:depth])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    entries.append(self._folder_entry(d, commit, expand))
            if recursive or len(segments) == 1:
                entries.append(self._file_entry(commit.files[p], commit, expand))
        cursor = int(query.get("cursor", ["0"])[0] or 0)
        page_size = 50 if expand else self.hub.page_size
        page = entries[cursor: cursor + page_size]
        headers = {}
        if cursor + page_size < len(entries):
            params = {"recursive": str(recursive), "expand": str(expand), "cursor": str(cursor + page_size)}
            prefix_url = "" if repo.repo_type == "model" else ""
            next_url = (f"{self.hub.url}/api/{repo.repo_type}s/{repo.repo_id}/tree/{urllib.parse.quote(commit.oid)}"
                        f"{'/' + urllib.parse.quote(folder) if folder else ''}?{urllib.parse.urlencode(params)}{prefix_url}")
            headers["Link"] = f'<{next_url}>; rel="next"'
        return self._json(200, page, headers=headers)

    def _resolve(self, method: str, repo_type: str, repo_id: str, revision: str, path: str, user: str | None) -> None:
        state = self.hub.state
        repo = state.get_repo(repo_type, repo_id, user)
        commit = state.resolve(repo, revision)
        f = commit.files.get(path)
        if f is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = state.blobs[f.sha256]
        etag = f.sha256 if f.lfs else git_blob_oid(data)
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(f.size)
        status = 200
        rng = self.headers.get("Range")
        if rng:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not match:
                raise HubError(416, f"bad range {rng}")
            start_s, end_s = match.groups()
            if start_s == "":
                start, end = max(0, len(data) - int(end_s)), len(data) - 1
            else:
                start = int(start_s)
                end = min(int(end_s), len(data) - 1) if end_s else len(data) - 1
            if start >= len(data) and len(data) > 0:
                raise HubError(416, "range not satisfiable")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data = data[start: end + 1]
            status = 206
        self._send(status, data, "application/octet-stream", headers=headers, head=method == "HEAD")

    # ---- LFS ---------------------------------------------------------------------------------
    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict, user: str | None) -> None:
        state = self.hub.state
        state.writable_repo(repo_type, repo_id, user)
        if payload.get("operation") != "upload":
            raise HubError(400, "only the upload operation is supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in state.lfs_uploaded:
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-objects/{oid}/{size}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/lfs-objects/{oid}/{size}/verify", "header": {}},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_object(self, method: str, rest: list[str], body: bytes) -> None:
        state = self.hub.state
        if len(rest) == 2 and method == "PUT":
            oid, size = rest[0], int(rest[1])
            if len(body) != size or hashlib.sha256(body).hexdigest() != oid:
                raise HubError(400, f"uploaded object does not match oid {oid} / size {size} (got {len(body)} bytes)")
            state.blobs[oid] = body
            state.lfs_uploaded.add(oid)
            return self._send(200, b"", headers={"ETag": f'"{oid}"'})
        if len(rest) == 3 and rest[2] == "verify" and method == "POST":
            oid = rest[0]
            if oid not in state.lfs_uploaded:
                raise HubError(404, f"object {oid} was not uploaded")
            return self._json(200, {})
        raise HubError(404, "no such LFS route")


def _is_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError:
        # a multi-byte character may be cut at the end of the 512-byte sample
        try:
            sample[:-3].decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the test Hub on 127.0.0.1 (Ctrl-C stops it).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", action="append", default=[], help="TOKEN=USER (repeatable)")
    parser.add_argument("--minutes", type=float, default=60.0, help="stop by itself after this long")
    args = parser.parse_args(argv)
    tokens = dict(t.split("=", 1) for t in args.token)
    with HubServer(tokens=tokens, port=args.port) as hub:
        print(f"test hub at {hub.url} (HF_ENDPOINT={hub.url} HF_HUB_DISABLE_XET=1); users: {sorted(set(tokens.values()))}")
        try:
            time.sleep(args.minutes * 60)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
