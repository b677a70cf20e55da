"""HTML for the report: plain pages, one small stylesheet, no script and no framework.

Everything shown comes from the feed or a results file and is escaped here. Tables
are wrapped in a box that scrolls sideways on a narrow screen, so the page itself
never does; figures are PNGs that shrink to the column. The Markdown tables that
`lab bench` prints (benchmarks/report.py) are turned into HTML by `markdown`, which
knows exactly what those tables use: pipes, `code` and **bold**.
"""

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

from benchmarks.claims import figure
from benchmarks.site.labs import LabPage

STATUS_CLASSES = {
    "met": "met",
    "not met": "missed",
    "NOT MET": "missed",
    "run failed": "missed",
    "partly measured": "partial",
}
_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")
_TAGS = re.compile(r"<[^>]+>")


def inline(text: str) -> str:
    """Escape `text`, rendering `code` and **bold**."""
    parts, last = [], 0
    for match in _INLINE.finditer(text):
        parts.append(html.escape(text[last : match.start()]))
        code, bold = match.groups()
        parts.append(
            f"<code>{html.escape(code)}</code>" if code else f"<strong>{html.escape(bold)}</strong>"
        )
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: set[int] | None = None,
    *,
    stack: bool = False,
) -> str:
    """An HTML table of rendered cells (headers too), in a box that scrolls sideways if it must.

    `stack`: on a narrow screen each row becomes a card, each cell labelled with its
    column (for tables of prose, which a sideways scroll would make unreadable).
    """
    numeric = numeric or set()
    labels = [html.escape(_TAGS.sub("", name), quote=True) for name in columns]

    def cell(tag: str, index: int, content: str) -> str:
        kind = ' class="num"' if index in numeric else ""
        label = f' data-label="{labels[index]}"' if stack and tag == "td" else ""
        return f"<{tag}{kind}{label}>{content}</{tag}>"

    head = "".join(cell("th", i, name) for i, name in enumerate(columns))
    body = "".join(
        "<tr>" + "".join(cell("td", i, content) for i, content in enumerate(cells)) + "</tr>"
        for cells in rows
    )
    kind = ' class="stack"' if stack else ""
    return (
        f'<div class="table-wrap"><table{kind}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _markdown_table(lines: list[str]) -> str:
    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    columns, rule, *rows = lines
    numeric = {i for i, mark in enumerate(cells(rule)) if mark.endswith(":")}
    return table(
        [inline(name) for name in cells(columns)],
        ([inline(cell) for cell in cells(line)] for line in rows),
        numeric,
    )


def markdown(text: str) -> str:
    """Render the Markdown `lab bench` prints: paragraphs and pipe tables (images dropped)."""
    blocks: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending and pending[0].startswith("|"):
            blocks.append(_markdown_table(pending))
        elif pending:
            blocks.append(f"<p>{inline(' '.join(pending))}</p>")
        pending.clear()

    for line in text.splitlines():
        if not line.strip() or line.startswith("!["):
            flush()
            continue
        if pending and pending[0].startswith("|") != line.startswith("|"):
            flush()
        pending.append(line)
    flush()
    return "\n".join(blocks)


def badge(status: str) -> str:
    """A claim's or measure's status as a coloured label."""
    kind = STATUS_CLASSES.get(status, "unmeasured")
    return f'<span class="badge {kind}">{html.escape(status)}</span>'


def claims_list(entries: Sequence[dict[str, Any]], pages: dict[str, str] | None = None) -> str:
    """Each claim: its quote, its status, and every measure with figure and provenance."""
    if not entries:
        return "<p>No claims name this lab.</p>"
    items = []
    for entry in entries:
        rows = [
            [
                inline(measure["what"]),
                html.escape(figure(measure["value"], measure.get("unit") or "")),
                html.escape(measure["threshold"] or "-"),
                badge(measure["verdict"])
                + (
                    f'<div class="reason">{inline(measure["reason"])}</div>'
                    if measure.get("reason")
                    else ""
                ),
                _provenance(measure),
            ]
            for measure in entry["measures"]
        ]
        page = (pages or {}).get(entry["part"])
        part = (
            f'<a href="{page}">{html.escape(entry["part"])}</a>'
            if page
            else html.escape(entry["part"])
        )
        items.append(
            f'<section class="claim" id="{html.escape(entry["id"])}">'
            f'<div class="claim-head">{badge(entry["status"])} <span class="part">{part}</span> '
            f'<code class="id">{html.escape(entry["id"])}</code></div>'
            f"<blockquote>{html.escape(entry['quote'])}</blockquote>"
            + table(
                ["measure", "measured", "threshold", "verdict", "measured on"],
                rows,
                {1, 2},
                stack=True,
            )
            + "</section>"
        )
    return "\n".join(items)


def _provenance(measure: dict[str, Any]) -> str:
    if not measure.get("results_file"):
        return "-"
    size = f"{measure['size']}, " if measure.get("size") else ""
    command = (
        f"<code>{html.escape(measure['command'])}</code><br>" if measure.get("command") else ""
    )
    where = f"{size}{measure.get('machine')}"
    when = f"commit {measure.get('commit')}, {measure.get('date')}"
    return (
        f"{command}{html.escape(where)}<br>{html.escape(when)}<br>"
        f'<span class="file">{html.escape(measure["results_file"])}</span>'
    )


def image(src: str, alt: str, caption: str = "") -> str:
    """A figure that shrinks to the column."""
    text = f"<figcaption>{inline(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{html.escape(src)}" alt="{html.escape(alt)}">{text}</figure>'


def missing(what: str, why: str) -> str:
    """A figure or section the data does not allow, said plainly."""
    return f'<p class="missing"><strong>{html.escape(what)}:</strong> {inline(why)}</p>'


def document(title: str, body: str, labs: Sequence[LabPage], current: str) -> str:
    """A whole page: the header with every lab's link, then `body`."""
    links = [("index.html", "Claims", "index")] + [
        (f"{lab.slug}.html", lab.title, lab.slug) for lab in labs
    ]
    current_mark = ' aria-current="page"'
    nav = "".join(
        f'<a href="{href}"{current_mark if slug == current else ""}>{html.escape(name)}</a>'
        for href, name, slug in links
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} — systems lab</title>"
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="style.css"></head>'
        f'<body><header><div class="wrap"><a class="brand" href="index.html">systems lab</a>'
        f"<nav>{nav}</nav></div></header>"
        f'<main class="wrap"><h1>{html.escape(title)}</h1>{body}</main>'
        '<footer class="wrap">Every figure comes from a results file a <code>lab</code> '
        'command wrote; the feed is <a href="latest.json">latest.json</a>.</footer>'
        "</body></html>\n"
    )
