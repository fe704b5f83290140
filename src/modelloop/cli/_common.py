"""What every ``modelloop`` command shares: errors as one line, examples in the help, the output
option, and a client or registry on the settings from the environment.

Commands import this module, never :mod:`modelloop.cli.app`, which imports them all to build the
root command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from modelloop.registry.client import Registry
    from modelloop.tracking.client import Client


def report_error(message: str, exit_code: int) -> int:
    """Print ``Error: <message>`` as a single line on stderr; returns ``exit_code``."""
    one_line = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    typer.echo(f"Error: {one_line}", err=True)
    return exit_code


def _examples(*lines: str) -> str:
    """An epilog listing example command lines, one per line in the rendered help."""
    from rich.markup import escape

    return "\n\n".join(["[bold]Examples[/bold]", *(f"  $ {escape(line)}" for line in lines)])


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class LogLevel(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="table for people, json for programs (and jq)."),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the database; default: $MODELLOOP_DATABASE_URL, else the "
        "SQLite file under $MODELLOOP_HOME.",
        show_default=False,
    ),
]


@contextmanager
def _client() -> Iterator[Client]:
    """A client on the settings from the environment, closed (and flushed) afterwards."""
    from modelloop.tracking.client import Client

    client = Client()
    try:
        yield client
    finally:
        client.close()


OptionalReason = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why (recorded in the audit log).")
]


@contextmanager
def _registry() -> Iterator[Registry]:
    from modelloop.registry.client import Registry

    with _client() as client:
        registry = Registry(client)
        try:
            yield registry
        finally:
            registry.close()
