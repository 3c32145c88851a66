"""The sampler names (``--scheduler``, ``--sample_scheduler``, ``generate(scheduler=...)``), written once.

Every diffusion backend maps each name to a diffusers scheduler (``generators.ddpm.make_scheduler``,
``generators.stable_diffusion.make_sd_scheduler``). No imports, so the CLI lists them without loading diffusers.
"""

from __future__ import annotations

SCHEDULERS = ("ddpm", "ddim", "dpm", "dpm-sde", "unipc")
