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
from .intensity import record_intensity, recorded_intensity, resolve_intensity
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
        if int(per_class) < 1:
            raise ValueError(f"per_class (--per_class) must be >= 1, got {per_class}")
        return {name: int(per_class) for name in generator.class_names}
    counts: dict[str, int] = {}
    for key, n in images_per_class.items():  # type: ignore[union-attr]
        name = generator.class_names[generator.class_index(key)]
        if name in counts:
            raise ValueError(f"images_per_class (--images_per_class) gives class {name!r} twice (as {key!r} too); "
                             "give each class once")
        if int(n) < 0:
            raise ValueError(f"count for class {name!r} must be >= 0 (--images_per_class)")
        counts[name] = int(n)
    if not sum(counts.values()):
        raise ValueError("images_per_class (--images_per_class) asks for no images; give at least one class a count >= 1")
    missing = [name for name in generator.class_names if not counts.get(name)]
    if missing:
        logger.warning("the synthetic set will have no images of %s (the generator's classes: %s); a classifier trained "
                       "on it alone cannot learn %s", missing, generator.class_names, "them" if len(missing) > 1 else "it")
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
    check_memorization: Any = None,
    memorization_extractor: Any = None,
    **generate_kwargs: Any,
):
    """Generate a ``datasets.Dataset`` (``image``, ``label`` ClassLabel, provenance columns).

    Images are written batch by batch to ``<output_dir>.partial/`` so memory stays bounded and an
    interrupted run resumes where it stopped (same arguments). The finished dataset is written with
    ``save_to_disk`` and moved to ``output_dir`` in one rename; ``image_folder=True`` also keeps the
    PNGs under ``output_dir/image_folder/<class>/``. Without ``output_dir`` the dataset is returned
    in memory.

    ``overwrite=True`` replaces only a dataset synthxray wrote (``synthxray_dataset.json`` is there) or
    an empty folder. ``check_memorization`` (a training set: anything ``load_dataset`` reads) runs
    :func:`synthxray.evaluation.memorization` on the finished set (pixel space; also
    ``memorization_extractor``'s feature space when given) and records its figures, never any
    training image, in the manifest and the card. Every argument is checked before a file is written.

    Launched on N processes (``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N ...`` on CPU,
    ``accelerate launch --num_processes N ...`` on GPUs), every process checks the arguments, the
    batches are split between processes (``PartialState.split_between_processes``), each process logs
    its own images into the one ``<output_dir>.partial/``, and the main process merges and moves the
    dataset into place after all have finished. Against one process with the same arguments: the same
    images in the same order with the same labels, seeds and provenance; the pixels are identical when every
    process runs with the torch thread count the one process had (``OMP_NUM_THREADS``; ``torchrun`` gives each
    process 1 thread) on the same kind of device, and otherwise may differ by float rounding (a different
    thread count sums the convolutions in another order before the 8-bit quantisation): 1 grey level in a few
    pixels on the test model.
    """
    import datasets
    from tqdm.auto import tqdm

    if int(batch_size) < 1:
        raise ValueError(f"batch_size (--batch_size) must be >= 1, got {batch_size}")
    if num_inference_steps is not None and int(num_inference_steps) < 1:
        raise ValueError(f"num_inference_steps (--num_inference_steps) must be >= 1, got {num_inference_steps}")
    counts = resolve_counts(generator, per_class, images_per_class)
    settings = generator.resolve_settings(num_inference_steps, guidance_scale, scheduler)
    train = None
    if check_memorization is not None:  # read it now: a wrong path must not cost the whole generation
        from .data import load_dataset

        if output_dir is None:
            raise ValueError("check_memorization (--check_memorization) needs output_dir: its figures go into the dataset's manifest and card")
        train = (check_memorization, load_dataset(check_memorization))
        if memorization_extractor is not None:
            from .evaluation.extractors import get_extractor

            memorization_extractor = get_extractor(memorization_extractor)
    state = _process_state()
    if state.num_processes > 1:
        if output_dir is None:
            raise ValueError(f"generate_dataset on {state.num_processes} processes needs output_dir (--output_dir): "
                             "the processes share their images through <output_dir>.partial/")
        if state.device.type != "cpu":
            generator.to(state.device)  # one device per process
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
        final = check_output_dir(output_dir, overwrite)
    staging = final.with_name(final.name + ".partial")
    _check_staging(staging, job)  # every process, read-only: a refusal stops all of them before any write
    state.wait_for_everyone()
    if state.is_main_process:
        _open_staging(staging, job)
    state.wait_for_everyone()
    records = _read_records(staging)
    done = {(r["class_name"], r["index"]) for r in records}
    if done:
        logger.info("resuming: %d images already in %s", len(done), staging)
    logged = _count_logged(staging)
    state.wait_for_everyone()  # every process has read the same finished set before any writes more

    batches = []  # the one-process batches, whatever N: every image comes out of the same batch
    for name, n in counts.items():
        todo = [i for i in range(n) if (name, i) not in done]
        batches += [(name, todo[start : start + batch_size]) for start in range(0, len(todo), batch_size)]
    total = sum(counts.values())
    bar = tqdm(total=total, initial=len(done), desc="generate", unit="img", disable=not (progress and state.is_main_process))
    log_name = "records.jsonl" if state.process_index == 0 else f"records.rank{state.process_index}.jsonl"
    started = time.time()
    with state.split_between_processes(batches) as mine, open(staging / log_name, "a") as log:
        for name, chunk in mine:
            cidx = generator.class_names.index(name)
            (staging / "images" / _safe(name)).mkdir(parents=True, exist_ok=True)
            seeds = [sample_seed(seed, cidx, i) for i in chunk]
            images = generator.generate(len(chunk), class_label=cidx, seed=seeds, batch_size=batch_size, **settings, **generate_kwargs)
            for i, s, im in zip(chunk, seeds, images):
                rel = f"images/{_safe(name)}/{_safe(name)}_{i:06d}.png"
                tmp = staging / (rel + ".tmp")
                im.save(tmp, format="PNG")
                os.replace(tmp, staging / rel)
                log.write(json.dumps({"class_name": name, "index": i, "seed": s, "file": rel}) + "\n")
            log.flush()
            if state.num_processes == 1:
                bar.update(len(chunk))
            elif not bar.disable:  # the main process shows every process's images
                bar.update(min(total, len(done) + _count_logged(staging) - logged) - bar.n)
    state.wait_for_everyone()
    elapsed = time.time() - started
    if not state.is_main_process:
        state.wait_for_everyone()  # the main process merges and moves the dataset into place
        return datasets.load_from_disk(str(final))
    bar.update(total - bar.n)
    bar.close()
    records = _read_records(staging)
    missing = total - sum(1 for r in records if r["index"] < counts.get(r["class_name"], 0))
    if missing:
        raise RuntimeError(f"{missing} of {total} images are missing from {staging} after every process finished; "
                           "rerun the same command to make them")

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
    mapping = recorded_intensity(generator)
    intensity = resolve_intensity(mapping, "the generator's data.intensity") if mapping else None
    if temp is not None:
        ds = record_intensity(datasets.Dataset.from_dict(ds.to_dict(), features=features), intensity)
        shutil.rmtree(staging, ignore_errors=True)
        temp.cleanup()
        return ds
    record_intensity(ds, intensity)  # the training data's pixel mapping: these images are in its 8-bit scale
    build = staging / "dataset"
    if build.exists():
        shutil.rmtree(build)
    ds.save_to_disk(str(build))
    manifest = {**job, "num_images": len(order), "seconds": round(elapsed, 1), "columns": list(features),
                "provenance_columns": list(PROVENANCE_COLUMNS), "seed_stride": SEED_STRIDE,
                **({"intensity": intensity.record()} if intensity else {})}
    if train is not None:
        manifest["memorization"] = memorization_summary(train[1], build, memorization_extractor, progress, source=train[0])
    (build / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if image_folder:
        os.replace(staging / "images", build / "image_folder")
    _write_card(build)
    _swap_into_place(build, final)
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote %d images to %s", len(order), final)
    state.wait_for_everyone()
    return datasets.load_from_disk(str(final))


def check_output_dir(output_dir: str | os.PathLike, overwrite: bool) -> Path:
    """The folder a dataset may be written to, or an error naming what is in the way and what to do.

    :func:`synthxray.outputs.check_output_dir`'s rule: ``overwrite`` replaces only a synthxray dataset (its
    ``synthxray_dataset.json`` is there): never a folder of other files (the finished dataset replaces the
    whole folder), nor a generator, experiment or other synthxray artefact.
    """
    from .outputs import DATASET
    from .outputs import check_output_dir as check

    final = check(output_dir, DATASET, overwrite, "--overwrite", replace_needs_flag=True, beside_foreign=False)
    return final.resolve() if final.is_symlink() else final


def memorization_summary(train: Any, synthetic: Any, extractor: Any = None, progress: bool = True,
                         source: Any = None) -> dict[str, Any]:
    """The nearest-training-image check's figures for a manifest: numbers and indices, never an image or a path's folders.

    ``source`` (default ``train``) names the training set in the summary: a local path by its last part only.
    """
    from .evaluation.memorization import memorization

    report = memorization(train, synthetic, extractor=extractor, progress=progress, output_dir=None)
    keep = ("metric", "threshold", "threshold_from", "fraction_below", "reference_fraction_below", "synthetic_to_train", "reference")
    spaces = {name: {**{k: sec[k] for k in keep if k in sec}, "closest_pairs": sec.get("closest_pairs", [])[:5]}
              for name, sec in report["spaces"].items()}
    source = source if source is not None else train
    name = None
    if isinstance(source, (str, os.PathLike)):
        p = Path(source).expanduser()
        name = p.name if p.exists() else str(source)  # a local folder by its last name only; a Hub id as given
    summary = {"train": name or "in-memory dataset", "num_train": report["num_train"], "num_synthetic": report["num_synthetic"],
               "quantile": report["quantile"], "pixel_size": report["pixel_size"], "spaces": spaces}
    for space, sec in spaces.items():
        logger.info("memorization (%s): %.1f%% of synthetic images are closer to a training image than the threshold "
                    "(reference: %.1f%%)", space, 100 * sec["fraction_below"], 100 * sec["reference_fraction_below"])
    return summary


def _write_card(folder: Path) -> None:
    from . import hub

    try:
        hub.write_dataset_card(folder)
    except (OSError, ValueError) as exc:  # the dataset is complete; a missing template must not lose it
        logger.warning("dataset card not written for %s: %s", folder, exc)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _process_state():
    """accelerate's view of the processes (one when not launched by accelerate or torchrun)."""
    from .processes import process_state

    return process_state()


def _check_staging(staging: Path, job: dict) -> bool:
    """True when ``staging`` holds images of this job to resume; an error when it holds another job's."""
    job_file = staging / "job.json"
    if not staging.exists():
        return False
    if not any((staging / "images").rglob("*.png")) and (job_file.is_file() or not any(staging.iterdir())):
        return False  # an earlier attempt that made no image: nothing to keep
    if not job_file.is_file() or json.loads(job_file.read_text()) != json.loads(json.dumps(job)):
        raise FileExistsError(
            f"{staging} holds an interrupted generation with other settings; delete it or rerun with the same arguments"
        )
    return True


def _open_staging(staging: Path, job: dict) -> None:
    """Reopen the staging folder of this job, or start it afresh (the main process only)."""
    if _check_staging(staging, job):
        return
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / "job.json").write_text(json.dumps(job, indent=2) + "\n")


def _read_records(staging: Path) -> list[dict]:
    """The finished images logged by every process (``records*.jsonl``) whose file is there, once each."""
    records: dict[tuple[str, int], dict] = {}
    for log in sorted(staging.glob("records*.jsonl")):
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the interruption
                continue
            if (staging / rec["file"]).is_file():
                records[(rec["class_name"], rec["index"])] = rec
    return list(records.values())


def _count_logged(staging: Path) -> int:
    total = 0
    for log in staging.glob("records*.jsonl"):
        with open(log, "rb") as f:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))
    return total


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
