"""The report as Markdown, with charts as PNG files next to it.

User text is escaped twice over: Markdown punctuation gets a backslash and `<`, `>`, `&`
become entities, so neither formatting nor raw HTML can be injected.
"""

from __future__ import annotations

import re

from fpi.report.layout import Block, Chart, Heading, Paragraph, Table

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]{}|~#!])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape_markdown(text: str) -> str:
    """`text` shown literally in Markdown (inline, on one line)."""
    text = " ".join(text.split())
    text = "".join(_ENTITIES.get(ch, ch) for ch in text)
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _table(block: Table) -> str:
    def line(cells) -> str:
        return "| " + " | ".join(escape_markdown(c) for c in cells) + " |"

    rule = "|" + "|".join("---:" if n else "---" for n in block.numeric) + "|"
    rows = [line(r) for r in block.rows] or [line(["none", *[""] * (len(block.headers) - 1)])]
    return "\n".join([line(block.headers), rule, *rows])


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {escape_markdown(block.text)}"
    if isinstance(block, Paragraph):
        text = escape_markdown(block.text)
        return f"*{text}*" if block.muted else text
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Chart):
        return f"![{escape_markdown(block.caption)}]({block.image.file_name})"
    raise TypeError(f"unknown block {block!r}")


def render_markdown(title: str, blocks: list[Block]) -> str:
    return "\n\n".join([f"# {escape_markdown(title)}", *(_block(b) for b in blocks)]) + "\n"
