"""The teacher's side shared between students' connector fits (#27): a shared fit equals the
unshared one, teacher batches and Grams are reused only for the same teacher and images, and
the conv-gradient cross term equals the im2col one."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fcfd_viz import models
from fcfd_viz.analysis import FitConfig
from fcfd_viz.analysis.gap.connectors import fit_connectors
from fcfd_viz.analysis.gap.lstsq import NormalEquations, design, target_rows
from fcfd_viz.analysis.gap.shared_teacher import active, shared_teacher
from fcfd_viz.distill.bridges import Bridge

SHAPE = (3, 16, 16)
pytestmark = pytest.mark.usefixtures("one_thread_module")


def _loader(seed: int = 1) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, *SHAPE, generator=g) * 1.5 + 0.3
    return DataLoader(TensorDataset(x, torch.zeros(40, dtype=torch.long)), batch_size=16)


def _students() -> list:
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append(models.create("resnet8_w025", num_classes=10).eval())
    return out


def _state(s2t, t2s) -> dict:
    return {**{f"s{k}": v for k, v in s2t.state_dict().items()}} | {
        f"t{k}": v for k, v in t2s.state_dict().items()
    }


def test_shared_fits_equal_unshared_fits(bn_resnet8):
    cfg = FitConfig(refine_steps=3)
    students, loader = _students(), _loader()
    alone = [fit_connectors(bn_resnet8, s, loader, SHAPE, cfg) for s in students]
    assert active() is None
    with shared_teacher() as share:
        teacher = copy.deepcopy(bn_resnet8)  # another object, the same weights: still shared
        shared = [fit_connectors(teacher, s, loader, SHAPE, cfg) for s in students]
        assert share.misses == len(loader) and share.hits == len(loader)
        assert len(share.grams) == 2  # t2s/1 and t2s/2, summed once
    assert active() is None  # nothing is kept outside the scope
    for (a_s2t, a_t2s, a_info), (b_s2t, b_t2s, b_info) in zip(alone, shared):
        a, b = _state(a_s2t, a_t2s), _state(b_s2t, b_t2s)
        assert all(torch.equal(a[k], b[k]) for k in a)
        for name, fit in a_info.bridges.items():
            assert b_info.bridges[name].final_loss == fit.final_loss


def test_other_teacher_or_images_are_not_shared(bn_resnet8):
    cfg = FitConfig(refine_steps=0)
    student = _students()[0]
    with shared_teacher() as share:
        fit_connectors(bn_resnet8, student, _loader(1), SHAPE, cfg)
        fit_connectors(bn_resnet8, student, _loader(2), SHAPE, cfg)  # other images
        other = copy.deepcopy(bn_resnet8)
        with torch.no_grad():
            next(other.parameters()).add_(0.01)  # another teacher
        fit_connectors(other, student, _loader(1), SHAPE, cfg)
        assert share.hits == 0 and len(share.grams) == 6


@pytest.mark.parametrize(
    "src, dst", [((3, 6, 6), (5, 6, 6)), ((3, 6, 6), (5, 3, 3)), ((3, 3, 3), (5, 6, 6))]
)
def test_conv_gradient_sums_equal_im2col_sums(src, dst):
    torch.manual_seed(3)
    conv = Bridge(src, dst, leaky=False)[0]
    x, y = torch.randn(20, *src).relu() + 0.5, torch.randn(20, *dst).relu()
    ref, got = NormalEquations(50), NormalEquations(50)
    for i in range(0, 20, 7):
        ref.add(design(conv, x[i : i + 7]), target_rows(y[i : i + 7]))
        got.add_conv(conv, x[i : i + 7], y[i : i + 7])
    for name in ("sy", "yy", "xy"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), rtol=1e-5, atol=1e-5)
    a, b = ref.solve(1e-6), got.solve(1e-6)
    torch.testing.assert_close(b.w, a.w, rtol=1e-4, atol=1e-5)
    # a problem on the same rows with the first one's Gram: the same solution, no X^T X
    again = NormalEquations(50, ref.gram)
    for i in range(0, 20, 7):
        again.add_conv(conv, x[i : i + 7], 2 * y[i : i + 7])
    torch.testing.assert_close(again.solve(1e-6).w, 2 * a.w, rtol=1e-4, atol=1e-5)


def test_a_shared_gram_of_other_rows_is_refused():
    conv = Bridge((3, 6, 6), (5, 6, 6), leaky=False)[0]
    x, y = torch.randn(8, 3, 6, 6), torch.randn(8, 5, 6, 6)
    own = NormalEquations()
    own.add_conv(conv, x, y)
    other = NormalEquations(gram=own.gram)
    other.add_conv(conv, x[:4], y[:4])
    with pytest.raises(ValueError, match="shared Gram"):
        other.solve(1e-5)


def test_uncached_features_are_not_kept(bn_resnet8):
    # features over cache_mb are recomputed each pass (new augmentations): nothing is shared
    cfg = FitConfig(refine_steps=1, cache_mb=0.001)
    with shared_teacher() as share:
        fit_connectors(bn_resnet8, _students()[0], _loader(), SHAPE, cfg)
        assert not share.features and not share.grams
