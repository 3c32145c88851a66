"""``synthxray push generator|dataset|classifier DIR REPO_ID``: publish a folder on the Hub with its card."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push",
        help="push a generator, synthetic dataset or classifier folder to the Hub (endpoint: $HF_ENDPOINT)",
        description=(
            "Upload a folder to a Hugging Face Hub repo with a model/dataset card written from its metadata. "
            "The Hub is https://huggingface.co unless HF_ENDPOINT names another (e.g. a private hub)."
        ),
    )
    p.add_argument("kind", choices=["generator", "dataset", "classifier"], help="what the folder holds")
    p.add_argument("folder", metavar="DIR", help="generator folder, save_to_disk dataset folder, or classifier folder")
    p.add_argument("repo_id", metavar="REPO_ID", help="user/name or org/name (created when missing)")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private (ignored if it exists)")
    p.add_argument("--revision", "--branch", dest="revision", default=None, help="branch to push to (created from main when missing)")
    p.add_argument("--token", default=None, help="Hub write token (default: HF_TOKEN or the token saved by `hf auth login`)")
    p.add_argument("--commit_message", default=None, help="commit message")
    p.add_argument("--no_card", action="store_true", help="do not (re)write README.md from the folder's metadata")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import HubPushError, push

    try:
        result = push(
            args.kind, args.folder, args.repo_id, private=args.private, revision=args.revision, token=args.token,
            commit_message=args.commit_message, write_card=not args.no_card,
        )
    except HubPushError as exc:
        print(f"synthxray push: error: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {args.kind} {args.folder} to {result}")
    return 0
