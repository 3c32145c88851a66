"""``synthxray evaluate``: FID / KID / precision / recall of a synthetic set against a real one, per class and over seeds.

Defaults: the real test split, real images brought to the synthetic resolution, torch-fidelity's
FID protocol; the report names protocol, extractor, compared size and n. Launched on N processes
(``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N -m synthxray.cli evaluate ...``) the feature
extraction is split between them and the main process writes the one report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare synthetic images with real ones: FID/KID/precision/recall per class, memorization, label fidelity",
        description="Writes OUT/evaluation.json and OUT/evaluation.md (one row per class plus overall; mean ± std over seeds).",
    )
    p.add_argument("--real", required=True, help="real images: class-folder directory, .npz, MedMNIST name, save_to_disk folder or Hub id")
    p.add_argument("--real_split", default=None,
                   help="split of --real (default: test when the source has one, else its training images, with a warning)")
    p.add_argument("--synthetic", required=True,
                   help="synthetic images (same kinds as --real), or a generator folder / Hub repo (a folder with synthxray.json), sampled on the fly")
    p.add_argument("--synthetic_split", default="train")
    p.add_argument("--metrics", nargs="+", default=["fid", "kid", "precision", "recall"],
                   help="fid kid precision recall, plus memorization label_fidelity tsne")
    p.add_argument("--protocol", default="torch-fidelity", choices=["torch-fidelity", "clean", "pytorch-fid", "legacy"],
                   help="how images are resized to the network's input: torch-fidelity (default; TF1 bilinear on the whole "
                        "image, as torch-fidelity), clean (clean-fid's PIL bicubic on float), pytorch-fid (torch bilinear), "
                        "legacy (synthxray < 0.3: PIL bicubic + centre crop + uint8; matches no library)")
    p.add_argument("--match_resolution", default="synthetic", choices=["synthetic", "real", "none"],
                   help="compare at one size: synthetic (default) brings the real images to the generator's resolution with "
                        "its training transform; real brings the synthetic images to the real size; none compares native "
                        "sizes (warned when they differ)")
    p.add_argument("--class_mix", default="real", choices=["real", "synthetic"],
                   help="synthetic dataset input: draw it in the real class mix (default) or keep its own mix")
    p.add_argument("--extractor", default="inception",
                   help="inception | dinov2 | dinov2:PATH_OR_HUB_ID | random | a DINOv2 folder | a TorchScript/pickled module file")
    p.add_argument("--per_class", action="store_true", help="add one row per class (matched by class name)")
    p.add_argument("--num_samples", type=int, default=None,
                   help="images per side (random stratified subset; a generator makes this many in the real class proportions)")
    p.add_argument("--num_per_class", type=int, default=None, help="generator input: images per class instead of real proportions")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (new synthetic sample or subset per seed); mean ± std reported")
    p.add_argument("--train", default=None, help="the generator's training set, for memorization and the label-fidelity classifier (default: --real)")
    p.add_argument("--train_split", default="train")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--scheduler", default=None, help="generator input: sampler (ddpm, ddim, dpm, unipc)")
    p.add_argument("--num_inference_steps", type=int, default=None, help="generator input: sampling steps")
    p.add_argument("--guidance_scale", type=float, default=None, help="generator input: guidance scale")
    p.add_argument("--device", default=None)
    p.add_argument("--cache_dir", default=None, help="where real features are cached (default ~/.cache/synthxray/features)")
    p.add_argument("--no_cache", action="store_true", help="do not read or write the real-feature cache")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _synthetic_input(text: str, device: str | None):
    """A generator folder/Hub repo (has synthxray.json) is loaded as a Generator; anything else is data."""
    path = Path(text)
    if path.is_dir() and (path / "synthxray.json").is_file():
        from ..generators import load_generator

        return load_generator(text, **({"device": device} if device else {}))
    return text


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate

    synthetic = _synthetic_input(args.synthetic, args.device)
    gen_kwargs = {k: v for k, v in (("scheduler", args.scheduler), ("num_inference_steps", args.num_inference_steps),
                                    ("guidance_scale", args.guidance_scale)) if v is not None}
    if gen_kwargs and isinstance(synthetic, str):
        raise ValueError("--scheduler/--num_inference_steps/--guidance_scale apply only when --synthetic is a generator")
    if gen_kwargs or not isinstance(synthetic, str):
        gen_kwargs["batch_size"] = args.batch_size
    result = evaluate(
        args.real, synthetic, metrics=args.metrics, extractor=args.extractor, per_class=args.per_class,
        seeds=args.seeds, num_samples=args.num_samples, num_per_class=args.num_per_class, protocol=args.protocol,
        match_resolution=None if args.match_resolution == "none" else args.match_resolution, class_mix=args.class_mix,
        real_split=args.real_split, synthetic_split=args.synthetic_split, train=args.train, train_split=args.train_split,
        batch_size=args.batch_size, device=args.device, cache=not args.no_cache, cache_dir=args.cache_dir,
        generate_kwargs=gen_kwargs or None, output_dir=args.output, progress=not args.quiet,
    )
    from ..processes import distributed_state, is_main_process

    if is_main_process(distributed_state()):  # on N processes, one report (written by the main process)
        print(result.to_markdown())
        print(f"wrote {Path(args.output) / 'evaluation.json'} and evaluation.md")
    return 0
