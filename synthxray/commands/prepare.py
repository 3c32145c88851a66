"""``synthxray prepare``: read DICOM or 16-bit images once, with the window you choose, into a dataset every command reads."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="read a DICOM / 16-bit image folder or a file->label table into an 8-bit dataset folder (pixels and labels only)",
        description="Reads --input once by the pixel rule (DICOM: rescale slope/intercept, then --window or the file's VOI "
                    "LUT / window centre-width, MONOCHROME1 inverted) and writes a save_to_disk folder holding only the images "
                    "and labels: no header field, no file name. Give that folder as --dataset / --real / --check_memorization.",
    )
    p.add_argument("--input", required=True, help="class-folder directory (images and/or .dcm), CSV/JSON file->label table, or any --dataset form")
    p.add_argument("--output_dir", required=True, help="where the dataset folder is written (must not exist, or be empty)")
    p.add_argument("--split", default="train", help="split of --input where it has several")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--window", default=None, metavar="LOW,HIGH",
                        help="map LOW..HIGH to black..white, clipping outside (DICOM: in modality units, e.g. HU); overrides the files' own window")
    window.add_argument("--window_center", type=float, default=None, help="with --window_width: a DICOM-style window")
    window.add_argument("--ignore_file_window", action="store_true",
                        help="DICOM: ignore the files' VOI LUT / window; map them by --intensity instead")
    p.add_argument("--intensity", default="dataset", choices=["dataset", "per-image"],
                   help="12/16-bit images (and DICOM without a window) with no --window: 'dataset' maps all with one window, the "
                        "dataset's smallest to largest value (absolute intensity kept; recorded in the dataset); 'per-image' "
                        "stretches each from its own min to max")
    p.add_argument("--intensity_from", default=None, metavar="FOLDER",
                   help="map 12/16-bit images exactly as FOLDER's were (its recorded mapping: a dataset folder written by "
                        "synthxray prepare or generate, or a generator folder); for a test split or a new site")
    p.add_argument("--window_width", type=float, default=None, help="with --window_center")
    invert = p.add_mutually_exclusive_group()
    invert.add_argument("--invert", dest="invert", action="store_const", const=True, default=None, help="invert every image")
    invert.add_argument("--no_invert", dest="invert", action="store_const", const=False, help="do not invert MONOCHROME1 DICOM files")
    p.set_defaults(func=run)


def window_from_args(args: argparse.Namespace):
    """``(low, high)`` from ``--window`` or ``--window_center``/``--window_width``, else ``None``."""
    from ..pixels import parse_window, window_from_center_width

    if (args.window_center is None) != (args.window_width is None):
        raise ValueError("--window_center and --window_width go together; give both (or --window LOW,HIGH)")
    if args.window_center is not None:
        return window_from_center_width(args.window_center, args.window_width)
    return parse_window(args.window, "--window")


def _as_8bit_png(row: dict) -> dict:
    """The pixel rule, stored as PNG bytes without the source file's name."""
    import io

    from ..pixels import to_8bit

    buf = io.BytesIO()
    to_8bit(row["image"]).save(buf, format="PNG")
    return {"image": {"bytes": buf.getvalue(), "path": None}}


PARTIAL_MARKER = "synthxray_prepare.json"  # in <output_dir>.partial/: the staging folder is prepare's own


def check_partial(staging: Path) -> None:
    """Refuse a ``<output_dir>.partial`` that synthxray prepare did not write (it is deleted and rewritten)."""
    import os

    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        raise FileExistsError(f"{staging} (prepare's staging path for --output_dir) exists and is not a folder; "
                              "move it away or choose another --output_dir")
    if staging.is_dir() and any(staging.iterdir()) and not (staging / PARTIAL_MARKER).is_file():
        names = ", ".join(sorted(os.listdir(staging))[:4])
        raise FileExistsError(f"{staging} (prepare's staging folder for --output_dir) holds files synthxray prepare "
                              f"did not write ({names}; no {PARTIAL_MARKER}); move it away or choose another "
                              "--output_dir")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import shutil

    from ..data import load_dataset
    from ..outputs import DATASET, check_output_dir

    window = window_from_args(args)
    out = check_output_dir(args.output_dir, DATASET, flag=None, beside_foreign=False, replace_needs_flag=True)
    staging = out.with_name(out.name + ".partial")
    check_partial(staging)  # before the input is read: a refused folder costs nothing
    intensity = args.intensity
    if args.intensity_from:
        from ..intensity import recorded_intensity

        if window is not None or args.intensity != "dataset":
            raise ValueError("--intensity_from reuses a recorded mapping; drop --window/--window_center/--intensity")
        intensity = recorded_intensity(args.intensity_from) or "dataset"
    ds = load_dataset(args.input, split=args.split, window=window, use_file_window=not args.ignore_file_window, invert=args.invert,
                      intensity=intensity)
    ds = ds.select_columns(["image", "label"]).map(_as_8bit_png, desc="8-bit")  # plain 16-bit images: the same rule
    if staging.exists():
        shutil.rmtree(staging)  # an interrupted prepare's own (checked above)
    staging.mkdir(parents=True)
    (staging / PARTIAL_MARKER).write_text(json.dumps({"output_dir": str(out)}) + "\n")
    ds.save_to_disk(str(staging / "dataset"))
    if out.exists():
        out.rmdir()  # empty, checked above
    os.replace(staging / "dataset", out)
    shutil.rmtree(staging)
    names = ds.features["label"].names
    print(f"wrote {len(ds)} images ({', '.join(names)}) to {out}")
    return 0
