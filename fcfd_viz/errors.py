"""Errors meant for the person at the keyboard.

A :class:`UserError` carries one line that says what is wrong and how to fix it. The CLI
prints it to stderr and exits with status 2; the app shows it in an error box.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (unknown name, missing file, invalid value...)."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the program to stop (``signum`` says which); a run records
    the state ``interrupted`` and can be resumed."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class Diverged(UserError):
    """The loss or the weights became non-finite or exploded; last.pt / best.pt keep the
    last good epoch."""

    def explained(self, epoch: int, done: int, lr: float, limit: float) -> Diverged:
        """This error as the one line a user reads: where it happened (0-based ``epoch``),
        what the checkpoints keep (``done`` epochs finished), the loss ``limit`` and the fix."""
        kept = (
            "no epoch finished, so no checkpoint was written"
            if not done
            else f"last.pt and best.pt keep epoch {done} and earlier"
        )
        return Diverged(
            f"training diverged in epoch {epoch + 1}: {self} (NaN/inf or above "
            f"{limit:g}); {kept}; start again with a lower --lr (now {lr:g}) or loss weights"
        )
