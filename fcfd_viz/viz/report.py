"""Self-contained HTML pages of plotly figures and text (no UI framework here).

A page is a list of :class:`Section` (a heading, some HTML, figures). plotly.js is inlined
once, before the first figure, and nothing is fetched from elsewhere: the file opens offline.
:func:`fcfd_viz.viz.figures.figures_to_html` (``fcfd probe --html``, ``fcfd gap --html``) and the study
report (:mod:`fcfd_viz.reports.study`, ``fcfd report``) both write through
:func:`html_page`; :func:`text`, :func:`heading`, :func:`code`, :func:`details` and :func:`table` build the
escaped HTML of a section.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 1em auto; padding: 0 1em;
       color: #222; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: 85%; }
table { border-collapse: collapse; font-size: 90%; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
.fig { margin: 1em 0; }
.note { color: #666; }
"""


@dataclass
class Section:
    """One part of a page: ``title`` (a heading, none when empty), ``body`` (HTML shown before
    the figures; escape text with :func:`text`) and ``figures``."""

    title: str = ""
    body: str = ""
    figures: list[go.Figure] = field(default_factory=list)


def text(s: str, note: bool = False) -> str:
    """A paragraph of plain text (escaped); ``note`` greys it."""
    cls = " class='note'" if note else ""
    return f"<p{cls}>{html.escape(s)}</p>\n"


def heading(s: str, level: int = 3) -> str:
    """A heading of plain text (escaped)."""
    return f"<h{level}>{html.escape(s)}</h{level}>\n"


def code(s: str) -> str:
    """A block of plain text kept as written: a command line, a JSON file."""
    return f"<pre><code>{html.escape(s, quote=False)}</code></pre>\n"


def details(summary: str, body: str) -> str:
    """``body`` (HTML) folded under a one-line ``summary``."""
    return f"<details><summary>{html.escape(summary)}</summary>\n{body}</details>\n"


def table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """An HTML table of ``rows`` (dicts) in ``columns``; floats with two decimals."""

    def cell(v) -> str:
        return "" if v is None else f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>\n" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"


def html_page(sections: Sequence[Section], title: str, intro: str = "") -> str:
    """One HTML page: ``title``, ``intro`` (HTML), then every section with its figures;
    plotly.js inlined once (before the first figure), no external script."""
    parts, first = [], True
    for s in sections:
        parts.append("<section>\n")
        if s.title:
            parts.append(f"<h2>{html.escape(s.title)}</h2>\n")
        parts.append(s.body)
        for fig in s.figures:
            div = fig.to_html(full_html=False, include_plotlyjs=first)
            parts.append(f"<div class='fig'>{div}</div>\n")
            first = False
        parts.append("</section>\n")
    esc = html.escape(title)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc}</title>\n"
        f"<style>{STYLE}</style></head>\n<body>\n<h1>{esc}</h1>\n{intro}{''.join(parts)}"
        "</body></html>\n"
    )
