"""digit-pairs (fcfd_viz.data.digit_pairs): the embedded 100-class task, deterministic per seed,
disjoint train/test source digits, balanced classes; and a paper preset running on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fcfd_viz.cli import main
from fcfd_viz.data import digit_pairs as dp
from fcfd_viz.data.datasets import DataConfig, build_datasets, data_info
from fcfd_viz.errors import UserError
from fcfd_viz.experiments.experiment import resume_config


def test_render_is_deterministic_per_seed_and_differs_across_seeds():
    a = dp._render.__wrapped__(True, 300, 16, 0, dp.STYLE)
    b = dp._render.__wrapped__(True, 300, 16, 0, dp.STYLE)
    c = dp._render.__wrapped__(True, 300, 16, 1, dp.STYLE)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    assert not torch.equal(a[0], c[0])


def test_train_and_test_canvases_use_disjoint_source_digits():
    train_pool, test_pool = dp.source_split()
    assert not set(train_pool) & set(test_pool)
    assert len(train_pool) + len(test_pool) == 1797
    _, _, train_src = dp.render(True, 2000, 16)
    _, _, test_src = dp.render(False, 500, 16)
    assert set(train_src.ravel()) <= set(train_pool)
    assert set(test_src.ravel()) <= set(test_pool)
    assert not set(train_src.ravel()) & set(test_src.ravel())


def test_labels_are_the_two_digit_numbers_with_balanced_classes():
    _, labels, sources = dp.render(True, 2000, 16)
    assert torch.equal(torch.bincount(labels, minlength=100), torch.full((100,), 20))
    digit = dp._glyphs()[1]
    # the tens digit is the left source, the units digit the right one
    assert np.array_equal(digit[sources[:, 0]] * 10 + digit[sources[:, 1]], labels.numpy())
    _, odd, _ = dp.render(False, 250, 16)  # not a multiple of 100: counts differ by <= 1
    counts = torch.bincount(odd, minlength=100)
    assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == 250


@pytest.mark.parametrize("size", [16, 32])
def test_shapes_value_range_and_normalisation(size):
    images, _, _ = dp.render(True, 200, size)
    assert images.shape == (200, 3, size, size) and images.dtype == torch.uint8
    assert int(images.min()) >= 0 and int(images.max()) <= 255
    # the style's variation shows: colours differ across canvases, ink differs within one
    assert images.float().std(dim=(1, 2, 3)).min() > 5
    assert images.float().mean(dim=(2, 3)).std(0).min() > 20
    ds = dp.DigitPairs(False, size, n=200)
    x, y = ds[0]
    assert x.shape == (3, size, size) and x.dtype == torch.float32 and 0 <= y < 100
    stack = torch.stack([ds[i][0] for i in range(200)])  # test canvases: no augmentation
    # each canvas and channel on its own: mean 0, std s / (s + floor) for its pixel std s
    raw = ds.images.float() / 255
    s = raw.std((2, 3))  # (200, 3)
    assert stack.mean((2, 3)).abs().max() < 1e-5
    assert torch.allclose(stack.std((2, 3)), s / (s + dp.STD_FLOOR), atol=1e-5)


def test_no_augmentation_unless_asked():
    """The generator already moves every digit: items are the stored canvases, normalised;
    ``augment=True`` shifts training images as CIFAR's padded crop would."""
    train, test = dp.DigitPairs(True, n=100), dp.DigitPairs(False, n=100)
    plain = lambda ds, i: dp.standardise(ds.images[i : i + 1])[0]  # noqa: E731
    assert all(torch.equal(ds[i][0], plain(ds, i)) for ds in (train, test) for i in range(10))
    shifted = dp.DigitPairs(True, n=100, augment=True)
    torch.manual_seed(0)
    assert any(not torch.equal(shifted[i][0], plain(shifted, i)) for i in range(10))


def test_a_fresh_view_keeps_labels_and_pool_and_redraws_the_rest():
    """``render(view=k)``: the labels and their order are the split's, the digits still come
    from the split's source pool, everything else is drawn anew, deterministically per view;
    view 0 is the split's canvases."""
    base = dp.render(True, 400, 16)
    one, again, two = (dp._render.__wrapped__(True, 400, 16, 0, dp.STYLE, v) for v in (1, 1, 2))
    assert all(torch.equal(v[1], base[1]) for v in (one, two))
    assert torch.equal(one[0], again[0]) and np.array_equal(one[2], again[2])
    assert not torch.equal(one[0], base[0]) and not torch.equal(one[0], two[0])
    assert not np.array_equal(one[2], base[2])
    assert set(one[2].ravel()) <= set(dp.source_split()[0])
    digit = dp._glyphs()[1]
    assert np.array_equal(digit[one[2][:, 0]] * 10 + digit[one[2][:, 1]], base[1].numpy())
    assert torch.equal(dp._render.__wrapped__(True, 400, 16, 0, dp.STYLE, 0)[0], base[0])


