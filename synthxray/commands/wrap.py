"""``synthxray wrap``: turn a diffusers pipeline someone else trained into a synthxray generator folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..samplers import SCHEDULERS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wrap", help="wrap a diffusers model (folder or Hub repo without synthxray.json) as a generator")
    p.add_argument("--model", required=True, action="append",
                   help="diffusers folder or Hub repo id; repeat as --model CLASS=SOURCE for one unconditional "
                        "pipeline per class")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--prompt", action="append", default=[], metavar="CLASS=TEXT",
                   help="text-to-image models: the prompt that draws a class (repeat once per class)")
    p.add_argument("--classes", default=None,
                   help="class-conditional models (DiT): comma-separated id2label names to use as classes")
    p.add_argument("--negative_prompt", default=None, help="default negative prompt (text-to-image models)")
    p.add_argument("--guidance_scale", type=float, default=None, help="default guidance scale")
    p.add_argument("--num_inference_steps", type=int, default=None, help="default number of sampler steps")
    p.add_argument("--size", type=int, default=None, help="default image height and width (text-to-image models)")
    p.add_argument("--scheduler", choices=("native", *SCHEDULERS), default=None,
                   help="default sampler (native: the one the pipeline ships with)")
    p.add_argument("--grayscale", action="store_true", help="convert RGB output to one channel (L)")
    p.add_argument("--device", default="cpu", help="where the model is loaded to be re-saved (default cpu)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                   help="weights' dtype in the written folder (default: float32 on cpu, float16 on cuda)")
    p.add_argument("--output_dir", required=True, help="the synthxray generator folder to write (must be new or empty)")
    p.set_defaults(func=run)


def parse_pairs(values: list[str], flag: str) -> dict[str, str]:
    """``CLASS=VALUE`` flags as a dict, with errors naming the flag."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{flag} expects CLASS=VALUE, got {value!r}")
        if name in out:
            raise ValueError(f"{flag} gives class {name!r} twice")
        out[name] = text
    return out


def model_argument(values: list[str]) -> str | dict[str, str]:
    """One ``--model`` source, or ``{class: source}`` from repeated ``--model CLASS=SOURCE``."""
    if len(values) == 1 and ("=" not in values[0] or Path(values[0]).exists()):
        return values[0]
    return parse_pairs(values, "--model")


def run(args: argparse.Namespace) -> int:
    from ..generators import load_generator

    out = Path(args.output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--output_dir {out} already exists and is not empty; choose a new folder")
    kwargs = {
        "prompts": parse_pairs(args.prompt, "--prompt") or None,
        "classes": [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None,
        "negative_prompt": args.negative_prompt, "guidance_scale": args.guidance_scale,
        "num_inference_steps": args.num_inference_steps, "size": args.size, "scheduler": args.scheduler,
        "grayscale": args.grayscale, "device": args.device,
    }
    if args.dtype:
        import torch

        kwargs["torch_dtype"] = getattr(torch, args.dtype)
    gen = load_generator(model_argument(args.model), revision=args.revision, **kwargs)
    gen.save_pretrained(out)
    sources = [s["source"] + (f"@{s['revision']}" if s.get("revision") else "")
               for s in gen.info.extra.get("sources", {}).values()]
    license_ = gen.info.extra.get("license") or "unknown (no license in the model card)"
    print(f"wrote {out}: a {gen.info.extra['kind']} generator with classes {gen.class_names} "
          f"from {', '.join(sources)} "
          f"(license {license_}); load it with load_generator({str(out)!r})")
    return 0
