"""The test hub speaks the protocol huggingface_hub uses: checked with the real, unpatched client."""

from __future__ import annotations

from hub_testing import ALICE, BOB, unexpected_strays

CLIENT_ROUND_TRIP = r'''
import atexit, os, pathlib, shutil, tempfile
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

api = HfApi(token=alice)
src = pathlib.Path(tempfile.mkdtemp())
atexit.register(shutil.rmtree, src, True)
(src / "config.json").write_text('{"a": 1}')
(src / "nested" / "deeper").mkdir(parents=True)
blob = os.urandom(300_000)
(src / "nested" / "weights.safetensors").write_bytes(blob)
(src / "nested" / "deeper" / "notes.txt").write_text("hello\n" * 50)
for i in range(5):
    (src / f"file{i}.txt").write_text(str(i))

repo = f"alice/{name}"
url = api.create_repo(repo, private=True)
first = api.upload_folder(folder_path=str(src), repo_id=repo, commit_message="first")
again = api.upload_folder(folder_path=str(src), repo_id=repo, commit_message="nothing changed")
api.create_branch(repo, branch="v1")
(src / "config.json").write_text('{"a": 2}')
on_branch = api.upload_folder(folder_path=str(src), repo_id=repo, revision="v1", commit_message="on v1")

tree = sorted(f.path for f in api.list_repo_tree(repo, recursive=True))
top = sorted(f.path for f in api.list_repo_tree(repo))
lfs = {f.path: (f.lfs.sha256 if f.lfs else None) for f in api.get_paths_info(repo, ["nested/weights.safetensors", "config.json"])}
weights = pathlib.Path(hf_hub_download(repo, "nested/weights.safetensors", token=alice)).read_bytes()
main_cfg = pathlib.Path(hf_hub_download(repo, "config.json", token=alice)).read_text()
snap = pathlib.Path(snapshot_download(repo, revision="v1", token=alice))
fs = HfFileSystem(token=alice)
with fs.open(f"{repo}/nested/weights.safetensors", "rb", block_size=4096) as fh:
    fh.seek(1000)
    chunk = fh.read(5000)

try:
    HfApi(token=bob).model_info(repo)
    hidden = False
except RepositoryNotFoundError:
    hidden = True

import hashlib
result = {
    "url": str(url), "first": first.oid, "again": again.oid, "on_branch": on_branch.oid,
    "tree": tree, "top": top, "lfs": lfs, "sha": hashlib.sha256(blob).hexdigest(),
    "weights_ok": weights == blob, "main_cfg": main_cfg,
    "snap_cfg": (snap / "config.json").read_text(), "snap_commit": snap.name,
    "range_ok": chunk == blob[1000:6000], "hidden_from_bob": hidden,
}
'''


def test_hub_client_round_trip(hub, hub_client, repo_name):
    r = hub_client.run(CLIENT_ROUND_TRIP, alice=ALICE, bob=BOB, name=repo_name)
    assert r["url"].startswith(hub.url)
    assert r["again"] == r["first"], "re-uploading identical files must not create a commit"
    assert r["on_branch"] != r["first"]
    # the recursive listing was paginated (page size 4) and has folders and files
    assert r["tree"] == sorted([
        ".gitattributes", "config.json", "file0.txt", "file1.txt", "file2.txt", "file3.txt", "file4.txt",
        "nested", "nested/deeper", "nested/deeper/notes.txt", "nested/weights.safetensors",
    ])
    assert "nested/weights.safetensors" not in r["top"] and "nested" in r["top"]
    assert r["lfs"] == {"nested/weights.safetensors": r["sha"], "config.json": None}
    assert r["weights_ok"] and r["range_ok"]
    assert r["main_cfg"] == '{"a": 1}' and r["snap_cfg"] == '{"a": 2}'
    assert r["snap_commit"] == r["on_branch"]
    assert r["hidden_from_bob"]
    # the weights went through the LFS batch API and the commit referenced them
    paths = [p for _, p, _ in hub.log]
    assert any(p.endswith(".git/info/lfs/objects/batch") for p in paths)
    assert hub.files(f"alice/{repo_name}", revision="v1")["config.json"] == b'{"a": 2}'
    assert not unexpected_strays(hub)