def test_fresh_training_canvases_follow_the_loaders_epoch_and_test_never_changes():
    """The trainer's ``set_epoch`` reaches a fresh dataset under a Subset: epoch e shows view
    e whatever happened before (a resumed run sees what an uninterrupted one would)."""
    from torch.utils.data import DataLoader, Subset

    from fcfd_viz.data.loaders import set_epoch

    train = dp.DigitPairs(True, n=300, fresh=True)
    loader = DataLoader(Subset(train, list(range(0, 300, 3))), batch_size=50)
    first = train.images.clone()
    set_epoch(loader, 0, 3)
    assert train.view == 3 and torch.equal(train.images, dp.render(True, 300, view=3)[0])
    set_epoch(loader, 0, 5)
    set_epoch(loader, 0, 3)  # back to epoch 3: the same canvases again
    assert torch.equal(train.images, dp.render(True, 300, view=3)[0])
    assert not torch.equal(train.images, first)
    x, y = next(iter(loader))
    assert torch.equal(y, train.targets[:150:3])
    assert torch.equal(x[1], dp.standardise(train.images[3:4])[0])
    test = dp.DigitPairs(False, n=300, fresh=True)  # the test split is never redrawn
    kept = test.images.clone()
    test.set_epoch(4)
    assert not test.fresh and torch.equal(test.images, kept)
    static = dp.DigitPairs(True, n=300, fresh=False)
    static.set_epoch(4)
    assert torch.equal(static.images, first)


def test_dataset_config_builds_it_with_100_classes_and_subset():
    cfg = DataConfig(dataset="digit-pairs", subset=0.05)
    train, test, info = build_datasets(cfg)
    assert info.num_classes == 100 and info.input_shape == (3, 16, 16)
    assert data_info(cfg) == info
    assert len(train) == 100 * dp.TRAIN_PER_CLASS // 20 and len(test) == 100 * dp.TEST_PER_CLASS
    assert data_info(DataConfig(dataset="digit-pairs", image_size=32)).input_shape == (3, 32, 32)
    # training canvases are new every epoch unless --fixed-canvases; test canvases never change
    assert train.dataset.fresh and not test.fresh
    fixed, _, _ = build_datasets(DataConfig(dataset="digit-pairs", fixed_canvases=True))
    assert not fixed.fresh


def test_a_too_small_image_size_is_one_line():
    with pytest.raises(UserError, match="--image-size 16"):
        dp.DigitPairs(True, 8, n=10)


@pytest.mark.slow
def test_a_paper_preset_runs_on_digit_pairs(tmp_path, capsys, one_thread):
    """`fcfd train-teacher --dataset digit-pairs` and `fcfd distill --preset <CIFAR pair>
    --dataset digit-pairs`: the preset's teacher arch, 100 classes, the named loss terms."""
    fast = ["--device", "cpu", "--no-progress", "--epochs", "1", "--subset", "0.01"]
    teacher = tmp_path / "teacher"
    argv = ["train-teacher", "--dataset", "digit-pairs", "--arch", "resnet56", *fast]
    assert main([*argv, "--out", str(teacher)]) == 0
    recorded = json.loads((teacher / "config.json").read_text())
    assert recorded["data"]["fixed_canvases"] is False  # new canvases every epoch, recorded
    # a run recorded before the knob existed trained on fixed canvases, and resumes so
    del recorded["data"]["fixed_canvases"]
    (teacher / "config.json").write_text(json.dumps(recorded))
    assert resume_config(teacher).data.fixed_canvases is True
    student = tmp_path / "student"
    argv = ["distill", "--preset", "resnet56-resnet20", "--dataset", "digit-pairs", *fast]
    assert main([*argv, "--teacher", str(teacher), "--out", str(student)]) == 0
    capsys.readouterr()
    config = json.loads((student / "config.json").read_text())
    assert config["data"]["dataset"] == "digit-pairs" and config["student"] == "resnet20"
    assert config["method"] == "fcfd"
    summary = json.loads((student / "summary.json").read_text())
    assert summary["num_classes"] == 100 and summary["input_shape"] == [3, 16, 16]
    record = json.loads((student / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"ce", "kd", "app/stage1", "app/stage3"} <= set(record["losses"])
    assert any(k.startswith("func_kl/") for k in record["losses"])
    # the analyses read the run's dataset back: the probe draws digit-pairs test canvases
    argv = ["probe", str(student), "--stage", "2", "--images", "4", "--json", "--no-progress"]
    assert main(argv) == 0
    probe = json.loads(capsys.readouterr().out)
    assert probe["anisotropy_ratio"] > 1
