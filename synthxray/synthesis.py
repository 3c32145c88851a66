"""Generate labelled synthetic datasets with per-sample provenance: batched, seeded, resumable, atomic."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from .generators.base import Generator
from .manifest import DATASET_MANIFEST as MANIFEST
from .manifest import PROVENANCE_COLUMNS, SEED_STRIDE

logger = logging.getLogger("synthxray.synthesis")


def sample_seed(seed: int, class_index: int, index: int) -> int:
    """The seed of image ``index`` of class ``class_index``: any single image can be remade alone."""
    return seed + class_index * SEED_STRIDE + index


def resolve_counts(generator: Generator, per_class: int | None, images_per_class: Mapping[str | int, int] | None) -> dict[str, int]:
    """Images to make per class name, from ``per_class`` (every class) or an explicit mapping."""
    if (per_class is None) == (images_per_class is None):
        raise ValueError("give exactly one of per_class=N or images_per_class={class: N}")
    if per_class is not None:
        if per_class < 0:
            raise ValueError("per_class must be >= 0")
        return {name: int(per_class) for name in generator.class_names}
    counts: dict[str, int] = {}
    for key, n in images_per_class.items():  # type: ignore[union-attr]
        name = generator.class_names[generator.class_index(key)]
        if int(n) < 0:
            raise ValueError(f"count for class {name!r} must be >= 0")
        counts[name] = int(n)
    return counts


def generate_dataset(
    generator: Generator,
    per_class: int | None = None,
    images_per_class: Mapping[str | int, int] | None = None,
    seed: int = 0,
    output_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    scheduler: str | None = None,
    image_folder: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **generate_kwargs: Any,
):
    """Generate a ``datasets.Dataset`` (``image``, ``label`` ClassLabel, provenance columns).

    Images are written batch by batch to ``<output_dir>.partial/`` so memory stays bounded and an
    interrupted run resumes where it stopped (same arguments). The finished dataset is written with
    ``save_to_disk`` and moved to ``output_dir`` in one rename; ``image_folder=True`` also keeps the
    PNGs under ``output_dir/image_folder/<class>/``. Without ``output_dir`` the dataset is returned
    in memory.
    """
    import datasets
    from tqdm.auto import tqdm

    counts = resolve_counts(generator, per_class, images_per_class)
    settings = generator.resolve_settings(num_inference_steps, guidance_scale, scheduler)
    job = {
        "counts": counts, "seed": seed, **settings, **generator.provenance,
        "generate_kwargs": {k: str(v) for k, v in generate_kwargs.items()},
        "class_names": generator.class_names,
    }
    temp = None
    if output_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="synthxray-")
        final = Path(temp.name) / "dataset"
    else:
        final = Path(output_dir)
        if final.exists() and not overwrite:
            raise FileExistsError(f"{final} already exists; choose a new output_dir or pass overwrite=True (--overwrite)")
    staging = final.with_name(final.name + ".partial")
    records = _open_staging(staging, job)

    done = {(r["class_name"], r["index"]) for r in records}
    total = sum(counts.values())
    bar = tqdm(total=total, initial=len(done), desc="generate", unit="img", disable=not progress)
    started = time.time()
    with open(staging / "records.jsonl", "a") as log:
        for name, n in counts.items():
            cidx = generator.class_names.index(name)
            todo = [i for i in range(n) if (name, i) not in done]
            (staging / "images" / _safe(name)).mkdir(parents=True, exist_ok=True)
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                seeds = [sample_seed(seed, cidx, i) for i in chunk]
                images = generator.generate(len(chunk), class_label=cidx, seed=seeds, batch_size=batch_size, **settings, **generate_kwargs)
                for i, s, im in zip(chunk, seeds, images):
                    rel = f"images/{_safe(name)}/{_safe(name)}_{i:06d}.png"
                    tmp = staging / (rel + ".tmp")
                    im.save(tmp, format="PNG")
                    os.replace(tmp, staging / rel)
                    rec = {"class_name": name, "index": i, "seed": s, "file": rel}
                    log.write(json.dumps(rec) + "\n")
                    records.append(rec)
                log.flush()
                bar.update(len(chunk))
    bar.close()
    elapsed = time.time() - started

    names = generator.class_names
    features = datasets.Features({
        "image": datasets.Image(), "label": datasets.ClassLabel(names=names),
        "class_name": datasets.Value("string"), "generator": datasets.Value("string"),
        "generator_path": datasets.Value("string"), "generator_revision": datasets.Value("string"),
        "seed": datasets.Value("int64"), "scheduler": datasets.Value("string"),
        "num_inference_steps": datasets.Value("int32"), "guidance_scale": datasets.Value("float32"),
    })
    order = sorted(records, key=lambda r: (names.index(r["class_name"]), r["index"]))

    def rows():
        for r in order:
            yield {
                "image": {"bytes": (staging / r["file"]).read_bytes(), "path": Path(r["file"]).name},
                "label": names.index(r["class_name"]), "class_name": r["class_name"],
                **generator.provenance, "seed": r["seed"], "scheduler": settings["scheduler"],
                "num_inference_steps": settings["num_inference_steps"], "guidance_scale": settings["guidance_scale"],
            }

    ds = datasets.Dataset.from_generator(rows, features=features, cache_dir=str(staging / "cache"))
    if temp is not None:
        ds = datasets.Dataset.from_dict(ds.to_dict(), features=features)
        shutil.rmtree(staging, ignore_errors=True)
        temp.cleanup()
        return ds
    build = staging / "dataset"
    if build.exists():
        shutil.rmtree(build)
    ds.save_to_disk(str(build))
    manifest = {**job, "num_images": len(order), "seconds": round(elapsed, 1), "columns": list(features),
                "provenance_columns": list(PROVENANCE_COLUMNS), "seed_stride": SEED_STRIDE}
    (build / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if image_folder:
        os.replace(staging / "images", build / "image_folder")
    _write_card(build)
    _swap_into_place(build, final)
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote %d images to %s", len(order), final)
    return datasets.load_from_disk(str(final))


def _write_card(folder: Path) -> None:
    from . import hub

    try:
        hub.write_dataset_card(folder)
    except (OSError, ValueError) as exc:  # the dataset is complete; a missing template must not lose it
        logger.warning("dataset card not written for %s: %s", folder, exc)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _open_staging(staging: Path, job: dict) -> list[dict]:
    """Create or reopen the staging folder; a folder from different arguments is an error."""
    job_file = staging / "job.json"
    if staging.exists():
        if not job_file.is_file() or json.loads(job_file.read_text()) != json.loads(json.dumps(job)):
            raise FileExistsError(
                f"{staging} holds an interrupted generation with other settings; delete it or rerun with the same arguments"
            )
        records = []
        log = staging / "records.jsonl"
        if log.is_file():
            for line in log.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by the interruption
                    continue
                if (staging / rec["file"]).is_file():
                    records.append(rec)
        logger.info("resuming: %d images already in %s", len(records), staging)
        return records
    staging.mkdir(parents=True)
    job_file.write_text(json.dumps(job, indent=2) + "\n")
    return []


def _swap_into_place(build: Path, final: Path) -> None:
    """Move ``build`` to ``final`` with renames only; an existing ``final`` is replaced, never half-written."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        old = final.with_name(f"{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(build, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(build, final)
