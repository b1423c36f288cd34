"""Error spectra of a functional gap's students (fcfd_viz.analysis.gap.spectra): zero for the
teacher's own copy, l2 exact and fisher ~ KL for a small known shift, both BN regimes leave
the networks as they were, and the predictor comparison on results with a known answer."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fcfd_viz.analysis import FunctionalGap
from fcfd_viz.analysis.gap.connectors import new_bridges
from fcfd_viz.analysis.gap.spectra import SpectrumEntry, SpectrumResult, gap_spectra, predictors
from fcfd_viz.errors import UserError

SHAPE = (3, 16, 16)
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def loader():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, *SHAPE, generator=g) * 1.5 + 0.3
    return DataLoader(TensorDataset(x, torch.zeros(40, dtype=torch.long)), batch_size=20)


def shifted_copy(teacher, eps: float, seed: int = 3):
    """The teacher's own copy whose identity bridges add ``eps`` x a fixed per-channel shift
    (then their LeakyReLU): e = bridge(t) - t, computable directly."""
    student = copy.deepcopy(teacher)
    s2t, t2s = new_bridges(teacher, student, SHAPE)
    for b in [*s2t.values(), *t2s.values()]:
        b.set_identity()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in s2t.values():
            b[1].bias.copy_(eps * torch.randn(b[1].bias.shape, generator=g))
    return student, (s2t.eval(), t2s.eval())


def test_the_teachers_copy_has_no_error_and_a_small_shift_is_predicted(bn_resnet8, loader):
    same, same_bridges = shifted_copy(bn_resnet8, 0.0)
    near, near_bridges = shifted_copy(bn_resnet8, 0.02)
    gap = FunctionalGap(
        bn_resnet8, {"kd": same, "fcfd": near}, {"kd": same_bridges, "fcfd": near_bridges}, SHAPE
    )
    res = gap_spectra(gap, loader, images=30, k=4, steps=4)
    assert res.images == 30 and res.stages == [1, 2, 3]
    zero = res.entries["kd (own bridges)"]
    assert max(max(v) for v in zero.means.values()) < 1e-6  # float32 rounding of identities
    e = res.entries["fcfd (own bridges)"]
    x = torch.cat([b[0] for b in loader])[:30]
    with torch.no_grad():
        t = bn_resnet8.forward_features(x)
        # the student is the teacher: its error is the bridge's own
        errs = {k: near_bridges[0][str(k)](t[k]) - t[k] for k in res.stages}
    for j, stage in enumerate(res.stages):
        err = errs[stage]
        assert e.means["l2"][j] == pytest.approx(float(err.pow(2).sum((1, 2, 3)).mean()), rel=1e-4)
        if stage < 3:
            assert e.means["fisher"][j] == pytest.approx(e.means["kl"][j], rel=0.05)
        else:  # the head's ReLU on a post-ReLU feature: a kink the JVP sees one side of
            assert e.means["fisher"][j] < 0.9 * e.means["kl"][j]
        assert len(e.share[j]) == 4 and all(0 <= s <= 1 + 1e-9 for s in e.share[j])
    back = SpectrumResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.to_dict() == res.to_dict()


def test_both_regimes_leave_the_networks_as_they_were(bn_resnet8, loader):
    near, bridges = shifted_copy(bn_resnet8, 0.5)
    before = {k: v.clone() for k, v in bn_resnet8.named_buffers()}
    gap = FunctionalGap(bn_resnet8, {"fcfd": near}, {"fcfd": bridges}, SHAPE)
    eval_res = gap_spectra(gap, loader, bn="eval", images=20, k=2, steps=2)
    batch_res = gap_spectra(gap, loader, bn="batch", images=20, k=2, steps=2)
    after = dict(bn_resnet8.named_buffers())
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not bn_resnet8.training
    kl_eval = eval_res.entries["fcfd (own bridges)"].means["kl"]
    kl_batch = batch_res.entries["fcfd (own bridges)"].means["kl"]
    assert all(v > 0 for v in kl_eval + kl_batch) and kl_eval != kl_batch


def entry(l2, fisher, kl):
    return SpectrumEntry("s", "fitted", None, {"l2": l2, "fisher": fisher, "kl": kl}, [], [])


def test_predictors_find_the_metric_that_ranks_the_kl():
    """Fisher ranks the KL exactly; l2 ranks it backwards."""
    entries = {
        f"s{i}": entry([float(10 - i)], [0.1 * i], [0.2 * i + 0.01 * (i % 2)]) for i in range(8)
    }
    res = SpectrumResult("eval", [1], 10, entries)
    p = predictors([res], boot=200)
    assert p["fisher"]["spearman"] == pytest.approx(1.0)
    assert p["l2"]["spearman"] == pytest.approx(-1.0)
    assert p["fisher"]["low"] > p["l2"]["high"]
    assert p["points"] == {"students": 8, "pairs": 8}
    with pytest.raises(UserError, match="two students"):
        predictors([SpectrumResult("eval", [1], 10, {"s": entry([1.0], [1.0], [1.0])})])


def test_per_stage_predictors_undo_the_pooling_of_unlike_stages():
    """Within each stage l2 ranks the KL exactly, fisher backwards; pooled over the two stages
    the wide stage's large l2 and small KL reverse l2's ranking. ``per_stage`` says so."""
    entries = {}
    for i in range(6):
        l2 = [1000.0 + i, 1.0 + i]  # stage 1: a wide feature; stage 2: a narrow one
        kl = [0.01 * (i + 1), 1.0 + 0.1 * i]
        fisher = [0.001 * (6 - i), 0.5 + 0.01 * (6 - i)]  # backwards within each stage
        entries[f"s{i}"] = entry(l2, fisher, kl)
    p = predictors([SpectrumResult("eval", [1, 2], 10, entries)], boot=100)
    assert p["l2"]["spearman"] < 0  # pooled: the stage scale dominates
    for k in ("1", "2"):
        assert p["per_stage"][k]["l2"]["spearman"] == pytest.approx(1.0)
        assert p["per_stage"][k]["fisher"]["spearman"] == pytest.approx(-1.0)
    assert p["points"] == {"students": 6, "pairs": 12}
    one_stage = predictors(
        [
            SpectrumResult(
                "eval", [1], 10, {"a": entry([1.0], [1.0], [1.0]), "b": entry([2.0], [2.0], [2.0])}
            )
        ]
    )
    assert "per_stage" not in one_stage  # one stage: the pooled value is that stage's


def test_without_own_leaves_out_the_own_bridges_views():
    from dataclasses import replace

    fitted = entry([1.0], [1.0], [1.0])
    own = replace(entry([2.0], [2.0], [2.0]), bridges="own bridges")
    res = SpectrumResult("eval", [1], 10, {"fcfd (fitted)": fitted, "fcfd (own bridges)": own})
    assert list(res.without_own().entries) == ["fcfd (fitted)"]
    assert res.without_own(keep=True) is res and len(res.entries) == 2  # nothing changed
