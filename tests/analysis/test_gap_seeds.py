"""The gap over seeds: grouping, paired comparison and its plain-English verdict, on results
whose values are set by hand (so every number below is known in advance)."""

from __future__ import annotations

import pytest
import torch

from fcfd_viz.analysis.gap.result import FITTED, OWN, GapEntry, GapResult
from fcfd_viz.analysis.gap.seeds import (
    group_over_seeds,
    paired_gap,
    split_by_seed,
    without_own,
)
from fcfd_viz.viz import gap as viz_gap

STAGES = [1, 2, 3]


def entry(label: str, method: str, functional, bridges: str = FITTED) -> GapEntry:
    f = torch.tensor(functional, dtype=torch.float64)
    return GapEntry(
        label, bridges, method, 2 * f, f, torch.full((3,), float("nan")), {"SSSS": 90.0}
    )


def merged(values: dict[tuple[str, int], list[float]]) -> tuple[GapResult, dict]:
    """One result of many students, as the app merges them: label ``method: run-s<seed>``."""
    entries, seeds = {}, {}
    for (method, seed), f in values.items():
        label = f"{method}: defaults/{method}-s{seed}"
        entries[f"{label} ({FITTED})"] = entry(label, method, f)
        seeds[label] = seed
    return GapResult("eval", STAGES, 100, 50, 99.0, entries), seeds


KD = {0: [0.10, 0.20, 0.30], 1: [0.10, 0.20, 0.30], 2: [0.10, 0.20, 0.30]}


def test_split_and_group_give_mean_and_spread_per_method():
    fcfd = {0: [0.05, 0.10, 0.15], 1: [0.07, 0.10, 0.45], 2: [0.06, 0.16, 0.15]}
    result, seeds = merged(
        {**{("kd", s): v for s, v in KD.items()}, **{("fcfd", s): v for s, v in fcfd.items()}}
    )
    per_seed = split_by_seed(result, seeds)
    assert sorted(per_seed) == [0, 1, 2]
    assert set(per_seed[1].entries) == {"kd (fitted)", "fcfd (fitted)"}
    groups = group_over_seeds(per_seed)
    g = groups["fcfd (fitted)"]
    assert g.seeds == [0, 1, 2] and g.functional.shape == (3, 3)
    assert torch.allclose(g.mean(), torch.tensor([0.06, 0.12, 0.25], dtype=torch.float64))
    assert torch.allclose(g.std()[0], torch.tensor(0.01, dtype=torch.float64))
    assert torch.allclose(g.mean("appearance"), 2 * g.mean())
    assert torch.equal(groups["kd (fitted)"].std(), torch.zeros(3, dtype=torch.float64))


def test_paired_counts_seeds_and_says_when_it_holds():
    fcfd = {0: [0.05, 0.10, 0.15], 1: [0.05, 0.10, 0.40], 2: [0.05, 0.25, 0.15]}
    result, seeds = merged(
        {**{("kd", s): v for s, v in KD.items()}, **{("fcfd", s): v for s, v in fcfd.items()}}
    )
    pair = paired_gap(split_by_seed(result, seeds), "fcfd (fitted)", "kd (fitted)")
    assert pair.wins() == [3, 2, 2] and pair.below_everywhere() == 1
    assert pair.reduction_pct[0].tolist() == pytest.approx([50.0, 50.0, 50.0])
    assert pair.reduction_pct[1, 2].item() == pytest.approx(-100 / 3)
    assert pair.holds()
    text = pair.reading()
    assert "stage 1: 3/3 seeds, +50%" in text and "below at every stage in 1/3" in text
    assert "smaller functional gap in most seeds" in text
    d = pair.to_dict()
    assert d["per_stage"]["2"]["wins"] == 2 and d["seeds_below_at_every_stage"] == 1


def test_paired_says_plainly_when_it_does_not_hold():
    fcfd = {0: [0.12, 0.10, 0.35], 1: [0.08, 0.25, 0.35], 2: [0.12, 0.25, 0.25]}
    result, seeds = merged(
        {**{("kd", s): v for s, v in KD.items()}, **{("fcfd", s): v for s, v in fcfd.items()}}
    )
    pair = paired_gap(split_by_seed(result, seeds), "fcfd (fitted)", "kd (fitted)")
    assert pair.wins() == [1, 1, 1] and not pair.holds()
    assert "does not hold here" in pair.reading()


def test_one_seed_is_called_noise_and_missing_partners_are_skipped():
    result, seeds = merged({("kd", 0): KD[0], ("fcfd", 0): [0.01, 0.01, 0.01], ("kd", 1): KD[1]})
    pair = paired_gap(split_by_seed(result, seeds), "fcfd (fitted)", "kd (fitted)")
    assert pair.seeds == [0]  # seed 1 has no fcfd student
    assert "One seed cannot tell" in pair.reading() and not pair.holds()
    none = paired_gap(split_by_seed(result, seeds), "dkd (fitted)", "kd (fitted)")
    assert none.seeds == [] and "nothing to compare" in none.reading()


def test_two_settings_of_one_method_in_a_seed_keep_their_names():
    result, seeds = merged({("kd", 0): KD[0]})
    result.entries["fcfd: a (fitted)"] = entry("fcfd: a", "fcfd", [0.1, 0.1, 0.1])
    result.entries["fcfd: b (fitted)"] = entry("fcfd: b", "fcfd", [0.2, 0.2, 0.2])
    result.entries["fcfd: b (own bridges)"] = entry("fcfd: b", "fcfd", [9.0, 9.0, 9.0], OWN)
    seeds.update({"fcfd: a": 0, "fcfd: b": 0})
    names = set(split_by_seed(result, seeds)[0].entries)
    assert names == {"kd (fitted)", "fcfd: a (fitted)", "fcfd: b (fitted)", "fcfd (own bridges)"}
    assert "fcfd: b (own bridges)" not in without_own(result).entries
    assert len(without_own(result, keep=True).entries) == 4


def test_figures_show_error_bars_over_seeds():
    fcfd = {0: [0.05, 0.10, 0.15], 1: [0.07, 0.10, 0.45]}
    result, seeds = merged(
        {**{("kd", s): KD[s] for s in (0, 1)}, **{("fcfd", s): v for s, v in fcfd.items()}}
    )
    per_seed = split_by_seed(result, seeds)
    fig = viz_gap.gap_seeds_figure(group_over_seeds(per_seed), result.bn_label)
    assert "mean ± std over 2 seeds" in fig.layout.title.text
    bars = [t for t in fig.data if t.name.startswith("fcfd") and t.xaxis == "x2"]
    assert bars[0].y == pytest.approx((0.06, 0.10, 0.30))
    assert bars[0].error_y.array[2] == pytest.approx(torch.tensor([0.15, 0.45]).std().item())
    pair = paired_gap(per_seed, "fcfd (fitted)", "kd (fitted)")
    assert len(viz_gap.paired_gap_figure(pair).data) == 3  # two seeds and their mean
