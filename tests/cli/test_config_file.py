"""``--config FILE`` of train-teacher and distill: a run's config.json round-trips, the layers
override in order (defaults < preset < file < flags), a bad file is one line and exit 2, and
every training setting has a flag."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fcfd_viz.cli import build_parser, main
from fcfd_viz.cli.distill_cmds import build_config
from fcfd_viz.errors import UserError
from fcfd_viz.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--epochs", "1", "--subset", "0.1", "--device", "cpu", "--no-progress"]


def run(capsys, argv: list[str]) -> None:
    code = main(argv)
    assert code == 0, capsys.readouterr().err


def fails(capsys, argv: list[str], *needles: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock seconds."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]


def config_of(argv: list[str]):
    return build_config(build_parser().parse_args(["distill", *argv]))[0]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cfg") / "teacher"
    assert main(["train-teacher", "--arch", "resnet8", *TINY, "--out", str(out)]) == 0
    return out


def test_a_teacher_run_config_round_trips(capsys, teacher: Path, tmp_path: Path):
    again = tmp_path / "again"
    run(capsys, ["train-teacher", "--config", str(teacher / "config.json"), "--out", str(again)])
    assert (again / "config.json").read_bytes() == (teacher / "config.json").read_bytes()
    assert metrics(again) == metrics(teacher)


def test_a_distill_run_config_round_trips(capsys, teacher: Path, tmp_path: Path):
    first, again = tmp_path / "first", tmp_path / "again"
    argv = ["distill", "--method", "fcfd", "--teacher", str(teacher), "--student", "resnet8"]
    run(capsys, [*argv, *TINY, "--feat-weight", "0.5", "--lr", "0.02", "--out", str(first)])
    run(capsys, ["distill", "--config", str(first / "config.json"), "--out", str(again)])
    assert (again / "config.json").read_bytes() == (first / "config.json").read_bytes()
    assert json.loads((first / "config.json").read_text())["method_config"]["feat_weight"] == 0.5
    assert metrics(again) == metrics(first)


def test_precedence_defaults_preset_file_flags(tmp_path: Path):
    f = tmp_path / "exp.yaml"
    f.write_text(
        "preset: digits\n"
        "train: {epochs: 2, momentum: 0.8}\n"
        "data: {batch_size: 32}\n"
        "method_config: {feat_weight: 0.3, mix_weight: 2.0}\n"
    )
    cfg = config_of(["--config", str(f), "--lr", "0.01", "--mix-weight", "0.5"])
    assert (cfg.method, cfg.student, cfg.data.dataset) == ("fcfd", "resnet8", "digits-hard")
    assert cfg.train.epochs == 2 and cfg.train.momentum == 0.8  # file over preset / default
    assert cfg.train.lr == 0.01  # flag over the preset's 0.05
    assert cfg.train.nesterov is True and cfg.train.gamma == 0.1  # defaults
    assert cfg.data.batch_size == 32 and cfg.data.image_size == 16
    knobs = cfg.method_kwargs
    assert knobs["feat_weight"] == 0.3 and knobs["temperature"] == 4.0  # file; preset
    assert knobs["mix_weight"] == 0.5  # the flag beats the file
    # --preset beats the file's preset:, whose values the file still overrides
    f.write_text("preset: resnet32x4-resnet8x4\ntrain: {epochs: 3}\n")
    cfg = config_of(["--config", str(f), "--preset", "digits"])
    assert cfg.data.dataset == "digits-hard" and cfg.train.epochs == 3
    assert config_of(["--config", str(f)]).data.dataset == "cifar100"


def test_seed_flag_moves_a_subset_that_followed_the_seed(teacher: Path):
    cfg = config_of(["--config", str(teacher / "config.json"), "--seed", "3", "--method", "ce"])
    assert cfg.train.seed == 3 and cfg.data.subset_seed is None  # resolved to 3 at run time


def test_every_training_setting_has_a_flag():
    argv = "--momentum 0.8 --no-nesterov --gamma 0.2 --milestones 3 5 --lr-warmup-epochs 2"
    argv += " --channels-last --precision bf16 --compile --schedule step --weight-decay 0.001"
    argv += " --epochs 7 --lr 0.2 --seed 4 --device cpu --subset-seed 9 --workers 1"
    cfg = config_of(argv.split())
    expected = TrainConfig(
        epochs=7,
        lr=0.2,
        momentum=0.8,
        nesterov=False,
        weight_decay=0.001,
        schedule="step",
        milestones=[3, 5],
        gamma=0.2,
        warmup_epochs=2,
        seed=4,
        device="cpu",
        precision="bf16",
        channels_last=True,
        compile=True,
    )
    assert cfg.train == expected
    # --amp, the old name of --precision (off: fp32), is read as it
    assert config_of([*argv.replace("--precision", "--amp").split()]).train == expected
    assert config_of(["--amp", "off"]).train.precision == "fp32"
    with pytest.raises(UserError, match="--amp off and --precision bf16 disagree"):
        config_of(["--amp", "off", "--precision", "bf16"])
    assert cfg.data.subset_seed == 9 and cfg.data.num_workers == 1
    text = build_parser()._subparsers._group_actions[0].choices["distill"].format_help()
    for title in ("\nmethod:", "\nmethod knobs of fcfd", "\ndata:", "\ntraining:", "\noutput:"):
        assert title in text, title
    for f in dataclasses.fields(TrainConfig):
        if f.name != "warmup_epochs":  # --lr-warmup-epochs: DKD's knob is --warmup-epochs
            assert "--" + f.name.replace("_", "-") in text, f.name


@pytest.mark.parametrize(
    "body, needles",
    [
        ("epochs: 3\n", ["unknown key 'epochs'", "valid keys there: method, student"]),
        ("train: {lrate: 1}\n", ["unknown key train.'lrate'", "lr, momentum"]),
        ("data: {batchsize: 8}\n", ["unknown key data.'batchsize'", "batch_size"]),
        ("method_config: {feat_wieght: 1}\n", ["unknown knob 'feat_wieght'", "feat_weight"]),
        ("[1, 2]\n", ["expected a mapping"]),
        ("train: [1]\n", ["train must be a mapping"]),
        ("a: [\n", ["not YAML or JSON"]),
        ("train: {lr: -1}\n", ["--lr"]),
    ],
)
def test_a_bad_file_is_one_line_and_exit_2(capsys, tmp_path: Path, body: str, needles):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    fails(capsys, ["distill", "--config", str(f), "--out", str(tmp_path / "o")], *needles)
    assert not (tmp_path / "o").exists()


def test_config_errors_of_train_teacher(capsys, tmp_path: Path):
    fails(capsys, ["train-teacher", "--config", str(tmp_path / "nope.yaml")], "nope.yaml")
    f = tmp_path / "kd.yaml"
    f.write_text("method: kd\nteacher: runs/t\n")
    fails(capsys, ["train-teacher", "--config", str(f)], "use fcfd distill --config")
    f.write_text("preset: digits\n")  # a distill key
    fails(capsys, ["train-teacher", "--config", str(f)], "unknown key 'preset'")
    fails(capsys, ["distill", "--config", str(f), "--resume", "--out", "x"], "drop --config")
