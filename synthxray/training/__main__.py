"""``accelerate launch -m synthxray.training ddpm|dreambooth|lora [flags]``: the training scripts, installed."""

import sys

from synthxray.training import main

if __name__ == "__main__":
    sys.exit(main())
