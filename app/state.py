"""App state and cached loaders: the only place the app touches fcfd_viz's heavy calls.

Models come from ``st.cache_resource`` (one shared, read-only instance per checkpoint file
and mtime); analysis results from ``st.cache_data`` keyed by checkpoint path + mtime + every
parameter (Streamlit hands each caller a copy, so nothing cached is ever mutated).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from fcfd_viz import jobs
from fcfd_viz.checkpoints import load_checkpoint, model_from_checkpoint
from fcfd_viz.errors import UserError
from fcfd_viz.job_records import max_jobs
from fcfd_viz.listing import list_runs
from fcfd_viz.runs import default_runs_dir

# attribution methods the Sensitivity page offers (captum; fastest first)
ATTRIBUTIONS = ("grad_x_act", "integrated_gradients", "ablation")


def _cli_runs_dir() -> str | None:
    """``--runs-dir`` from ``streamlit run app/main.py -- --runs-dir DIR``."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--runs-dir", default=None)
    return p.parse_known_args(sys.argv[1:])[0].runs_dir


def runs_dir() -> Path:
    """The runs folder of this session: sidebar > CLI ``--runs-dir`` > $FCFD_RUNS_DIR > ./runs."""
    if "runs_dir" not in st.session_state:
        st.session_state["runs_dir"] = str(default_runs_dir(_cli_runs_dir()))
    return Path(st.session_state["runs_dir"]).expanduser()


def sidebar() -> Path:
    """The sidebar every page shares: the runs folder and how many runs are active."""
    root = runs_dir()
    with st.sidebar:
        st.text_input("Runs folder", key="runs_dir", help="env FCFD_RUNS_DIR or --runs-dir")
        if not root.is_dir():
            st.caption(f"{root} does not exist yet")
        else:
            n = jobs.active_count(root)
            st.caption(f"{n} active run(s), limit {max_jobs()}")
    return root


def keep_valid(key: str, options: list) -> None:
    """Drop what a widget's saved value holds that is no longer an option (a deleted run)."""
    value = st.session_state.get(key)
    if isinstance(value, list):
        st.session_state[key] = [v for v in value if v in options]
    elif value is not None and value not in options:
        del st.session_state[key]


def run_label(job) -> str:
    """``method: run`` for a curve legend (``teacher: ...`` for a teacher run, its own colour)."""
    kind = "teacher" if job.path.name.startswith("teacher") else job.method
    return f"{kind}: {job.name}"


def show_error(e: Exception) -> None:
    """An error box for a bad input; the page keeps working."""
    st.error(str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}")


# ---------------------------------------------------------------- checkpoints and models
def checkpoints(root: Path) -> list[dict]:
    """Runs of ``root`` that hold a checkpoint: name, path, method, arch, dataset, top-1."""
    out = []
    for r in list_runs(root):
        path = Path(r["run"])
        if r["state"] == "unreadable":  # its metadata cannot be trusted: the Runs page shows it
            continue
        if (path / "best.pt").exists() or (path / "last.pt").exists():
            name = path.relative_to(root).as_posix() if root in path.parents else r["name"]
            top1 = r.get("top1")
            acc = f", {top1:.1f}%" if isinstance(top1, float) else ""
            label = f"{name} ({r['method']} {r['student']}, {r['dataset']}{acc})"
            out.append({**r, "name": name, "path": str(path), "label": label})
    return out


def ckpt_file(path: str | Path) -> tuple[str, float]:
    """(checkpoint file, its mtime): the cache key that changes when training writes a new one."""
    p = Path(path)
    if p.is_dir():
        p = next((c for c in (p / "best.pt", p / "last.pt") if c.exists()), p / "best.pt")
    if not p.exists():
        raise UserError(f"checkpoint {p} not found")
    return str(p), p.stat().st_mtime


@st.cache_resource(max_entries=16, show_spinner=False)
def _model(path: str, mtime: float):
    ckpt = load_checkpoint(path)
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "extras")}
    return model_from_checkpoint(ckpt), meta


