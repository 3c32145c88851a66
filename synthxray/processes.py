"""The processes a command was launched on (``accelerate launch``, ``torchrun``), and the one rule for sharing work.

Under one process nothing here initialises anything: :func:`launched_processes` reads the launcher's
``WORLD_SIZE`` and :func:`distributed_state` returns ``None``, so single-process code pays nothing.
On N processes :func:`map_shards` hands each process a contiguous share of a list of work items
(accelerate's ``split_between_processes``, no padding, so no item is done twice) and gathers every
process's results back in the items' order (``gather_object``: rank 0's share, then rank 1's, ...).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def launched_processes() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 when not launched by one)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def process_state():
    """accelerate's ``PartialState`` (one process when not launched; ``ACCELERATE_USE_CPU=1``: CPU processes, gloo)."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def distributed_state():
    """The ``PartialState`` when launched on several processes, else ``None`` (and accelerate untouched)."""
    if launched_processes() == 1:
        return None
    state = process_state()
    return state if state.num_processes > 1 else None


def is_main_process(state=None) -> bool:
    """True on the process that writes files (always, under one process)."""
    return state is None or state.is_main_process


def map_shards(items: Sequence[T], fn: Callable[[list[T]], list[R]], state=None) -> list[R]:
    """``fn(items)`` computed in shares: each process runs ``fn`` on its contiguous share of ``items``.

    ``fn`` takes a list of items and returns a list of results (any picklable objects); the results of
    every process come back to every process concatenated in the order of ``items``. Every process must
    call this with the same ``items`` (it is a collective). Under one process (``state`` None) it is
    ``fn(list(items))``.
    """
    if state is None or state.num_processes == 1:
        return fn(list(items))
    from accelerate.utils import gather_object

    with state.split_between_processes(list(items)) as mine:
        local = list(fn(list(mine)))
    return gather_object(local)


def broadcast(value: Any, state=None) -> Any:
    """The main process's ``value`` on every process (a picklable object); ``value`` itself under one process."""
    if state is None or state.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]
