"""Distill: launch runs (any preset, student, teacher, device) in the background, watch them
live, stop them, compare them.

A launched run is a ``fcfd distill`` subprocess writing a normal run directory in the runs
folder; the page only reads that folder, so a reload or a second tab shows the same runs.
"""

import os

import models_state
import state
import streamlit as st

from fcfd_viz import models
from fcfd_viz.distill import knobs, method_names
from fcfd_viz.distill.knob import Knob
from fcfd_viz.experiments import presets
from fcfd_viz.experiments.demo import default_names
from fcfd_viz.jobs import control as jobs
from fcfd_viz.jobs.records import max_jobs
from fcfd_viz.jobs.spec import JobSpec, default_teacher, device_choices, preset_status
from fcfd_viz.viz import app as viz_app
from fcfd_viz.viz import figures as viz


def knob_input(where, k: Knob, value, key: str):
    """The input of one method knob, by its type: a choice, a checkbox or a number field."""
    if k.choices:
        return where.selectbox(
            k.name, k.choices, index=k.choices.index(value), key=key, help=k.help
        )
    if k.type is bool:
        return where.checkbox(k.name, bool(value), key=key, help=k.help)
    if k.type is str:
        return where.text_input(k.name, value, key=key, help=k.help)
    # the config checks the bounds on launch (with its message); the widget only keeps the
    # inclusive ones, so "> 0" still lets a user type 0 and read why it is refused
    low = None if k.low is None or k.strict else k.type(k.low)
    fmt = "%d" if k.type is int else "%g"
    return where.number_input(
        k.name, min_value=low, value=k.type(value), format=fmt, key=key, help=k.help
    )


FORM_KEYS = ("d_student", "d_teacher", "d_epochs", "d_lr")


def forget_form() -> None:
    """A new preset: its defaults replace what the form held."""
    for key in [k for k in st.session_state if k in FORM_KEYS or k.startswith("d_knob_")]:
        del st.session_state[key]


st.title("Distill")
root = state.runs_dir()
st.caption(
    f"At most {max_jobs()} runs at once (FCFD_MAX_JOBS), a launch beyond that is refused. "
    "A run keeps going when you close the page."
)
DEFAULT_RUNS = default_names()
methods = method_names()
# outside the form: a new preset, data folder or method reruns the page at once, so the
# preset's defaults and the method's own knobs show
c1, c2, c3 = st.columns(3)
data_dir = c3.text_input(
    "Data folder",
    os.environ.get("FCFD_DATA_DIR", ""),
    key="d_data_dir",
    help="folder with CIFAR / ImageNet data (default $FCFD_DATA_DIR); nothing is downloaded",
)
status = preset_status(data_dir.strip() or None)
preset_names = list(status)
preset_name = c1.selectbox(
    "Preset",
    preset_names,
    index=preset_names.index("digits"),
    key="d_preset",
    format_func=lambda n: n if status[n] is None else f"{n} (no data)",
    on_change=forget_form,
)
method = c2.selectbox("Method", methods, index=methods.index("fcfd"), key="d_method")
preset = presets.load(preset_name)
st.caption(f"`{preset_name}`: {preset.description}. Source: {preset.source}")
if status[preset_name]:
    st.warning(f"{preset_name} cannot run here: {status[preset_name]}")

teachers = models_state.checkpoints(root)
with st.form("launch"):
    c1, c2, c3, c4 = st.columns(4)
    archs = models.names()
    student = c1.selectbox("Student", archs, index=archs.index(preset.student), key="d_student")
    t_labels = [c["label"] for c in teachers] or ["(no checkpoint in this folder)"]
    first = default_teacher(teachers, preset, DEFAULT_RUNS["teacher"])
    t_label = c2.selectbox("Teacher", t_labels, index=first, key="d_teacher")
    devices = device_choices()
    device = c3.selectbox("Device", devices, key="d_device")
    name = c4.text_input("Run name", "", key="d_name", help="default: method-student-eE-sSEED")
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input("Epochs", 1, 500, int(preset.train["epochs"]), key="d_epochs")
    lr = c2.number_input("lr", 0.0001, 1.0, float(preset.train["lr"]), format="%.4f", key="d_lr")
    seed = c3.number_input("seed", 0, 10_000, 0, key="d_seed")
    st.caption(f"Knobs of {method} (from the `{preset_name}` preset, else the method's defaults)")
    own = knobs(method)
    given = {**{k.name: k.default for k in own}, **preset.knobs_for(method)}
    columns = st.columns(4)
    values = {
        k.name: knob_input(columns[i % 4], k, given[k.name], f"d_knob_{method}_{k.name}")
        for i, k in enumerate(own)
    }
    submitted = st.form_submit_button(
        "Launch", type="primary", disabled=status[preset_name] is not None
    )