def model(path: str | Path):
    """(eval-mode staged net, checkpoint metadata) shared by all sessions; never modify it."""
    return _model(*ckpt_file(path))


# ---------------------------------------------------------------- analysis results
JACOBIAN_IMAGES = 4  # the spectrum is per image: a few images show it (it costs the most)


@st.cache_data(max_entries=16, show_spinner=False)
def _images(path: str, mtime: float, n_images: int):
    """``n_images`` test images of the checkpoint's dataset, spread over the test split."""
    from fcfd_viz.cli.analysis_cmds import probe_images

    return probe_images(_model(path, mtime)[1], None, None, n_images)[0]


@st.cache_data(max_entries=64, show_spinner=False)
def _probe(path, mtime, stage, eps, directions, n_images, mode, n_maps) -> dict:
    from fcfd_viz.analysis import Anisotropy

    net, _ = _model(path, mtime)
    probe = Anisotropy(net, stage)
    images = _images(path, mtime, n_images)
    res = probe.compute(images, eps=eps, directions=directions, mode=mode, n_random=32)
    out = {"result": res.to_dict()}
    sens = res.channel_sensitivity
    if sens is not None:  # a few images beside their most and least sensitive channels
        order = sens.argsort(descending=True).tolist()
        chans = order[:2] + order[-2:]
        feats = probe.features(images[:n_maps])
        out["maps"] = {
            "images": images[:n_maps, 0].numpy(),
            "maps": feats[:, chans].numpy(),
            "channels": chans,
            "kinds": ["most", "most", "least", "least"],
            "sensitivity": [float(sens[c]) for c in chans],
        }
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def _attribution(path: str, mtime: float, stage: int, n_images: int, method: str) -> list:
    """Captum channel importance: independent of eps and the mode, so cached apart."""
    from fcfd_viz.analysis import attribute_channels

    net, _ = _model(path, mtime)
    attr = attribute_channels(net, stage, _images(path, mtime, n_images), [method])
    return attr.channels[method].tolist()


@st.cache_data(max_entries=64, show_spinner=False)
def _jacobian(path: str, mtime: float, stage: int, n_images: int) -> dict:
    """Jacobian singular values only: they depend on neither eps nor the mode."""
    from fcfd_viz.analysis import Anisotropy

    net, _ = _model(path, mtime)
    images = _images(path, mtime, n_images)
    res = Anisotropy(net, stage).compute(
        images, directions=["jacobian"], mode="fisher", k_jacobian=4
    )
    return res.to_dict()


def probe(path, stage: int, eps: float, directions, n_images: int, mode: str, attribution):
    """Anisotropy probe, one captum attribution (with its Spearman against the channel
    sensitivities) and feature maps; each part cached on the parameters it depends on.

    The Jacobian spectrum comes from its own call on at most :data:`JACOBIAN_IMAGES` images,
    and the attribution from another, so changing eps or the mode recomputes neither."""
    from fcfd_viz.analysis import spearman

    key = ckpt_file(path)
    dirs = tuple(d for d in directions if d != "jacobian")
    out = {"result": None, "attribution": None}
    if dirs:
        out = {**_probe(*key, stage, eps, dirs, n_images, mode, 3), "attribution": None}
    if "jacobian" in directions:
        jac = _jacobian(*key, stage, min(n_images, JACOBIAN_IMAGES))
        out["result"] = {**(out["result"] or jac), "jacobian": jac["jacobian"]}
    sens = out["result"]["channel_sensitivity"]
    if sens is not None and attribution:
        values = _attribution(*key, stage, n_images, attribution)
        rho = spearman(values, sens) if None not in sens else float("nan")
        out["attribution"] = {
            "method": attribution,
            "values": values,
            "spearman": rho if rho == rho else None,
        }
    return out


CURVE_POINTS = 2000  # a curve needs no more; a huge metrics file stays cheap to redraw


@st.cache_data(max_entries=256, show_spinner=False)
def _metrics(path: str, key: tuple) -> list[dict]:
    from fcfd_viz.runs import Run

    return Run(path).metrics(max_points=CURVE_POINTS)


