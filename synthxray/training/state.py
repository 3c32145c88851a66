"""The step, epoch and training-seconds counters a run keeps in every checkpoint."""

from __future__ import annotations

import time

import torch


class TrainState:
    """Step, epoch and training-seconds counters, saved inside every checkpoint.

    ``seconds`` is the wall-clock time spent in the step loop over all runs so far (resumed runs
    add to it), which is what ``--max_train_minutes`` budgets. On N processes the budget reads the
    main process's clock (:meth:`sync_clock`), so every rank takes the same learning rate and stops
    at the same step.
    """

    def __init__(self) -> None:
        self.step = 0
        self.epoch = 0
        self.seconds = 0.0
        self._clock: float | None = None
        self._shared: float | None = None

    def start_clock(self) -> None:
        """Start counting this run's time on top of the seconds already in the state."""
        self._base, self._clock, self._shared = self.seconds, time.monotonic(), None

    def elapsed(self) -> float:
        """Training seconds so far, this run included (this process's clock)."""
        return self.seconds if self._clock is None else self._base + time.monotonic() - self._clock

    def sync_clock(self, accelerator) -> None:
        """Adopt the main process's :meth:`elapsed` on every process (a no-op on one process)."""
        if accelerator.num_processes == 1:
            return
        from accelerate.utils import broadcast

        seconds = torch.tensor([self.elapsed()], dtype=torch.float64, device=accelerator.device)
        self._shared = float(broadcast(seconds, from_process=0).item())

    def budget_seconds(self) -> float:
        """The training time budgets are judged by: the main process's after :meth:`sync_clock`."""
        return self.elapsed() if self._shared is None else self._shared

    def state_dict(self) -> dict[str, float]:
        return {"step": self.step, "epoch": self.epoch, "seconds": self.elapsed()}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.seconds = float(state.get("seconds", 0.0))
        if self._clock is not None:
            self.start_clock()
