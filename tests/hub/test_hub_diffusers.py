"""The ``diffusers`` backend from a Hub repo: a plain diffusers pipeline (no synthxray.json) pushed by its author,
loaded by repo id with prompts, generated from with the repo id and its commit in every sample; wrapped and pushed."""

from __future__ import annotations

import json

from hub_testing import ALICE, unexpected_strays

PROMPTS = {"normal": "a chest x-ray showing normal", "pneumonia": "a chest x-ray showing pneumonia"}
CARD = "---\nlicense: creativeml-openrail-m\n---\n# someone else's tiny model\n"

LOAD_BY_REPO_ID = r'''
import hashlib, pathlib, shutil
import numpy as np
from huggingface_hub import HfApi
from synthxray import generate_dataset, load_generator
from synthxray.hub import push_generator

def hashes(gen):
    return [hashlib.sha256(np.asarray(im).tobytes()).hexdigest()
            for cls in gen.class_names for im in gen.generate(2, class_label=cls, seed=11, num_inference_steps=2)]

plain = pathlib.Path(workdir) / "plain"
shutil.copytree(folder, plain)
(plain / "README.md").write_text(card)
api = HfApi(token=alice)
api.create_repo(f"alice/{name}")
commit = api.upload_folder(folder_path=str(plain), repo_id=f"alice/{name}").oid
gen = load_generator(f"alice/{name}", prompts=prompts, device="cpu")
ds = generate_dataset(gen, per_class=1, seed=3, output_dir=pathlib.Path(workdir) / "syn", num_inference_steps=2,
                      progress=False)
local = load_generator(str(plain), prompts=prompts, device="cpu")
wrapped = pathlib.Path(workdir) / "wrapped"
gen.save_pretrained(wrapped)
pushed = push_generator(wrapped, f"alice/{name}-wrapped", token=alice)
again = load_generator(f"alice/{name}-wrapped", device="cpu")
missing = None
try:
    load_generator(f"alice/{name}-nope", prompts=prompts, device="cpu")
except Exception as exc:
    missing = f"{type(exc).__name__}: {exc}"
result = {
    "commit": commit, "revision": gen.revision, "source": gen.source, "license": gen.info.extra.get("license"),
    "paths": sorted(set(ds["generator_path"])), "revisions": sorted(set(ds["generator_revision"])),
    "remote": hashes(gen), "local": hashes(local), "again": hashes(again),
    "again_source": again.source, "again_revision": again.revision, "pushed_commit": pushed.commit,
    "info": json.loads((wrapped / "synthxray.json").read_text()), "missing": missing,
}
'''


def test_plain_diffusers_repo_by_id(hub, hub_client, repo_name, tiny_sd_pipeline_dir, tmp_path):
    r = hub_client.run("import json\n" + LOAD_BY_REPO_ID, folder=str(tiny_sd_pipeline_dir), workdir=str(tmp_path),
                       name=repo_name, alice=ALICE, card=CARD, prompts=PROMPTS, timeout=300)
    assert r["revision"] == r["commit"] and r["source"] == f"alice/{repo_name}"
    assert r["license"] == "creativeml-openrail-m"
    assert r["paths"] == [f"alice/{repo_name}"] and r["revisions"] == [r["commit"]]
    assert r["remote"] == r["local"], "the repo and the folder it was pushed from make the same images"
    assert r["again"] == r["remote"], "wrapped, pushed and pulled back: the same images with no arguments"
    assert r["again_source"] == f"alice/{repo_name}-wrapped" and r["again_revision"] == r["pushed_commit"]
    source = r["info"]["extra"]["sources"]["*"]
    assert source == {"source": f"alice/{repo_name}", "revision": r["commit"],
                      "pipeline_class": "StableDiffusionPipeline", "license": "creativeml-openrail-m"}
    assert r["missing"].startswith("HubLoadError: cannot load") and "repository not found" in r["missing"]
    assert len(r["missing"].splitlines()) == 1
    files = hub.files(f"alice/{repo_name}-wrapped")
    assert json.loads(files["synthxray.json"])["backend"] == "diffusers"
    assert not unexpected_strays(hub)
