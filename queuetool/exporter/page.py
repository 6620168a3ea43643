"""The page at `/`: the report table and a stacked HIGH/NORMAL/LOW bar per function.

Plain HTML and inline CSS, no script and no external asset, so it works offline
behind a firewall; a meta refresh reloads it every few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape

from ..priority import Priority
from .figures import Cell, Figures

PRIORITIES = [p.label for p in Priority]

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .5em}h2{font-size:1.1em;margin:1.5em 0 .3em}
table{border-collapse:collapse;background:#fff}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;border-top:2px solid #999}
.state{margin:.2em 0}.ok{color:#176117}.down{color:#b00020;font-weight:bold}
.errors{color:#b00020;margin:.2em 0 .5em}
.bar{display:flex;width:24em;height:1em;background:#eee}
.seg{display:block;height:100%}
.seg.high{background:#c0392b}.seg.normal{background:#2e86c1}.seg.low{background:#7f8c8d}
.seg.scheduled{background-image:repeating-linear-gradient(45deg,#fff8 0 3px,transparent 3px 7px)}
.seg.blocked{outline:2px dashed #000;outline-offset:-2px}
.legend span{display:inline-block;margin-right:1em}
.legend i{display:inline-block;width:1em;height:.8em;margin-right:.3em;vertical-align:middle}
"""


def render_page(figures: Sequence[Figures], refresh: int, now: float | None = None) -> str:
    """The whole page for the figures of every queue."""
    now = time.time() if now is None else now
    body = "\n".join(_queue_section(f, now) for f in figures)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{int(refresh)}">'
        "<title>gearman queue: queuetool</title>"
        f"<style>{STYLE}</style></head><body>\n"
        "<h1>gearman queue</h1>\n"
        '<p class=legend><span><i class="seg high"></i>HIGH</span>'
        '<span><i class="seg normal"></i>NORMAL</span><span><i class="seg low"></i>LOW</span>'
        '<span><i class="seg normal scheduled"></i>scheduled</span>'
        '<span><i class="seg normal blocked"></i>blocked</span>'
        f" refreshed every {int(refresh)} s</p>\n"
        f"{body}\n</body></html>\n"
    )


def _queue_section(f: Figures, now: float) -> str:
    q = escape(f.queue)
    table_state = (
        '<span class="ok">readable</span>' if f.queue_up else '<span class="down">DOWN</span>'
    )
    if f.daemon_up is None:
        daemon_state = "no admin address"
    elif f.daemon_up:
        version = f.daemon.version if f.daemon else ""
        daemon_state = f'<span class="ok">up</span> {escape(version)}'
    else:
        daemon_state = '<span class="down">DOWN</span>'
    source = (
        "the daemon's counts (--store-queue-on-shutdown: its table is not its queue while it runs)"
        if f.source == "daemon"
        else escape(f"{f.backend} table {f.table}")
    )
    errors = "".join(f"<div>{escape(kind)}: {escape(msg)}</div>" for kind, msg in f.errors)
    return (
        f'<section class=queue data-queue="{q}">\n<h2>queue {q}</h2>\n'
        f"<div class=state>queue: {table_state}; gearmand: {daemon_state}; figures from "
        f"{source}, <span class=age>{max(0, now - f.taken_at):.0f} s</span> old</div>\n"
        + (f"<div class=errors>{errors}</div>\n" if errors else "")
        + _table(f)
        + "</section>"
    )


def _table(f: Figures) -> str:
    functions = f.functions()
    running = {s.function: s for s in f.daemon.status} if f.daemon else {}
    blocked_known = any(c.blocked is not None for c in f.cells)
    head = ["function", *(p.upper() for p in PRIORITIES), "total", "scheduled", "due"]
    if blocked_known:
        head.append("blocked")
    head += ["bytes", "running", "workers"]
    rows = []
    totals = {fn: sum(c.jobs for c in f.cells if c.function == fn) for fn in functions}
    widest = max(totals.values(), default=0) or 1
    for fn in functions:
        cells = [c for c in f.cells if c.function == fn]
        status = running.get(fn)
        rows.append(
            _row(
                fn,
                cells,
                blocked_known,
                status.running if status else None,
                status.workers if status else None,
                _bar(cells, widest),
            )
        )
    rows.append(_row("TOTAL", f.cells, blocked_known, None, None, "", css="total"))
    header = "".join(f'<th class="{"" if h == "function" else "n"}">{escape(h)}</th>' for h in head)
    return f"<table>\n<tr>{header}<th>backlog</th></tr>\n" + "\n".join(rows) + "\n</table>\n"


def _row(
    name: str,
    cells: Sequence[Cell],
    blocked_known: bool,
    running: int | None,
    workers: int | None,
    bar: str,
    css: str = "fn",
) -> str:
    def num(cls: str, value: int | None) -> str:
        if value is None:
            return f'<td class="n {cls}">&ndash;</td>'
        return f'<td class="n {cls}" data-count="{value}">{value:,}</td>'

    def total(attr: str) -> int | None:
        values = [getattr(c, attr) for c in cells]
        return None if any(v is None for v in values) else sum(values)

    parts = [f"<td class=function>{escape(name)}</td>"]
    parts += [num(p, sum(c.jobs for c in cells if c.priority == p)) for p in PRIORITIES]
    parts += [num("total", sum(c.jobs for c in cells))]
    parts += [num("scheduled", total("scheduled")), num("due", total("due"))]
    if blocked_known:
        parts.append(num("blocked", sum(c.blocked or 0 for c in cells)))
    parts += [num("bytes", total("payload_bytes")), num("running", running)]
    parts += [num("workers", workers), f"<td>{bar}</td>"]
    return f'<tr class={css} data-function="{escape(name)}">' + "".join(parts) + "</tr>"


def _bar(cells: Sequence[Cell], widest: int) -> str:
    """Per priority: due (solid), blocked (dashed outline), scheduled (striped)."""
    segments = []
    for p in PRIORITIES:
        mine = [c for c in cells if c.priority == p]
        jobs = sum(c.jobs for c in mine)
        scheduled = sum(c.scheduled or 0 for c in mine)
        blocked = sum(c.blocked or 0 for c in mine)
        for kind, count in (
            ("due", jobs - scheduled - blocked),
            ("blocked", blocked),
            ("scheduled", scheduled),
        ):
            if count > 0:
                width = 100.0 * count / widest
                segments.append(
                    f'<span class="seg {p} {kind}" style="width:{width:.3f}%" '
                    f'title="{p.upper()} {kind}: {count:,}"></span>'
                )
    return "<div class=bar>" + "".join(segments) + "</div>"
