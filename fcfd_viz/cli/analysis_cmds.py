"""``fcfd probe`` and ``fcfd gap`` (analysis sub-commands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the analysis sub-commands (filled in by the analysis library)."""
