"""Training hooks, kept free of torch so light callers (the app's home page) import fast."""

from __future__ import annotations

from typing import Any, Protocol


class TrainerView(Protocol):
    """What a callback may read of the :class:`~fcfd_viz.training.trainer.Trainer` that calls
    it (a protocol, so that this module needs neither torch nor the trainer)."""

    cfg: Any  # the TrainConfig
    model: Any  # the student nn.Module
    distiller: Any  # the Distiller holding student and teacher
    optimizer: Any
    run: Any  # the Run being written, or None
    history: list[dict]  # the metrics records so far (restored ones included on a resume)
    runtime: dict  # device, precision, channels_last
    world: int  # processes training together


class Callback:
    """Hooks to watch training (the app and notebooks use them; all optional)."""

    def on_train_start(self, trainer: TrainerView) -> None: ...
    def on_step_end(self, trainer: TrainerView, step: int, losses: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: TrainerView, record: dict) -> None: ...
    def on_train_end(self, trainer: TrainerView, summary: dict) -> None: ...
