"""Errors meant for the person at the keyboard.

A :class:`UserError` carries one line that says what is wrong and how to fix it. The CLI
prints it to stderr and exits with status 2; the app shows it in an error box.
"""


class UserError(Exception):
    """Bad input from the user (unknown name, missing file, invalid value...)."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the program to stop (``signum`` says which); a run records
    the state ``interrupted`` and can be resumed."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum
