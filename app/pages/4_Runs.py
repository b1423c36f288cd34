"""Runs: every run directory of the folder, compared, resumed or deleted."""

from pathlib import Path

import models_state
import report_state
import state
import streamlit as st

from fcfd_viz.experiments.demo import DEFAULTS
from fcfd_viz.jobs import control as jobs
from fcfd_viz.runs.metric import task_columns
from fcfd_viz.viz import app as viz_app
from fcfd_viz.viz import figures as viz

st.title("Runs")
root = state.runs_dir()
all_jobs = jobs.list_jobs(root)
st.caption(f"`{root}`: the same table as `fcfd runs {root}`, with live states.")
if not all_jobs:
    st.info("No runs yet: build the default runs on the Home page or launch one on Distill.")
    st.stop()


def short(path: str | None) -> str | None:
    """A teacher path relative to the runs folder when it lies inside it."""
    if not path:
        return None
    try:
        p, r = Path(path).resolve(), root.resolve()
    except (OSError, ValueError):  # a junk path (a NUL byte, a link loop): show it as it is
        return path
    return p.relative_to(r).as_posix() if r in p.parents else path


# runs of another task (detection) add its metric's columns (mAP, best_mAP)
tasks = [j.row.get("task") for j in all_jobs]
rows = [
    {
        "run": j.name,
        "state": f"unreadable: {j.message}" if j.state == "unreadable" else j.state,
        "method": j.method,
        "student": j.student,
        "dataset": j.row.get("dataset"),
        "epochs": f"{j.epoch or 0}/{j.epochs or '?'}",
        "top1": j.top1,
        "best_top1": j.row.get("best_top1"),
        "top5": j.row.get("top5"),
        **task_columns(j.row, tasks),
        "seconds": j.row.get("seconds"),
        "teacher": short(j.row.get("teacher")),
    }
    for j in all_jobs
]
num = st.column_config.NumberColumn
results = ["top1", "best_top1", "top5", *task_columns({}, tasks)]
cols = {k: num(format="%.2f") for k in results} | {"seconds": num(format="%.0f")}
st.dataframe(rows, hide_index=True, width="stretch", column_config=cols)

st.subheader("Compare")
names = [j.name for j in all_jobs if j.state != "unreadable" and j.epoch]
by_name = {j.name: j for j in all_jobs}
c1, c2 = st.columns([3, 1])
default = [n for n in names if n.startswith(f"{DEFAULTS}/")] or names[:3]
state.keep_valid("r_cmp", names)
chosen = c1.multiselect("Runs", names, default=default, key="r_cmp")
runs = {state.run_label(by_name[n]): models_state.metrics(root / n) for n in chosen}
terms = sorted({k for m in runs.values() for r in m for k in (r.get("losses") or {})})
maps = ["map", "map_50"] if any("map" in r for m in runs.values() for r in m) else []
metric = c2.selectbox("Second metric", ["loss", *maps, *terms, "train_top1"], key="r_metric")
left, right = st.columns(2)
left.plotly_chart(viz.accuracy_curves_figure(runs), key="r_acc")
right.plotly_chart(viz_app.metric_compare_figure(runs, metric), key="r_metric_fig")

st.subheader("Shareable report")
st.caption(
    "One HTML file that opens offline: the curves of the runs picked above, their teacher's "
    "probe and the students' functional gap, and each run's config.json with the `fcfd` "
    "command that trains it again."
)
if not chosen:
    st.info("Pick runs under Compare to download them as one report.")
else:
    report_state.report_download(root, chosen)

st.subheader("Resume or delete")
idle = [j.name for j in all_jobs if not j.active]
c1, c2 = st.columns(2)
with c1:
    resumable = [j.name for j in all_jobs if j.state in jobs.RESUMABLE]
    state.keep_valid("r_res", resumable or ["-"])
    pick = st.selectbox("Resume a stopped or interrupted run", resumable or ["-"], key="r_res")
    if st.button("Resume", disabled=not resumable, key="r_resume"):
        try:
            job = jobs.resume(root, pick)
            st.success(f"{job.name}: {job.state} (follow it on the Distill page)")
        except Exception as e:  # noqa: BLE001
            state.show_error(e)
with c2:
    state.keep_valid("r_del", idle or ["-"])
    pick = st.selectbox("Delete a run (not while it runs)", idle or ["-"], key="r_del")
    sure = st.checkbox("Yes, delete the selected run and its checkpoints", key="r_sure")
    if st.button("Delete", type="primary", disabled=not (idle and sure), key="r_delete"):
        try:
            jobs.delete(root, pick)
        except Exception as e:  # noqa: BLE001
            state.show_error(e)
        else:
            st.session_state["r_flash"] = f"deleted {pick}"
            del st.session_state["r_sure"]
            st.rerun()
    if "r_flash" in st.session_state:
        st.success(st.session_state.pop("r_flash"))
