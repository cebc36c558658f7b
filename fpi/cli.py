"""The `fpi` command line: options, printing and exit codes. Logic lives in the library.

Heavy libraries (polars, lightgbm, shap, matplotlib) are imported inside commands so
that `fpi --help` starts fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from fpi import __version__
from fpi.errors import FpiError

app = typer.Typer(
    name="fpi",
    help="Failure-point isolation for voice assistants: which stage broke each turn, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a domain error into a red message and its exit code, never a traceback."""
    try:
        yield
    except FpiError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(exc.exit_code) from None


def _version(value: bool) -> None:
    if value:
        console.print(f"fpi {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Failure-point isolation for voice assistants."""


DumpArgs = Annotated[
    list[Path],
    typer.Argument(help="Trace dumps: .jsonl, .jsonl.gz, .jsonl.zst, .parquet, directories or globs."),
]
RejectsOption = Annotated[
    Path | None,
    typer.Option(
        "--rejects",
        help="Write invalid records here (JSONL, verbatim with reasons) and go on without them.",
    ),
]
