"""Frozen teacher/student features for a connector fit, computed once and cached
(:class:`FeaturePairs`), by stage (lists) or by FPN level (dicts)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor

from fcfd_viz.analysis.gap.fit_config import FitConfig
from fcfd_viz.analysis.gap.shared_teacher import active
from fcfd_viz.errors import UserError

Feats = list[Tensor] | dict[str, Tensor]  # one network's features, by stage or level


def _keys(f) -> list:
    return list(f.keys()) if isinstance(f, dict) else list(range(len(f)))


def _pick(f, idx):  # rows ``idx`` of every feature
    return {k: v[idx] for k, v in f.items()} if isinstance(f, dict) else [v[idx] for v in f]


def _rows(f) -> int:
    return len(f[_keys(f)[0]])


class FeaturePairs:
    """Frozen teacher/student features over a loader, cached or recomputed per epoch.

    ``extract(batch) -> (teacher features, student features)``, each a list (by stage) or a
    dict (by FPN level) of (B, ...) tensors; ``per_image`` the floats of both per image (the
    cache holds ``n * per_image`` floats when that fits ``cfg.cache_mb``).
    """

    def __init__(self, extract, loader, per_image: int, cfg: FitConfig) -> None:
        self.extract, self.loader = extract, loader
        self.batch_size = cfg.batch_size
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.seed, self.passes = cfg.seed, 0
        self.cached = self.fits_cache(loader, per_image, cfg)
        self.t: Feats = []
        self.s: Feats = []
        self.n = 0
        # a fingerprint of the teacher side of the cached pass (its weights and the images in
        # order), set by the caller when features are shared (:mod:`.shared_teacher`): fits
        # with the same key have the same teacher rows
        self.t_key: str | None = None
        if self.cached:
            ts, ss = [], []
            for t, s in self._from_loader():
                ts.append(t)
                ss.append(s)
            if not ts:
                raise UserError("the training loader for the connector fit is empty")
            self.t, self.s = self._cat(ts), self._cat(ss)
            self.n = _rows(self.t)

    @staticmethod
    def fits_cache(loader, per_image: int, cfg: FitConfig) -> bool:
        """Whether the features of ``loader``'s dataset fit ``cfg.cache_mb`` (then cached)."""
        n = len(loader.dataset) if hasattr(loader, "dataset") else None
        return n is not None and n * per_image * 4 / 2**20 <= cfg.cache_mb

    @staticmethod
    def _cat(batches: list) -> Feats:
        out = {k: torch.cat([b[k] for b in batches]) for k in _keys(batches[0])}
        return out if isinstance(batches[0], dict) else list(out.values())

    @torch.no_grad()
    def _from_loader(self) -> Iterator[tuple[Feats, Feats]]:
        # the training split's augmentation draws from torch's global generator: seed it for
        # the pass (and give the caller's state back), so a fit is a function of cfg.seed
        self.passes += 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 100_003 + self.passes)
            for batch in self.loader:
                yield self.extract(batch)

    def epoch(self, shuffle: bool = True) -> Iterator[tuple[Feats, Feats]]:
        if not self.cached:
            n = 0
            for t, s in self._from_loader():
                n += _rows(t)
                yield t, s
            self.n = n
            return
        if not shuffle:  # in order: slices are views, no copy of the features per pass
            for i in range(0, self.n, self.batch_size):
                idx = slice(i, i + self.batch_size)
                yield _pick(self.t, idx), _pick(self.s, idx)
            return
        order = torch.randperm(self.n, generator=self.gen).to(self.t[_keys(self.t)[0]].device)
        for i in range(0, self.n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield _pick(self.t, idx), _pick(self.s, idx)


def _staged_pairs(teacher, student, loader, input_shape, cfg: FitConfig, device) -> FeaturePairs:
    """:class:`FeaturePairs` of two staged nets' stage features (lists by stage)."""
    per_image = sum(
        math.prod(s)
        for s in teacher.feature_shapes(input_shape) + student.feature_shapes(input_shape)
    )

    # shared only when cached: recomputed passes draw new augmentations, which a shared
    # store would keep, pass after pass
    share = active() if FeaturePairs.fits_cache(loader, per_image, cfg) else None
    trace: list[str] = []
    key = share.fingerprint(teacher) if share is not None else ""

    def extract(batch):
        x = batch[0].to(device)  # (B, C, H, W)
        t = share.forward(teacher, key, x, trace) if share else teacher.forward_features(x)
        return t, student.forward_features(x)

    pairs = FeaturePairs(extract, loader, per_image, cfg)
    if share is not None:
        pairs.t_key = hashlib.blake2b("/".join([key, *trace]).encode()).hexdigest()
    return pairs
