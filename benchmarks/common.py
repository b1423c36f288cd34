"""Helpers shared by the benchmark scripts: timing medians and docs/benchmarks.md sections."""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> dict:
    """What the numbers were measured on."""
    info = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_json(name: str, obj: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return path


def write_section(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace the ``<!-- name:start -->...<!-- name:end -->`` section of ``doc`` (docs/benchmarks.md)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    title = "Results" if doc.name == "results.md" else "Benchmarks"
    text = (
        doc.read_text()
        if doc.exists()
        else f"# {title}\n\nWritten by the scripts in `benchmarks/`.\n"
    )
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def table(headers: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def mean_std(xs: list[float]) -> str:
    """``mean ± std`` of ``xs`` (std 0 for one value), two decimals."""
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.2f}"


def paired_table(
    values: dict[str, list[float] | dict[int, float]],
    pairs: list[tuple[str, str]],
    seeds_column: bool = False,
) -> str:
    """Per-seed differences ``a - b`` for each pair present in ``values``, as a table (``""``
    when no pair is). ``values[label]``: a list in seed order, or ``{seed: value}``; a pair is
    compared over the seeds both have (a study in progress compares what it can), and
    ``seeds_column`` says over how many."""
    as_dict = {k: v if isinstance(v, dict) else dict(enumerate(v)) for k, v in values.items()}
    rows = []
    for a, b in pairs:
        common = sorted(set(as_dict.get(a, {})) & set(as_dict.get(b, {})))
        if common:
            d = [as_dict[a][s] - as_dict[b][s] for s in common]
            count = [len(common)] if seeds_column else []
            rows.append([f"{a} - {b}", *count, mean_std(d), f"{sum(v > 0 for v in d)}/{len(d)}"])
    if not rows:
        return ""
    head = ["difference", *(["seeds"] if seeds_column else []), "mean ± std"]
    return table([*head, "seeds where first is higher"], rows)


def add_section_args(ap: argparse.ArgumentParser, name: str, heading: str) -> None:
    """``--name`` (results/NAME.json and the NAME section of the doc) and ``--heading``."""
    ap.add_argument(
        "--name",
        default=name,
        help="results/NAME.json and the NAME section of the doc (another name keeps the "
        "earlier measurement beside this one, e.g. one taken on another machine)",
    )
    ap.add_argument("--heading", default=heading, help="the section's heading")


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result); waits for queued CUDA work."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    sync()
    return time.perf_counter() - t0, time.process_time() - c0, out
