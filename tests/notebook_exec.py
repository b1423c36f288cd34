"""Executing the tutorial notebooks as papermill and CI do (nbclient, an asyncio kernel
client), with a shell channel that does not lose the ``execute_reply`` (issue #29).

The stall of issue #29: nbclient mirrors an ipywidgets ``Output`` widget (``interactive``
draws into one) and tells the kernel about every output it captures with a ``comm_msg`` on
the shell channel, while the cell is still running. jupyter_client's ``Session.send`` writes
that message on a *synchronous shadow* of the asyncio shell socket. A send runs libzmq's
command processing, which consumes the socket's edge-triggered ``ZMQ_FD`` wake-up; when the
cell's ``execute_reply`` has just arrived (likely on a busy machine, where the client is
behind on the outputs), its wake-up is gone, and pyzmq's poller, which re-reads
``ZMQ_EVENTS`` only after sends it made itself, sleeps until the poll's timeout: nbclient
then finds the reply and goes on, a whole cell timeout late and without an error. The same
bug class as ipykernel#1554 on the kernel's side (fixed there by sending through the stream,
ipykernel#1529). ``ReplySafeShellChannel`` sends through the asyncio socket instead, so
pyzmq re-reads ``ZMQ_EVENTS`` after the send and wakes the waiting poll. (These tests used
to hand nbclient a blocking ``KernelManager``, whose client polls synchronously: it cannot
show the stall, nor does papermill run that way.)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from queue import Empty

import nbformat
import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from traitlets import Type

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
KERNEL_NAME = "fcfd-viz-notebook-tests"
INJECTED_TAG = "injected-parameters"


class ReplySafeShellChannel(AsyncZMQSocketChannel):
    """A shell channel whose sends go through the asyncio socket (see the module doc)."""

    def send(self, msg: dict) -> None:
        parts = self.session.serialize(msg)
        parts.extend(msg.get("buffers") or [])
        # zmq.asyncio sends at once when it can (the shell socket has no backlog) and then
        # re-reads ZMQ_EVENTS for any poll waiting on this socket: the reply wakes it
        self.socket.send_multipart(parts)


class ReplySafeKernelClient(AsyncKernelClient):
    """nbclient's usual asyncio kernel client with ``ReplySafeShellChannel``."""

    shell_channel_class = Type(ReplySafeShellChannel)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def parameters_index(nb: nbformat.NotebookNode) -> int:
    """Index of the first code cell, which must carry the ``parameters`` tag."""
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert "parameters" in nb.cells[first].metadata.get("tags", []), (
        "the first code cell must be tagged 'parameters'"
    )
    return first


def inject_parameters(nb: nbformat.NotebookNode, params: dict) -> nbformat.NotebookNode:
    """Insert (or replace) an ``injected-parameters`` cell right after the parameters cell."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.metadata.get("tags", [])]
    i = parameters_index(nb)
    lines = ["# Parameters injected by tests/test_notebooks.py"]
    lines += [f"{name} = {value!r}" for name, value in params.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(i + 1, cell)
    return nb


def text_of(nb: nbformat.NotebookNode) -> str:
    """Every stream and text/plain output of an executed notebook, in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def kernel_specs(kdir: Path) -> KernelSpecManager:
    """A kernelspec that starts this very interpreter, whatever else is installed."""
    spec = kdir / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": "fcfd-viz tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    return KernelSpecManager(kernel_dirs=[str(kdir)])


def kernel_env(plotly_renderer: str | None = "json") -> dict[str, str]:
    """The kernel's environment; ``plotly_renderer=None`` keeps plotly's own default, whose
    outputs (plotly.js in the first, HTML beside each figure) papermill runs also carry."""
    env = dict(os.environ)
    env.update(
        # 2 cores; 1 under pytest-xdist (tests/conftest.py), where the other worker has one
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
        MKL_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
        TQDM_DISABLE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    env.pop("FCFD_DATA_DIR", None)
    env.pop("PLOTLY_RENDERER", None)
    if plotly_renderer:  # "json": small outputs, no plotly.js bundle in every executed copy
        env["PLOTLY_RENDERER"] = plotly_renderer
    return env


def _kernel_time(stamp: str) -> float:
    """nbclient's cell timestamps (message header dates, UTC) as epoch seconds."""
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=timezone.utc).timestamp()


