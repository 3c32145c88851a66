"""Run an augmentation-ratio experiment: ``accelerate launch train_scripts/run_experiment.py --config C``.

With several processes the (backbone, recipe, seed) runs are shared out between them.
"""

import argparse
import sys

from synthxray.experiments import run_experiment


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="experiment spec (.yaml or .json)")
    parser.add_argument("--output_dir", default=None, help="override the spec's output_dir")
    args = parser.parse_args(argv)
    results = run_experiment(args.config, **({"output_dir": args.output_dir} if args.output_dir else {}))
    if results.markdown:
        print(results.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