def metrics(path: str | Path) -> list[dict]:
    """metrics.jsonl records of a run (thinned to :data:`CURVE_POINTS`), cached until the
    file changes."""
    try:
        st_ = (Path(path) / "metrics.jsonl").stat()
        key = (st_.st_ino, st_.st_size, st_.st_mtime_ns)
    except OSError:
        key = ()
    return _metrics(str(path), key)


# ---------------------------------------------------------------- functional gap
@st.cache_resource(max_entries=24, show_spinner=False)
def _fitted(t_path: str, t_mtime: float, s_path: str, s_mtime: float, label: str, epochs: int):
    """A FunctionalGap of one student whose connectors are fitted (read-only afterwards)."""
    from fcfd_viz.analysis.connectors import FitConfig
    from fcfd_viz.analysis.gap import FunctionalGap
    from fcfd_viz.analysis.gap_models import gap_loaders, load_students

    loaded = load_students([s_path], teacher=t_path, labels=[label])
    shape = loaded.info["input_shape"]
    # connectors are fitted on the student's own training data, as `fcfd gap` does
    test, trains = gap_loaders(loaded, "student")
    train = trains[label]
    gap = FunctionalGap(loaded.teacher, loaded.students, loaded.bridges, input_shape=shape)
    config = FitConfig(max_epochs=epochs)
    gap.fit(train, config=config)
    return gap, test, train, config


def _gap_file(root, t: tuple, s: tuple, label: str, bn: str, epochs: int) -> Path:
    """RUNS/.cache/gap-<hash>.json: a restarted app shows a computed gap at once."""
    import hashlib
    import json

    digest = hashlib.sha1(json.dumps([t, s, label, bn, epochs]).encode()).hexdigest()[:16]
    return Path(root) / ".cache" / f"gap-{digest}.json"


@st.cache_data(max_entries=128, show_spinner=False)
def _gap_one(root: str, t: tuple, s: tuple, label: str, bn: str, epochs: int) -> dict:
    from fcfd_viz.fsio import read_json, write_json

    path = _gap_file(root, t, s, label, bn, epochs)
    try:
        return read_json(path)
    except (OSError, ValueError):
        pass
    gap, test, train, config = _fitted(*t, *s, label, epochs)
    out = gap.compute(test, train, bn=bn, fit=config).to_dict(curves=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, out)
    return out


def gap_fit_epochs(choices: list[int]) -> int:
    """Default connector-fit budget: $FCFD_GAP_FIT_EPOCHS (the nearest choice), else 100."""
    try:
        want = int(os.environ.get("FCFD_GAP_FIT_EPOCHS", "100"))
    except ValueError:
        want = 100
    return min(choices, key=lambda c: abs(c - want))


def gap_labels(students: list[dict]) -> list[str]:
    """One distinct label per student: its method, or ``method: run`` for duplicates."""
    methods = [c["method"] for c in students]
    return [m if methods.count(m) == 1 else f"{m}: {c['name']}" for m, c in zip(methods, students)]


def gap(root: Path, teacher: str, students: list[dict], bn: str, epochs: int) -> dict:
    """Functional gap of ``students`` (checkpoint rows) against ``teacher``: one cached
    result per student (memory and RUNS/.cache, keyed by checkpoint paths + mtimes, BN
    regime and fit budget), merged; changing the selection only computes new students."""
    t = ckpt_file(teacher)
    merged = None
    for c, label in zip(students, gap_labels(students)):
        d = _gap_one(str(root), t, ckpt_file(c["path"]), label, bn, epochs)
        if merged is None:
            merged = {**d, "students": dict(d["students"])}
        else:
            merged["students"].update(d["students"])
    return merged


def gap_cached(root: Path, teacher: str, students: list[dict], bn: str, epochs: int) -> bool:
    """Whether :func:`gap` would answer from the disk cache (no fitting)."""
    t = ckpt_file(teacher)
    return all(
        _gap_file(root, t, ckpt_file(c["path"]), label, bn, epochs).exists()
        for c, label in zip(students, gap_labels(students))
    )