def execute(
    path: Path,
    params: dict,
    specs: KernelSpecManager,
    out_dir: Path,
    timeout: int,
    cells: dict | None = None,
    client_class: type = ReplySafeKernelClient,
    plotly_renderer: str | None = "json",
):
    """Run a parameterised copy of ``path``; returns (executed notebook, its text, seconds).

    ``cells`` receives, per code cell (index in the copy, the injected cell included), the
    client's wall time and ``late``: how long after the kernel sent its ``execute_reply``
    the client had the cell done. A cell that computes long is slow but not late; a reply
    the client sleeps through is late by up to the whole cell timeout."""
    nb = inject_parameters(read(path), params)
    km = AsyncKernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=specs, client_factory=client_class
    )
    started: dict[int, float] = {}
    timing = cells if cells is not None else {}

    def executed(cell, cell_index, execute_reply):
        now = time.time()
        reply_at = _kernel_time(cell.metadata["execution"]["shell.execute_reply"])
        timing[cell_index] = {"wall": now - started[cell_index], "late": now - reply_at}

    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        on_cell_execute=lambda cell, cell_index: started.update({cell_index: time.time()}),
        on_cell_executed=executed,
    )
    t0 = time.perf_counter()
    try:
        client.execute(env=kernel_env(plotly_renderer))
    finally:
        seconds = time.perf_counter() - t0
        if km.has_kernel:  # nbclient leaves a kernel it was given running (a timed-out cell
            run_sync(km.shutdown_kernel)(now=True)  # would compute on): shut it down here
        nbformat.write(nb, out_dir / path.name)  # the executed copy, for a look after a failure
        print(f"{path.name}: executed in {seconds:.0f} s")
    return nb, text_of(nb), seconds


async def _reply_wait(km: AsyncKernelManager, timeout: float) -> tuple[bool, float]:
    """One execute_request; while its reply is in flight, the loop is busy (as nbclient is
    with outputs to copy) and a comm_msg goes out on the shell channel, as nbclient's
    Output-widget mirror sends one. Returns (the reply is ours, seconds the get waited)."""
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=120)
        with contextlib.suppress(Empty):  # kernel_info replies wait_for_ready left behind
            while True:
                await kc.shell_channel.get_msg(timeout=1)
        msg_id = kc.execute("pass")
        pending = asyncio.ensure_future(kc.shell_channel.get_msg(timeout=timeout))
        await asyncio.sleep(0)  # the get now polls the shell socket
        # without yielding to the loop: wait for the kernel's idle (sent after its reply) on
        # a blocking view of iopub, so the reply's wake-up is there when the comm goes out
        iopub = zmq.Socket.shadow(kc.iopub_channel.socket.underlying)
        while True:
            assert iopub.poll(60_000), "the kernel never went idle"
            _, msg = kc.session.recv(iopub)
            content, parent = msg["content"], msg["parent_header"]
            if parent.get("msg_id") == msg_id and content.get("execution_state") == "idle":
                break
        time.sleep(0.2)
        kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": "none", "data": {}}))
        t0 = time.perf_counter()
        reply = await pending
        return reply["parent_header"].get("msg_id") == msg_id, time.perf_counter() - t0
    finally:
        kc.stop_channels()


async def reply_waits(specs) -> dict[str, tuple[bool, float]]:
    """The stall of issue #29 made certain, on one kernel: ``_reply_wait`` with the tests'
    shell channel ("fixed") and with jupyter_client's own ("stock", a 4 s timeout)."""
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    await km.start_kernel(env=kernel_env())
    try:
        km.client_factory = ReplySafeKernelClient
        fixed = await _reply_wait(km, timeout=30)
        km.client_factory = AsyncKernelClient
        return {"fixed": fixed, "stock": await _reply_wait(km, timeout=4)}
    finally:
        await km.shutdown_kernel(now=True)
