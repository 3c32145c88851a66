"""What a site reports after its local steps, and the one rule the server averages it by (plain and SecAgg+ paths).

No Flower import: the plain server app (Message API) and the SecAgg+ one (legacy API) both call
:func:`weighted_losses` on ``(num_examples, metrics)`` pairs.
"""

from __future__ import annotations

from typing import Any, Iterable

WEIGHT_KEY = "num-examples"  # a site's weight in FedAvg and in the loss mean: its training images
LOSS_PREFIX = "train-loss"  # metrics that average over sites (ids, step counts and seconds do not)


def metrics_of(losses: list[float], n: int, seconds: float, partition_id: int, steps: int, **more: float) -> dict[str, float]:
    """A site's reply metrics: ``num-examples`` (FedAvg's weight), mean and last-fifth ``train-loss``, more losses."""
    tail = losses[-max(1, len(losses) // 5):] or [0.0]
    return {WEIGHT_KEY: n, LOSS_PREFIX: sum(losses) / max(len(losses), 1), f"{LOSS_PREFIX}-last": sum(tail) / len(tail),
            "seconds": round(seconds, 2), "partition-id": partition_id, "steps": steps, **more}


def weighted_losses(pairs: Iterable[tuple[float, dict[str, Any]]]) -> dict[str, float]:
    """The example-weighted mean of the sites' ``train-loss*`` metrics over ``(num_examples, metrics)`` pairs."""
    pairs = list(pairs)
    total = sum(n for n, _ in pairs) or 1
    keys = {k for _, m in pairs for k in m if k.startswith(LOSS_PREFIX)}
    return {k: sum(n * float(m[k]) for n, m in pairs if k in m) / total for k in sorted(keys)}
