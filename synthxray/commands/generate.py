"""``synthxray generate``: sample a labelled synthetic dataset from any generator."""

from __future__ import annotations

import argparse
import sys

from ..samplers import SCHEDULERS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a labelled synthetic dataset from a generator folder or Hub repo")
    p.add_argument("--model", required=True, help="generator folder or Hub repo id")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--output_dir", required=True, help="where the save_to_disk dataset is written")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--per_class", type=int, help="images per class")
    group.add_argument("--images_per_class", help='per-class counts, e.g. "normal=234,pneumonia=390"')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_inference_steps", type=int, default=None, help="default: the generator's saved default")
    p.add_argument("--guidance_scale", type=float, default=None, help="default: the generator's saved default")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=None, help="default: the generator's saved default")
    p.add_argument("--negative_prompt", default=None, help="Stable Diffusion and text-to-image diffusers generators only")
    p.add_argument("--prompt", action="append", default=[], metavar="CLASS=TEXT",
                   help="diffusers text-to-image model, no synthxray.json: the prompt of a class (repeat per class)")
    p.add_argument("--image_folder", action="store_true", help="also keep PNGs in class sub-folders (OUT/image_folder/<class>/)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output_dir that holds a synthxray dataset (never other files)")
    p.add_argument("--check_memorization", default=None, metavar="TRAIN",
                   help="privacy gate: the generator's training set (any --dataset form); the finished set's nearest-training-image "
                        "figures go into the manifest and card")
    p.add_argument("--memorization_extractor", default=None,
                   help="with --check_memorization: also compare in this extractor's feature space (e.g. inception); default pixels only")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.set_defaults(func=run)


def parse_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"--images_per_class expects name=count pairs, got {part!r}")
        name, n = part.split("=", 1)
        if name.strip() in counts:
            raise ValueError(f"--images_per_class names class {name.strip()!r} twice ({text!r}); give each class once")
        try:
            counts[name.strip()] = int(n)
        except ValueError:
            raise ValueError(f"--images_per_class: the count for {name.strip()!r} must be a whole number, got {n!r}") from None
    return counts


def run(args: argparse.Namespace) -> int:
    from ..generators import load_generator
    from ..synthesis import generate_dataset

    from ..synthesis import check_output_dir

    counts = parse_counts(args.images_per_class) if args.images_per_class else None
    for flag, value in (("--per_class", args.per_class), ("--batch_size", args.batch_size), ("--num_inference_steps", args.num_inference_steps)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    check_output_dir(args.output_dir, args.overwrite)  # before the generator loads: a refused folder costs nothing
    if args.check_memorization is not None:
        from ..data import load_dataset

        load_dataset(args.check_memorization)  # a wrong TRAIN fails now, not after the generator has loaded
    kwargs = {"device": args.device} if args.device else {}
    if args.prompt:
        from .wrap import parse_pairs

        kwargs["prompts"] = parse_pairs(args.prompt, "--prompt")
    gen = load_generator(args.model, revision=args.revision, **kwargs)
    extra = {"negative_prompt": args.negative_prompt} if args.negative_prompt else {}
    try:
        ds = generate_dataset(
            gen, per_class=args.per_class, images_per_class=counts,
            seed=args.seed, output_dir=args.output_dir, batch_size=args.batch_size,
            num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale, scheduler=args.scheduler,
            image_folder=args.image_folder, overwrite=args.overwrite,
            check_memorization=args.check_memorization, memorization_extractor=args.memorization_extractor, **extra,
        )
    except KeyboardInterrupt:
        print(f"synthxray generate: interrupted: rerun the same command to resume (finished images are kept in {args.output_dir}.partial)",
              file=sys.stderr)
        return 130
    from ..synthesis import _process_state

    if not _process_state().is_main_process:  # on N processes the main one reports
        return 0
    from ..resources import format_mb, process_peak_mb

    made = [(name, n) for name, n in zip(gen.class_names, _count_labels(ds, len(gen.class_names))) if n]
    print(f"wrote {len(ds)} images ({', '.join(f'{name} {n}' for name, n in made)}) to {args.output_dir} "
          f"(peak memory {format_mb(process_peak_mb())})")
    if args.check_memorization is not None:
        import json
        from pathlib import Path

        from ..synthesis import MANIFEST

        check = json.loads((Path(args.output_dir) / MANIFEST).read_text())["memorization"]
        for space, sec in check["spaces"].items():
            print(f"memorization ({space}): {sec['fraction_below']:.1%} of synthetic images are closer to a training image than "
                  f"{sec['threshold']:.4g} (reference {sec['reference_fraction_below']:.1%}; {sec['threshold_from']})")
    return 0


def _count_labels(ds, num_classes: int) -> list[int]:
    """Images per class index in a generated dataset (its ``label`` column)."""
    import numpy as np

    return np.bincount(np.asarray(ds["label"], dtype=np.int64), minlength=num_classes).tolist()
