"""``modelloop clock``: which clock the store's data runs on, and moving it.

    modelloop clock                        # "wall clock", or "simulated clock: <instant>"
    modelloop clock --simulated WHEN       # the store's data runs on a simulated clock, at WHEN
    modelloop clock --wall                 # back to the wall clock (the data is live again)

Thin: the work is :mod:`modelloop.store_clock`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelloop.cli._common import OutputFormat, OutputOption, _examples

HELP = (
    "Show the store's clock: the wall clock, or the simulated instant a simulation (e.g. "
    "'modelloop demo fraud') reached, which the server's scheduler, the web UI and the "
    "monitor and policy commands take as now. --simulated sets or advances a simulated clock; "
    "--wall puts the store back on the wall clock."
)
EPILOG = _examples(
    "modelloop clock",
    "modelloop clock --simulated 2018-05-01T00:10Z",
    "modelloop clock --wall",
)


def clock(
    simulated: Annotated[
        str | None,
        typer.Option(
            help="Run the store on a simulated clock at this ISO time (naive: UTC).",
            show_default=False,
        ),
    ] = None,
    wall: Annotated[bool, typer.Option("--wall", help="Run the store on the wall clock.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output
    from modelloop.errors import InvalidArgument
    from modelloop.serving.predictions import parse_instant
    from modelloop.store_clock import set_store_clock, store_clock, use_wall_clock

    if simulated is not None and wall:
        raise InvalidArgument("Give --simulated WHEN or --wall, not both")
    if simulated is not None:
        at = parse_instant(simulated, "--simulated")
        assert at is not None
        set_store_clock(at)
    elif wall:
        use_wall_clock()
    found = store_clock()
    if output is OutputFormat.json:
        _output.print_json(found.to_dict())
    else:
        typer.echo(str(found))


def register(app: typer.Typer) -> None:
    """Attach ``modelloop clock`` to the root command."""
    app.command("clock", help=HELP, epilog=EPILOG)(clock)
