"""The embedded digits dataset (fcfd_viz.data.digits): a fixed split, normalisation, augmentation."""

from __future__ import annotations

import torch

from fcfd_viz.data.digits import DigitsDataset


def test_digits_split_is_fixed_stratified_and_normalised():
    train, test = DigitsDataset(True, 16), DigitsDataset(False, 16)
    assert len(train) + len(test) == 1797 and len(test) == 360
    assert train.images.shape[1:] == (3, 16, 16)
    # stratified: every class holds ~20% of its images in the test split
    for c in range(10):
        n_test, n_train = int((test.targets == c).sum()), int((train.targets == c).sum())
        assert abs(n_test / (n_test + n_train) - 0.2) < 0.02
    # normalised with training statistics
    assert abs(float(train.images.mean())) < 0.05 and abs(float(train.images.std()) - 1) < 0.1
    assert torch.equal(DigitsDataset(False, 16).images, test.images)  # same split every time


def test_digits_augmentation_shifts_training_images_only():
    train, test = DigitsDataset(True, 16), DigitsDataset(False, 16)
    torch.manual_seed(0)
    shifted = [not torch.equal(train[i][0], train.images[i]) for i in range(20)]
    assert any(shifted)
    assert all(torch.equal(test[i][0], test.images[i]) for i in range(5))
