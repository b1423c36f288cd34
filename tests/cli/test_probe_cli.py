"""``fcfd probe``: JSON keys, HTML output, and clean exit-2 errors."""

from __future__ import annotations

import json

import pytest
import torch

from fcfd_viz import models
from fcfd_viz.cli import main
from fcfd_viz.runs.checkpoints import save_checkpoint

FAST = ["--images", "4", "--n-random", "6", "--k-jacobian", "2", "--no-progress"]


# tiny tensors: one thread avoids OpenMP spin-waits when the CPU is shared
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net = models.create("resnet8", num_classes=10)
    path = tmp_path_factory.mktemp("probe") / "resnet8.pt"
    save_checkpoint(
        path,
        {
            "model": net.spec(),
            "state_dict": net.state_dict(),
            "dataset": "digits",
            "input_shape": [3, 16, 16],
        },
    )
    return path


def test_probe_json(ckpt, capsys):
    rc = main(
        [
            "probe",
            str(ckpt),
            "--stage",
            "1",
            "--json",
            "--attribution",
            "grad_x_act,ablation",
            *FAST,
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    for key in (
        "anisotropy_ratio",
        "p95_p5_ratio",
        "channel_sensitivity",
        "spearman",
        "stage",
        "eps",
        "mode",
        "divergence",
        "random_p5",
        "random_p95",
        "jacobian",
        "attribution",
        "arch",
        "dataset",
    ):
        assert key in d, key
    assert (
        d["stage"] == 1 and d["eps"] == 0.05 and d["mode"] == "exact" and d["dataset"] == "digits"
    )
    sens = d["channel_sensitivity"]
    assert len(sens) == 16 and d["num_images"] == 4
    assert d["anisotropy_ratio"] == pytest.approx(max(sens) / min(sens))
    assert set(d["spearman"]) == {"grad_x_act", "ablation"}
    assert all(-1 <= v <= 1 for v in d["spearman"].values())
    assert len(d["jacobian"]["top_singular_values"]) == 2
    # 10 classes: "auto" keeps them all, nothing neglected
    assert d["num_classes"] == 10 and d["top_classes"] is None and d["neglected_mass"] == 0


def test_probe_fisher_absolute_and_html(ckpt, tmp_path, capsys):
    out = tmp_path / "figs" / "probe.html"
    rc = main(
        [
            "probe",
            str(ckpt),
            "--stage",
            "2",
            "--mode",
            "fisher",
            "--eps",
            "0.5",
            "--absolute",
            "--directions",
            "channel,random",
            "--attribution",
            "none",
            "--html",
            str(out),
            *FAST,
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "max/min" in text and str(out) in text
    html = out.read_text()
    assert "plotly" in html and "channel sensitivity" in html
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temp file


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--stage", "9"], "stage 9"),
        (["--stage", "-1"], "stage -1"),
        (["--stage", "1", "--eps", "0"], "eps"),
        (["--stage", "1", "--eps", "-0.1"], "eps"),
        (["--stage", "1", "--directions", "channel,up"], "up"),
        (["--stage", "1", "--attribution", "lime"], "lime"),
        (["--stage", "1", "--classes", "0"], "classes"),
        (["--stage", "1", "--classes", "many"], "classes"),
    ],
)
def test_probe_errors_exit_2(ckpt, capsys, extra, match):
    rc = main(["probe", str(ckpt), *extra, *FAST])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and match in err and "Traceback" not in err


def test_missing_checkpoint_exit_2(tmp_path, capsys):
    rc = main(["probe", str(tmp_path / "nope.pt"), "--stage", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not found" in err


def test_checkpoint_without_dataset_needs_flag(tmp_path, capsys):
    net = models.create("resnet8", num_classes=10)
    path = tmp_path / "nodata.pt"
    save_checkpoint(path, {"model": net.spec(), "state_dict": net.state_dict()})
    assert main(["probe", str(path), "--stage", "1", *FAST]) == 2
    assert "--dataset" in capsys.readouterr().err


# ---- any layer, a fresh architecture, a folder of images
def write_images(folder, n, size=20):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        pixels = (torch.rand(size, size + 4, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"img{i:02d}.{'png' if i % 2 else 'jpg'}")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_probe_layer_of_a_checkpoint_equals_its_stage(ckpt, capsys):
    common = ["--json", "--attribution", "grad_x_act", "--mode", "fisher", *FAST]
    assert main(["probe", str(ckpt), "--stage", "1", *common]) == 0
    staged = json.loads(capsys.readouterr().out)
    assert main(["probe", str(ckpt), "--layer", "stages.1", *common]) == 0
    hooked = json.loads(capsys.readouterr().out)
    assert hooked["layer"] == "stages.1" and hooked["stage"] is None and staged["layer"] is None
    assert set(hooked) == set(staged)
    for key in ("channel_sensitivity", "random_sensitivity", "anisotropy_ratio", "spearman"):
        assert hooked[key] == pytest.approx(staged[key], rel=1e-5), key
    attr = hooked["attribution"]["grad_x_act"]
    assert attr == pytest.approx(staged["attribution"]["grad_x_act"], rel=1e-5)


def test_probe_fresh_model_layer_on_an_image_folder(tmp_path, capsys):
    images = write_images(tmp_path / "imgs", 5)
    args = ["probe", "--model", "resnet8", "--num-classes", "10", "--layer", "stages.2.0"]
    args += ["--image-size", "24", "--n-random", "4", "--no-progress"]
    html = tmp_path / "probe.html"
    rc = main([*args, "--image-dir", str(images), "--images", "4", "--html", str(html)])
    text = capsys.readouterr().out
    assert rc == 0 and "resnet8 layer stages.2.0 (32, 12, 12) on 4" in text
    assert "channel sensitivity" in html.read_text()
    rc = main([*args, "--image-dir", str(images), "--json", "--images", "9", "--k-jacobian", "2"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["num_images"] == 5 and d["ckpt"] is None and d["weights"] is None
    assert d["arch"] == "resnet8" and d["dataset"] == str(images)
    assert len(d["channel_sensitivity"]) == 32 and set(d["spearman"]) == {
        "grad_x_act",
        "integrated_gradients",
        "ablation",
    }


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--layer", "stages.9"], "close names: stages.3, stages.2"),
        (["--layer", "stages.1", "--stage", "1"], "exactly one"),
        ([], "exactly one"),
        (["--layer", "stages.1", "--weights", "x"], "go with --model"),
        (["--layer", "stages.1", "--image-dir", "/nonexistent/dir"], "not found"),
    ],
)
def test_probe_layer_errors_exit_2(ckpt, capsys, extra, match):
    rc = main(["probe", str(ckpt), *extra, *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and match in err, err


def test_probe_model_errors_exit_2(ckpt, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--model", "resnet8", "--layer", "stages.1"], "--image-dir"),
        (["--model", "resnet8", "--layer", "stages.1", "--image-dir", str(empty)], "no PNG"),
        ([str(ckpt), "--model", "resnet8", "--layer", "stages.1"], "name one network"),
        (["--model", "resnetX", "--layer", "stages.1", "--image-dir", str(empty)], "resnetX"),
    ]
    for extra, match in cases:
        rc = main(["probe", *extra, *FAST])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and match in err, err


def test_probe_pretrained_model_uses_the_weights_and_their_transform(fake_hub, tmp_path, capsys):
    # fake IMAGENET1K_V1 weights in the hub cache: the probe loads them and preprocesses the
    # folder's images with the weights' own transforms (resize 256, centre crop 224)
    from PIL import Image
    from torchvision.models import MobileNet_V3_Small_Weights

    from fcfd_viz.analysis.reports.image_folder import folder_images, image_transform

    images = write_images(tmp_path / "imgs", 2)
    args = ["probe", "--model", "tv_mobilenet_v3_small", "--weights", "IMAGENET1K_V1"]
    args += ["--layer", "features.3", "--image-dir", str(images), "--directions", "channel"]
    rc = main([*args, "--json", "--no-progress"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["weights"] and d["num_images"] == 2
    tf = MobileNet_V3_Small_Weights.IMAGENET1K_V1.transforms()
    got = folder_images(images, 2, image_transform("tv_mobilenet_v3_small", "IMAGENET1K_V1", 0))
    first = tf(Image.open(sorted(images.iterdir())[0]).convert("RGB"))
    assert got.shape[-2:] == (224, 224) and torch.equal(got[0], first)


def _png_header(path, width: int, height: int) -> None:
    """A PNG that claims ``width`` x ``height`` pixels (its pixels never come: PIL checks
    the size when it opens the file, before decoding)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_a_decompression_bomb_in_the_image_folder_is_one_line(tmp_path, capsys):
    """A 20000x20000 PNG in --image-dir raised PIL's DecompressionBombError (issue #29)."""
    images = write_images(tmp_path / "imgs", 2)
    _png_header(images / "zz-huge.png", 20000, 20000)
    args = ["probe", "--model", "resnet8", "--num-classes", "10", "--layer", "stages.1"]
    rc = main([*args, "--image-dir", str(images), "--image-size", "24", *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "zz-huge.png" in err and "too large" in err and "Traceback" not in err
