"""The teacher's side of many students' connector fits, computed once (:func:`shared_teacher`).

Fitting the connectors of several students against one teacher repeats work that depends on
the teacher alone: its stage features over the fit data, and, for every teacher-to-student
bridge (``t2s``), the source side of the normal equations (``X^T X`` over the im2col rows of
the teacher's feature: the largest products of the closed-form fit, since the teacher's
features are the wide ones). Inside ``with shared_teacher():`` both are kept and reused by
every fit whose teacher and input images are the same, byte for byte (content fingerprints,
not object identity: each gap report loads its own copy of the teacher). Outside it nothing
is kept, so a long-lived process (the app) holds no features between fits.

The reuse is exact: the same rows in the same order give the same sums, so a shared fit
equals the unshared one (tests/analysis/test_shared_teacher.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from fcfd_viz.analysis.gap.lstsq import Gram

_ACTIVE: list[SharedTeacher] = []  # the innermost shared_teacher() scope last


def _digest(tensors: list[Tensor], extra: str = "") -> str:
    h = hashlib.blake2b(extra.encode(), digest_size=16)
    for t in tensors:
        t = t.detach().cpu().contiguous().reshape(-1)  # 1-d: a 0-d tensor has no byte view
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class SharedTeacher:
    """Teacher features by (teacher, input batch) and teacher-side Grams by (pass, bridge)."""

    def __init__(self) -> None:
        self.features: dict[tuple[str, str], list[Tensor]] = {}
        self.grams: dict[tuple, Gram] = {}
        self.hits = self.misses = 0  # teacher batches reused / computed (tests, benchmarks)

    @staticmethod
    def fingerprint(teacher: nn.Module) -> str:
        """The teacher's weights and buffers (its function in eval mode), as a digest."""
        return _digest(list(teacher.state_dict().values()), type(teacher).__name__)

    @torch.no_grad()
    def forward(self, teacher: nn.Module, key: str, x: Tensor, trace: list[str]) -> list[Tensor]:
        """``teacher.forward_features(x)`` (x: (B, C, H, W)), computed once per (``key``,
        batch content); appends the batch's digest to ``trace`` (the pass, in order)."""
        bkey = _digest([x], str(x.device))
        trace.append(bkey)
        got = self.features.get((key, bkey))
        if got is None:
            self.misses += 1
            got = self.features[(key, bkey)] = teacher.forward_features(x)
        else:
            self.hits += 1
        return got


def active() -> SharedTeacher | None:
    """The innermost :func:`shared_teacher` scope, None outside any."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def shared_teacher() -> Iterator[SharedTeacher]:
    """Share the teacher's features and Grams between the connector fits run inside (a
    nested scope reuses the outer one); everything is dropped when the outermost scope ends."""
    share = active() or SharedTeacher()
    _ACTIVE.append(share)
    try:
        yield share
    finally:
        _ACTIVE.pop()


def gram_key(pass_key: str | None, task: tuple, chunk_rows: int) -> tuple | None:
    """Where a task's source-side Gram is kept: only for a teacher-source bridge of a cached,
    fingerprinted pass (``pass_key``), by stage and the conv's geometry (which fixes im2col)."""
    _, bridge, from_t, k = task
    if pass_key is None or not from_t:
        return None
    conv = bridge[0]
    geometry = (type(conv).__name__, conv.in_channels, conv.kernel_size, conv.stride)
    geometry += (conv.padding, getattr(conv, "output_padding", None))
    return (pass_key, k, geometry, chunk_rows)
