"""The report as one self-contained HTML page: inline CSS, charts as base64 PNG, no script.

Every piece of text goes through `html.escape`, so an utterance such as `<script>` shows as
text.
"""

from __future__ import annotations

import base64
from html import escape

from fpi.report.layout import Block, Chart, Heading, Paragraph, Table

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 1180px; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; border-bottom: 2px solid #e3e3e3;
     padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
nav { margin: .4rem 0 1.2rem; } nav a { margin-right: 1rem; color: #0062a3; }
p.muted { color: #666; font-size: .85rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .85rem; }
th, td { padding: .28rem .6rem; border-bottom: 1px solid #e6e6e6; text-align: left;
         vertical-align: top; }
th { background: #f4f5f7; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: .8rem 0 1.2rem; } figure img { max-width: 100%; height: auto; }
figcaption { color: #666; font-size: .8rem; }
"""


def _row(tag: str, cells: tuple[str, ...], numeric: tuple[bool, ...]) -> str:
    css = {True: ' class="num"', False: ""}
    inner = "".join(
        f"<{tag}{css[n]}>{escape(text)}</{tag}>" for text, n in zip(cells, numeric, strict=True)
    )
    return f"<tr>{inner}</tr>"


def _table(block: Table) -> str:
    head = _row("th", block.headers, block.numeric)
    body = "".join(_row("td", row, block.numeric) for row in block.rows)
    if not block.rows:
        body = f'<tr><td colspan="{len(block.headers)}">none</td></tr>'
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        tag = f"h{block.level}"
        return f'<{tag} id="{escape(block.anchor)}">{escape(block.text)}</{tag}>'
    if isinstance(block, Paragraph):
        css = ' class="muted"' if block.muted else ""
        return f"<p{css}>{escape(block.text)}</p>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Chart):
        data = base64.b64encode(block.image.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(block.image.title)}">'
            f"<figcaption>{escape(block.caption)}</figcaption></figure>"
        )
    raise TypeError(f"unknown block {block!r}")


def render_html(title: str, blocks: list[Block]) -> str:
    nav = " ".join(
        f'<a href="#{escape(b.anchor)}">{escape(b.text)}</a>'
        for b in blocks
        if isinstance(b, Heading) and b.level == 2
    )
    body = "\n".join(_block(b) for b in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><h1>{escape(title)}</h1><nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
