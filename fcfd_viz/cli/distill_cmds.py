"""``fcfd distill`` (distillation sub-command)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the distillation sub-commands."""
