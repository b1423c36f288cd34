"""The functional gap over seeds: students of the same method grouped, mean ± std per stage,
and two methods compared seed by seed (paired: the same seed means the same training subset
and initialisation), with a plain-English reading that says when a difference does not hold.

One seed of a short run sits inside the noise (the same method's gap moves tens of percent
between seeds), so a single comparison can point either way; these are what the app's
Functional gap page and ``benchmarks/gap.py`` report.

>>> per_seed = split_by_seed(report)            # doctest: +SKIP
>>> groups = group_over_seeds(per_seed)         # {"kd (fitted)": SeedGroup, ...}
>>> paired_gap(per_seed, "fcfd (fitted)", "kd (fitted)").reading()  # doctest: +SKIP
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from fcfd_viz.analysis.gap.result import OWN, GapEntry, GapResult


def group_name(entry: GapEntry) -> str:
    """``"kd (fitted)"``: the entry's method (its label when unknown) and its bridges."""
    return f"{entry.method or entry.student} ({entry.bridges})"


def without_own(result: GapResult, keep: bool = False) -> GapResult:
    """``result`` without the entries seen through a student's own bridges (unless ``keep``):
    fitted connectors are the comparison every student gets alike."""
    if keep:
        return result
    return replace(result, entries={n: e for n, e in result.entries.items() if e.bridges != OWN})


def split_by_seed(result: GapResult, seeds: Mapping[str, int | None]) -> dict[int, GapResult]:
    """One :class:`GapResult` per seed from a result of many students (``seeds``: student
    label -> its training seed, e.g. a gap report's ``inputs[label]["seed"]``; None counts as
    seed 0). Entries are renamed :func:`group_name`; where one seed holds two students of the
    same method, both keep their own names (they are different settings, not seeds)."""
    by_seed: dict[int, dict[str, GapEntry]] = {}
    for name, e in result.entries.items():
        by_seed.setdefault(seeds.get(e.student) or 0, {})[name] = e
    out = {}
    for seed, entries in sorted(by_seed.items()):
        groups = [group_name(e) for e in entries.values()]
        renamed = {
            (g if groups.count(g) == 1 else name): e
            for (name, e), g in zip(entries.items(), groups)
        }
        out[seed] = replace(result, entries=renamed)
    return out


@dataclass
class SeedGroup:
    """One group's gaps over seeds; tensors are (seeds, stages), aligned with ``stages``."""

    name: str
    stages: list[int]
    seeds: list[int]
    appearance: Tensor
    functional: Tensor
    accuracy: list[float]  # the students' own test top-1, per seed

    def mean(self, what: str = "functional") -> Tensor:
        """(stages,) mean over seeds."""
        return getattr(self, what).mean(0)

    def std(self, what: str = "functional") -> Tensor:
        """(stages,) sample standard deviation over seeds (0 with one seed)."""
        t = getattr(self, what)
        return t.std(0) if t.shape[0] > 1 else torch.zeros(t.shape[1], dtype=t.dtype)


def group_over_seeds(per_seed: Mapping[int, GapResult]) -> dict[str, SeedGroup]:
    """Every entry name found in ``per_seed`` (seed -> result), its values stacked over the
    seeds that have it, in first-seen order."""
    names: list[str] = []
    for res in per_seed.values():
        names += [n for n in res.entries if n not in names]
    stages = next(iter(per_seed.values())).stages if per_seed else []
    groups = {}
    for n in names:
        have = [(s, r.entries[n]) for s, r in sorted(per_seed.items()) if n in r.entries]
        groups[n] = SeedGroup(
            n,
            list(stages),
            [s for s, _ in have],
            torch.stack([e.appearance for _, e in have]),  # (seeds, S)
            torch.stack([e.functional for _, e in have]),  # (seeds, S)
            [e.accuracy for _, e in have],
        )
    return groups


