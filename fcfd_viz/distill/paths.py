"""The mixed-path plan of FCFD.

A path says which network runs each stage. Mixed paths switch network once, after stage
``switch`` (1 <= switch <= num_stages - 2): ``S S T T`` is student stages 0-1, the s->t
bridge of stage 1, then teacher stages 2-3 and the teacher's head. Every step samples a few
distinct mixed paths from the candidate set of a mode:

* ``bi``: both directions;  ``s2t``: student->teacher only;  ``t2s``: teacher->student only;
* ``nomix``: none (FCFD reduces to appearance + KD).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fcfd_viz.errors import UserError

MODES = ("bi", "s2t", "t2s", "nomix")


@dataclass(frozen=True)
class MixedPath:
    """A path that runs stages ``0..switch`` on one network and the rest on the other."""

    switch: int
    direction: str  # "s2t" or "t2s"
    num_stages: int

    @property
    def first(self) -> str:
        return "S" if self.direction == "s2t" else "T"

    @property
    def name(self) -> str:
        """e.g. ``SSTT`` for s2t with switch 1 in a 4-stage pair."""
        second = "T" if self.first == "S" else "S"
        return self.first * (self.switch + 1) + second * (self.num_stages - self.switch - 1)


def candidates(num_stages: int, mode: str = "bi") -> list[MixedPath]:
    """All mixed paths of ``mode`` for a pair with ``num_stages`` stages (stem included)."""
    if mode not in MODES:
        raise UserError(f"unknown path mode {mode!r}; choose one of {', '.join(MODES)}")
    dirs = {"bi": ("s2t", "t2s"), "s2t": ("s2t",), "t2s": ("t2s",), "nomix": ()}[mode]
    return [MixedPath(k, d, num_stages) for d in dirs for k in range(1, num_stages - 1)]


def sample_paths(paths: list[MixedPath], n: int, generator: torch.Generator) -> list[MixedPath]:
    """``n`` distinct paths (all of them if fewer), in the generator's random order."""
    if n >= len(paths):
        return list(paths)
    order = torch.randperm(len(paths), generator=generator)[:n].tolist()
    return [paths[i] for i in order]
