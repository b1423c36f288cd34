"""Shared fixtures for the whole suite. Keep this small: per-area helpers live in the test files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

# The CI box has 2 cores; more threads only fight each other. `make test` runs two pytest-xdist
# workers (each has PYTEST_XDIST_WORKER): one thread apiece, and so for the processes they start
# (CLI runs, notebook kernels, servers): OpenMP threads beyond the cores spin and stall each other
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)
# --precision auto as on a CPU without bf16 (fp32), here and in the CLI subprocesses, so runs
# give the same numbers on every machine; tests of bf16 ask for it (fcfd_viz.training.runtime.cpu_flags)
os.environ["FCFD_CPU_FLAGS"] = ""


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


@pytest.fixture(scope="module")
def bn_resnet8():
    """A resnet8 (10 classes, 3x16x16 inputs) whose BN running statistics were estimated on
    data, so that its eval and batch-statistics regimes differ: the connector tests' teacher."""
    from fcfd_viz import models

    torch.manual_seed(0)
    net = models.create("resnet8", num_classes=10)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(32, 3, 16, 16) * 1.5 + 0.3)
    return net.eval()


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory) -> Path:
    """Run directory of a tiny CE teacher (resnet8, full digits at 16x16, 2 epochs, CPU).

    Good enough to be a real checkpoint with the right metadata (arch, num_classes, dataset,
    input_shape); not meant to be a strong teacher.
    """
    from fcfd_viz.data.datasets import DataConfig
    from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment
    from fcfd_viz.training.config import TrainConfig

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


def build_runs(root: Path) -> Path:
    """Train tiny runs into ``root`` laid out like the real defaults
    (``RUNS/defaults/{teacher,ce,kd,fcfd}``): a resnet8 teacher on 10% of digits and the
    ce / kd / fcfd students of the digits preset, 1 epoch each."""
    from fcfd_viz.experiments.demo import default_configs, default_paths
    from fcfd_viz.experiments.experiment import replace, run_experiment

    paths = default_paths(root)
    cfgs = default_configs(root, epochs=1)
    cfgs["teacher"] = replace(cfgs["teacher"], student="resnet8", data={"subset": 0.1})
    for key, cfg in cfgs.items():
        cfg = replace(cfg, train={"device": "cpu"})
        run_experiment(cfg, paths[key], progress=False)
    return root


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    """The shared tiny runs folder of :func:`build_runs` (read-only for tests: copy it
    before changing it)."""
    return build_runs(tmp_path_factory.mktemp("app-runs"))


DET_RUNS = ("teacher", "kd", "fcfd")  # RUNS/det/<name>: a detection teacher and students


def build_det_runs(root: Path) -> Path:
    """Tiny detection runs in ``root/det``: a det_resnet10 teacher (ce) and its kd and fcfd
    det_resnet10 students, 1 epoch on 8 canvases (batch 4), evaluated on 8 test canvases."""
    from fcfd_viz.data.datasets import DataConfig
    from fcfd_viz.detection import data as det_data
    from fcfd_viz.experiments.experiment import ExperimentConfig, run_experiment
    from fcfd_viz.training.config import TrainConfig

    def cfg(method: str, teacher: Path | None = None) -> ExperimentConfig:
        return ExperimentConfig(
            method=method,
            student="det_resnet10",
            teacher=str(teacher) if teacher else None,
            data=DataConfig(dataset="digit-boxes", batch_size=4, subset=0.008),
            train=TrainConfig(epochs=1, device="cpu", seed=0, lr=0.01, weight_decay=1e-4),
            task="detection",
        )

    teacher = root / "det" / "teacher"
    with pytest.MonkeyPatch.context() as mp, threads(1):
        mp.setattr(det_data, "TEST_CANVASES", 8)
        run_experiment(cfg("ce"), teacher, progress=False, tensorboard=False)
        for method in DET_RUNS[1:]:
            run_experiment(
                cfg(method, teacher), root / "det" / method, progress=False, tensorboard=False
            )
    return root


@pytest.fixture(scope="session")
def det_runs(tmp_path_factory) -> Path:
    """The shared tiny detection runs of :func:`build_det_runs` (read-only for tests)."""
    return build_det_runs(tmp_path_factory.mktemp("det-runs"))


TINY_MODEL_MODULE = """
from torch import nn

from fcfd_viz import models


@models.register("{arch}")
def build(num_classes=10):
    stages = [
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
    ]
    return models.from_stages(stages, num_classes, 8, arch="{arch}")
"""


@pytest.fixture
def model_module(tmp_path, monkeypatch):
    """``write(module, arch)``: a module of the user's in a folder on sys.path and PYTHONPATH
    (``write.folder``) registering a tiny 2-stage ``arch`` (or holding ``source``). The
    architectures registered and the modules imported from that folder go away afterwards."""
    import os
    import sys

    from fcfd_viz.models import registry

    folder = tmp_path / "user_modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    )
    before = dict(registry._REGISTRY)

    def write(module: str, arch: str | None = None, source: str | None = None) -> Path:
        path = folder / f"{module}.py"
        path.write_text(source if source is not None else TINY_MODEL_MODULE.format(arch=arch))
        return path

    write.folder = folder
    yield write
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)
    for name, mod in list(sys.modules.items()):
        if str(getattr(mod, "__file__", "") or "").startswith(str(folder)):
            del sys.modules[name]


@pytest.fixture(scope="session")
def fake_imagenet_state() -> dict:
    """Random weights of torchvision's mobilenet_v3_small (1000 classes, seed 0) standing in
    for its IMAGENET1K_V1 weights."""
    from torchvision.models import mobilenet_v3_small

    torch.manual_seed(0)
    return mobilenet_v3_small().state_dict()


@pytest.fixture
def fake_hub(tmp_path, monkeypatch, fake_imagenet_state) -> Path:
    """A temp TORCH_HOME whose hub cache holds :func:`fake_imagenet_state` under the file name
    of ``MobileNet_V3_Small_Weights.IMAGENET1K_V1``; returns its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    folder = tmp_path / "torch_home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(fake_imagenet_state, folder / "mobilenet_v3_small-047dcff4.pth")
    return folder


# session fixtures that cost a minute or more: under pytest-xdist (`--dist loadgroup`) every
# test using one runs on the same worker, so the fixture is built once, not once per worker
COSTLY_FIXTURES = ("gap_runs",)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        for name in COSTLY_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))


def _needs_chromium(report) -> bool:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return "test_browser.py" in report.nodeid or "chromium" in reason.lower()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter) -> Iterator[None]:
    """Say loudly when the real-browser tests were skipped (no Chromium): the README promises
    them, and ``-ra``'s one line among the skips is easy to miss. Printed last (after the
    short summary), just above the closing line."""
    yield
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if _needs_chromium(r)]
    if skipped:
        names = ", ".join(sorted({r.nodeid.split("::")[0] for r in skipped}))
        terminalreporter.write_sep("!", "real-browser tests SKIPPED", yellow=True, bold=True)
        terminalreporter.write_line(
            f"WARNING: {len(skipped)} test(s) in {names} did not run: /usr/bin/chromium not "
            "found. Install it (apt-get install -y --no-install-recommends chromium; `make "
            "test` does so when run as root) and run them again.",
            yellow=True,
            bold=True,
        )