@dataclass
class PairedGap:
    """``a`` vs ``b`` seed by seed: ``reduction_pct[i, k]`` = 100 (KL_b - KL_a) / KL_b at stage
    ``stages[k]`` for ``seeds[i]`` (positive: ``a`` has the smaller functional gap)."""

    a: str
    b: str
    stages: list[int]
    seeds: list[int]
    reduction_pct: Tensor  # (seeds, S)
    a_below: Tensor  # (seeds, S) bool: KL_a < KL_b

    def wins(self) -> list[int]:
        """Per stage, the seeds where ``a``'s functional gap is below ``b``'s."""
        return self.a_below.sum(0).tolist()

    def below_everywhere(self) -> int:
        """Seeds where ``a`` is below ``b`` at every stage."""
        return int(self.a_below.all(1).sum()) if self.seeds else 0

    def holds(self) -> bool:
        """``a`` below ``b`` at most stages in most seeds, on average too: a majority of seeds
        at a majority of stages, and a positive mean reduction at each of those stages (never
        with fewer than two seeds)."""
        n = len(self.seeds)
        if n < 2:  # one seed cannot separate a difference from noise
            return False
        good = [
            w * 2 > n and m > 0 for w, m in zip(self.wins(), self.reduction_pct.mean(0).tolist())
        ]
        return sum(good) * 2 > len(good)

    def to_dict(self) -> dict:
        """``{"a", "b", "per_stage": {k: {"wins", "seeds", "reduction_pct"}},
        "seeds_below_at_every_stage"}`` (what benchmarks/gap.py writes)."""
        per_stage = {
            str(k): {
                "wins": w,
                "seeds": len(self.seeds),
                "reduction_pct": self.reduction_pct[:, i].tolist(),
            }
            for i, (k, w) in enumerate(zip(self.stages, self.wins()))
        }
        return {
            "a": self.a,
            "b": self.b,
            "per_stage": per_stage,
            "seeds_below_at_every_stage": self.below_everywhere(),
        }

    def reading(self) -> str:
        """One or two sentences: per stage, in how many seeds ``a`` is below ``b`` and the mean
        reduction; then whether that holds, said plainly."""
        n = len(self.seeds)
        if n == 0:
            return f"No seed has both {self.a} and {self.b}: nothing to compare."
        mean = self.reduction_pct.mean(0).tolist()
        parts = [
            f"stage {k}: {w}/{n} seeds, {m:+.0f}%"
            for k, w, m in zip(self.stages, self.wins(), mean)
        ]
        line = (
            f"Paired by seed ({n} seed{'s' * (n > 1)}: same training subset), {self.a}'s "
            f"functional gap vs {self.b}'s (KL reduction, + = smaller): {'; '.join(parts)}; "
            f"below at every stage in {self.below_everywhere()}/{n}."
        )
        if n == 1:
            return line + " One seed cannot tell a difference from noise: add seeds."
        if self.holds():
            return line + f" {self.a} has the smaller functional gap in most seeds."
        return line + (
            f" This does not hold here: {self.a} is not below {self.b} in most seeds at most "
            "stages, so the difference is inside the seed-to-seed spread."
        )


def paired_gap(per_seed: Mapping[int, GapResult], a: str, b: str) -> PairedGap:
    """Compare entries ``a`` and ``b`` in every seed that has both (see :class:`PairedGap`)."""
    seeds = [s for s, r in sorted(per_seed.items()) if a in r.entries and b in r.entries]
    stages = next(iter(per_seed.values())).stages if per_seed else []
    if not seeds:
        empty = torch.zeros(0, len(stages), dtype=torch.float64)
        return PairedGap(a, b, list(stages), [], empty, empty.bool())
    fa = torch.stack([per_seed[s].entries[a].functional for s in seeds])  # (n, S)
    fb = torch.stack([per_seed[s].entries[b].functional for s in seeds])  # (n, S)
    red = torch.where(fb > 0, 100.0 * (fb - fa) / fb.clamp_min(1e-300), torch.zeros_like(fb))
    return PairedGap(a, b, list(stages), seeds, red, fa < fb)


def fmt_mean_std(values: list[float], digits: int = 3) -> str:
    """``"0.044 ± 0.015"`` (sample std; 0 for one value)."""
    m = statistics.mean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}"