if submitted:
    teacher = teachers[t_labels.index(t_label)]["path"] if teachers else None
    spec = JobSpec(
        name=name.strip() or f"{method}-{student}-e{epochs}-s{seed}",
        method=method,
        student=student,
        teacher=teacher,
        epochs=int(epochs),
        lr=float(lr),
        seed=int(seed),
        preset=preset_name,
        knobs=values,
        device=device,
        data_dir=data_dir.strip() or None,
    )
    try:
        job, started = jobs.launch(root, spec)
    except Exception as e:  # noqa: BLE001 - refused or invalid: say so, keep the page
        state.show_error(e)
    else:
        if started:
            st.success(f"started {job.name} (pid {job.pid}) -> {job.path}")
        else:
            st.info(f"{job.name} exists already ({job.state}); nothing new started")
        st.session_state["d_watch"] = job.name


def live(polling: bool) -> None:
    """Jobs, Stop buttons and live curves; reruns itself every 2 s while runs are active."""
    all_jobs = jobs.list_jobs(root)
    active = [j for j in all_jobs if j.active]
    if polling and not active:
        st.rerun()  # the last run ended: one full rerun stops the polling
    if not all_jobs:
        st.info("No runs yet.")
        return
    if active:
        st.plotly_chart(viz_app.progress_figure([vars(j) for j in active]), key="d_progress")
        for j in active:
            c1, c2 = st.columns([4, 1])
            c1.write(f"**{j.name}**: {j.state}, epoch {j.epoch or 0}/{j.epochs or '?'}")
            if c2.button("Stop", key=f"stop_{j.name}", disabled=j.state == "stopping"):
                jobs.stop(root, j.name)
                st.rerun(scope="fragment")
    for j in all_jobs:
        if j.state in ("failed", "interrupted", "diverged") and j.message:
            st.warning(f"{j.name} {j.state}: {j.message}")
    names = [j.name for j in all_jobs if j.row and j.state != "unreadable"]
    if not names:
        return
    watch = st.session_state.get("d_watch")
    if watch in names and st.session_state.get("d_shown") != watch:
        st.session_state["d_shown"] = watch  # a run just launched: show it once it exists
        st.session_state["d_live"] = watch
        if "d_cmp" in st.session_state:
            st.session_state["d_cmp"] = [watch, *st.session_state["d_cmp"]][:4]
    for key in ("d_live", "d_cmp"):
        state.keep_valid(key, names)
    left, right = st.columns(2)
    pick = left.selectbox("Loss terms of", names, key="d_live")
    left.plotly_chart(viz.loss_curves_figure(models_state.metrics(root / pick)), key="d_loss")
    by_name = {j.name: j for j in all_jobs}
    default = [n for n in names if by_name[n].active or n == pick]
    default += [
        n for n in (DEFAULT_RUNS["kd"], DEFAULT_RUNS["fcfd"]) if n in names and n not in default
    ]
    chosen = right.multiselect("Compare test accuracy", names, default=default[:4], key="d_cmp")
    runs = {state.run_label(by_name[n]): models_state.metrics(root / n) for n in chosen}
    right.plotly_chart(viz.accuracy_curves_figure(runs), key="d_acc")


polling = any(j.active for j in jobs.list_jobs(root))
st.subheader("Runs")
st.fragment(run_every=2.0 if polling else None)(live)(polling)
