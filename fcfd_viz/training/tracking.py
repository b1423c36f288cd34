"""TensorBoard and Weights & Biases logging of a run: callbacks that rank 0 hands the Trainer.

Every run writes TensorBoard event files into ``RUN/tb/`` (``--no-tensorboard``: none): at
step = epoch, one scalar per number of the epoch's ``metrics.jsonl`` record, tagged by its
key (``loss``, ``losses/<term>``, ``lr``, ``train_top1``, ``test_top1``, ``train_top5`` ...:
nested keys joined by ``/``; ``epoch`` is the step and ``steps`` is left out), so the two
always agree. ``tensorboard --logdir runs/`` shows every run. A resumed run first logs the
epochs of ``metrics.jsonl`` whose scalars ``tb/`` lacks (a kill between the metrics line and
the event write) and never a (tag, epoch) that is there: no step appears twice.

``--wandb PROJECT`` also sends the same scalars to Weights & Biases (not a dependency:
``pip install wandb``; ``WANDB_MODE=offline`` keeps it off the network), one W&B run per
session named after the run directory, with ``config.json`` as its config; a resumed run is a
new W&B run that logs the whole history first.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fcfd_viz.errors import UserError
from fcfd_viz.runs.layout import TB_DIR
from fcfd_viz.training.callbacks import Callback, TrainerView

NOT_LOGGED = ("epoch", "steps")  # the step itself; the batch count


def scalars(record: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a metrics record by tag (nested dicts joined with ``/``)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if not prefix and key in NOT_LOGGED:
            continue
        if isinstance(value, dict):
            out.update(scalars(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def logged(folder: Path) -> dict[str, set[int]]:
    """Tag -> the steps that the event files in ``folder`` already hold."""
    if not folder.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return {tag: {e.step for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def _need(module: str, flag: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise UserError(f"{flag} needs the {module} package: pip install {module}")


class TensorBoard(Callback):
    """Event files in ``run_dir/tb``, flushed after every epoch."""

    def __init__(self, run_dir: str | Path) -> None:
        _need("tensorboard", "TensorBoard logging (on unless --no-tensorboard)")
        self.folder = Path(run_dir) / TB_DIR
        self.writer = None

    def on_train_start(self, trainer: TrainerView) -> None:
        from torch.utils.tensorboard import SummaryWriter

        done = logged(self.folder)  # a resumed run's earlier sessions
        self.writer = SummaryWriter(str(self.folder))
        for record in trainer.history:  # restored by a resume: log what tb/ lacks
            self._log(record, done)
        self.writer.flush()

    def on_epoch_end(self, trainer: TrainerView, record: dict) -> None:
        self._log(record)
        self.writer.flush()

    def on_train_end(self, trainer: TrainerView, summary: dict) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the event file (also after a failed or interrupted run)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _log(self, record: dict, done: dict[str, set[int]] | None = None) -> None:
        step = int(record["epoch"])
        for tag, value in scalars(record).items():
            if step not in (done or {}).get(tag, ()):
                self.writer.add_scalar(tag, value, step)


class WeightsAndBiases(Callback):
    """The same scalars in a W&B run of ``project`` named after the run directory."""

    def __init__(self, project: str, run_dir: str | Path) -> None:
        _need("wandb", "--wandb")
        self.project, self.run_dir, self.wb = project, Path(run_dir), None

    def on_train_start(self, trainer: TrainerView) -> None:
        import wandb

        config = trainer.run.config() if trainer.run is not None else {}
        try:
            self.wb = wandb.init(project=self.project, name=self.run_dir.name, config=config)
        except Exception as e:  # no login, no network: say how to go on
            raise UserError(
                f"--wandb {self.project}: wandb.init failed ({type(e).__name__}: {e}); run "
                "`wandb login`, or set WANDB_MODE=offline"
            ) from None
        for record in trainer.history:
            self.on_epoch_end(trainer, record)

    def on_epoch_end(self, trainer: TrainerView, record: dict) -> None:
        self.wb.log(scalars(record), step=int(record["epoch"]))

    def on_train_end(self, trainer: TrainerView, summary: dict) -> None:
        self.close()

    def close(self) -> None:
        if self.wb is not None:
            self.wb.finish()
            self.wb = None


def tracking_callbacks(
    run_dir: str | Path, tensorboard: bool = True, wandb: str | None = None
) -> list[Callback]:
    """The logging callbacks asked for (rank 0's, for a run writing ``run_dir``); a missing
    package is a one-line UserError before any work."""
    out: list[Callback] = [TensorBoard(run_dir)] if tensorboard else []
    if wandb:
        out.append(WeightsAndBiases(wandb, run_dir))
    return out
