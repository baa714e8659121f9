"""The "about N s left" of the dashboard's training bar: from the measured step rate, over every
phase still to come, and never growing.

Why not ``TrainProgress.eta_s``: it covers the current phase only and restarts its clock with each
phase, so the figure jumped up at the start of the next phase ("about 23 s left" -> "about 47 s
left") and left out the phases after it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tinylogbert.model.training import TrainConfig, TrainProgress

HEAD_STEPS_PER_EPOCH = 10  # Trainer.fit_head's steps per head epoch


@dataclass
class TrainingEta:
    """Feed it every ``TrainProgress``; ``seconds_left`` is the estimate to show."""

    config: TrainConfig
    clock: Callable[[], float] = time.perf_counter
    _steps_per_epoch: int = 0
    _rate: dict[str, float] = field(default_factory=dict)  # measured seconds per step, by phase
    _shown: float | None = None
    _shown_at: float = 0.0

    def _planned(self, phase: str, mlm_total: int) -> list[tuple[str, int]]:
        """The phases after ``phase`` and their steps."""
        epoch = self._steps_per_epoch or max(1, mlm_total // max(self.config.epochs, 1))
        later = [("clean", self.config.clean_epochs * epoch),
                 ("head", self.config.head_epochs * HEAD_STEPS_PER_EPOCH)]
        order = ["mlm", "clean", "head"]
        return [(p, n) for p, n in later if order.index(p) > order.index(phase) and n > 0]

    def update(self, p: TrainProgress) -> float:
        """The seconds left after ``p``: the current phase at its own measured rate, later phases
        at their rate if measured (else the encoder's, an over-estimate for the cheap head), and
        at most what was shown before minus the time since."""
        if p.phase == "mlm" and not self._steps_per_epoch:
            self._steps_per_epoch = max(1, p.total_steps // max(self.config.epochs, 1))
        rate = p.elapsed_s / max(p.step, 1)
        self._rate[p.phase] = rate
        encoder_rate = self._rate.get("mlm", rate)
        estimate = (p.total_steps - p.step) * rate + sum(
            n * self._rate.get(phase, encoder_rate)
            for phase, n in self._planned(p.phase, p.total_steps if p.phase == "mlm" else 0))
        now = self.clock()
        if self._shown is not None:
            estimate = min(estimate, max(0.0, self._shown - (now - self._shown_at)))
        self._shown, self._shown_at = estimate, now
        return estimate
