"""Training hooks, kept free of torch so light callers (the app's home page) import fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcfd_viz.train import Trainer


class Callback:
    """Hooks to watch training (the app and notebooks use them; all optional)."""

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, step: int, losses: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: Trainer, record: dict) -> None: ...
    def on_train_end(self, trainer: Trainer, summary: dict) -> None: ...
