"""Shared fixtures for the whole suite. Keep this small: per-area helpers live in the test files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)  # the CI box has 2 cores; more threads only fight each other


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny nets run no faster on 2 threads, and far slower when the CPU is busy (the two
    threads wait on each other): tests of small models use one (``usefixtures("one_thread")``)."""
    with threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module() -> Iterator[None]:
    """``one_thread`` for a whole module: ``pytestmark = pytest.mark.usefixtures(...)``."""
    with threads(1):
        yield


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory) -> Path:
    """Run directory of a tiny CE teacher (resnet8, full digits at 16x16, 2 epochs, CPU).

    Good enough to be a real checkpoint with the right metadata (arch, num_classes, dataset,
    input_shape); not meant to be a strong teacher.
    """
    from fcfd_viz.data import DataConfig
    from fcfd_viz.pipeline import ExperimentConfig, run_experiment
    from fcfd_viz.train_config import TrainConfig

    out = tmp_path_factory.mktemp("teacher") / "resnet8-digits"
    cfg = ExperimentConfig(
        method="ce",
        student="resnet8",
        data=DataConfig(dataset="digits", image_size=16),
        train=TrainConfig(epochs=2, device="cpu", seed=0),
    )
    with threads(1):
        run_experiment(cfg, out, progress=False)
    return out
