"""Training examples of Stable Diffusion fine-tuning: concepts (a class, its prompt, its images) from a
concept folder or labelled data, the example dataset with its latent cache, and the batch collation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data import IMAGE_EXTENSIONS, DataError, class_names, image_transform, is_grayscale, load_dataset
from .sd_config import StableDiffusionTrainingConfig

# names an output folder already uses; a per-class model cannot take them
RESERVED_FOLDERS = {"checkpoints", "logs", "samples", "class_images"}


@dataclass
class Concept:
    """One class: its name, the prompt it is trained and generated with, and its image rows."""

    name: str
    prompt: str
    images: Any  # a datasets.Dataset with an "image" column
    rows: list[int]


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def files_dataset(files: Sequence[Path]):
    import datasets

    return datasets.Dataset.from_dict({"image": [str(f) for f in files]}, features=datasets.Features({"image": datasets.Image()}))


def load_concepts(cfg: StableDiffusionTrainingConfig) -> tuple[list[Concept], dict[str, Any], bool]:
    """``(concepts, data provenance, grayscale)`` from --instance_data_dir or --dataset_name.

    Every class must have images; the error names the classes without any.
    """
    if cfg.instance_data_dir:
        folder = Path(cfg.instance_data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"--instance_data_dir {folder}: no such folder")
        files = image_files(folder)
        if not files:
            hint = ""
            if any(p.is_dir() for p in folder.iterdir()):
                hint = "; it has sub-folders: for labelled data (one sub-folder per class) use --dataset_name"
            raise DataError(f"--instance_data_dir {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}){hint}")
        ds = files_dataset(files)
        concepts = [Concept(folder.name, cfg.instance_prompt or "", ds, list(range(len(files))))]
        data = {"source": str(folder), "num_images": len(files)}
    else:
        ds = load_dataset(cfg.dataset_name, split=cfg.dataset_split)
        names = class_names(ds)
        rows: dict[int, list[int]] = {i: [] for i in range(len(names))}
        for r, label in enumerate(ds["label"]):
            rows[int(label)].append(r)
        empty = [names[i] for i, r in rows.items() if not r]
        if empty:
            raise DataError(
                f"{cfg.dataset_name} (split {cfg.dataset_split!r}): class(es) {empty} have no images; "
                "every label needs images to train its prompt or model"
            )
        template = cfg.class_prompt_template
        concepts = [Concept(n, template.format(label=n) if template else cfg.instance_prompt or "", ds, rows[i]) for i, n in enumerate(names)]
        data = {
            "source": str(cfg.dataset_name), "split": cfg.dataset_split, "num_images": len(ds),
            "images_per_class": {c.name: len(c.rows) for c in concepts},
        }
    if len({c.prompt for c in concepts}) < len(concepts) and not cfg.one_model_per_class:
        raise ValueError(f"classes share a prompt ({[c.prompt for c in concepts]}); each class of one model needs its own")
    return concepts, data, is_grayscale(concepts[0].images)


def class_folder_names(names: Sequence[str]) -> dict[str, str]:
    """Class name -> sub-folder of its model in a one-model-per-class run."""
    folders = {n: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in n) or "_" for n in names}
    clash = [n for n, f in folders.items() if f in RESERVED_FOLDERS or f.startswith(".")]
    if clash:
        raise ValueError(f"class name(s) {clash} would overwrite the run's own folders {sorted(RESERVED_FOLDERS)}; rename them")
    if len(set(folders.values())) < len(folders):
        raise ValueError(f"class names {list(names)} map to the same folder names {list(folders.values())}; rename them")
    return folders


def pixel_transform(resolution: int, center_crop: bool):
    """PIL -> (3, res, res) in [-1, 1]: grayscale goes in as 3 channels; resize, then centre or random crop."""
    from PIL import Image

    to_tensor = image_transform(resolution, 3)  # resize + centre crop + RGB + [-1, 1]
    if center_crop:
        return to_tensor

    def apply(image):
        w, h = image.size
        scale = resolution / min(w, h)
        image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.Resampling.BICUBIC)
        left, top = random.randint(0, image.width - resolution), random.randint(0, image.height - resolution)
        return to_tensor(image.crop((left, top, left + resolution, top + resolution)))

    return apply


class ExampleDataset(torch.utils.data.Dataset):
    """Instance examples ``(images, row, prompt index)``, each paired with a class example for prior
    preservation; its length is the larger of the two (diffusers' DreamBooth dataset).

    After :meth:`cache_latents` an example is its VAE posterior (mean and log-variance), not pixels.
    """

    def __init__(self, instance: list[tuple[Any, int, int]], prior: list[tuple[Any, int, int]] | None, transform) -> None:
        if not instance:
            raise DataError("no training images")
        self.instance, self.prior, self.transform = instance, prior or [], transform
        self.cache: dict[str, list[torch.Tensor]] | None = None

    def __len__(self) -> int:
        return max(len(self.instance), len(self.prior))

    def example(self, kind: str, i: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[kind][i]
        images, row, _ = (self.instance if kind == "instance" else self.prior)[i]
        return self.transform(images[row]["image"])

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = index % len(self.instance)
        out = {"instance": self.example("instance", i), "instance_prompt": self.instance[i][2]}
        if self.prior:
            j = index % len(self.prior)
            out["prior"], out["prior_prompt"] = self.example("prior", j), self.prior[j][2]
        return out

    @torch.no_grad()
    def cache_latents(self, vae, device: torch.device, dtype: torch.dtype, batch_size: int) -> None:
        cache: dict[str, list[torch.Tensor]] = {}
        for kind, items in (("instance", self.instance), ("prior", self.prior)):
            cache[kind] = []
            for start in range(0, len(items), batch_size):
                pixels = torch.stack([self.example(kind, i) for i in range(start, min(start + batch_size, len(items)))])
                cache[kind].extend(vae.encode(pixels.to(device, dtype)).latent_dist.parameters.cpu())
        self.cache = cache


def collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Instance examples first, then their class examples (the loss splits the batch in halves)."""
    inputs = [r["instance"] for r in rows] + [r["prior"] for r in rows if "prior" in r]
    prompts = [r["instance_prompt"] for r in rows] + [r["prior_prompt"] for r in rows if "prior" in r]
    return {"inputs": torch.stack(inputs), "prompt": torch.tensor(prompts, dtype=torch.long)}
