"""``modelloop runs sweep``: mark the runs whose process died KILLED.

    modelloop runs sweep [--dry-run] [--stale-after DURATION] [--untracked-older-than DURATION]
                         [--output table|json]

Thin: the decisions are :func:`modelloop.tracking.sweep.sweep_runs`'.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from modelloop.cli._common import OutputFormat, OutputOption, _client, _examples

if TYPE_CHECKING:
    from modelloop.tracking.sweep import Sweep

SWEEP_HELP = (
    "Mark RUNNING runs whose process died (killed with -9, out of memory, a lost machine) "
    "KILLED, with the reason as their error, the tag modelloop.swept and their end dated at "
    "their last sign of life.\n\n"
    "A run started with ml.start_run records its host and pid, and its process writes the tag "
    "modelloop.heartbeat every MODELLOOP_HEARTBEAT_SECONDS (default 30). The run is dead when "
    "its process on this host is gone (no such pid, a zombie, or the pid reused by a later "
    "process), or, seen from any host, when it missed 5 heartbeats (--stale-after sets another "
    "threshold, never under 2 heartbeats).\n\n"
    "Runs that record no process (started before heartbeats existed, or by Client.create_run) "
    "are left alone and counted, unless --untracked-older-than says which are old enough to "
    "call dead.\n\n"
    "A server sweeps its store by itself (at start, then every heartbeat interval), but can "
    "only check pids on its own host: run this command, pointed at the server with "
    "MODELLOOP_TRACKING_URI, on the host where training died to mark its runs at once."
)
SWEEP_EPILOG = _examples(
    "modelloop runs sweep --dry-run",
    "modelloop runs sweep",
    "modelloop runs sweep --stale-after 15m --output json",
    "modelloop runs sweep --untracked-older-than 7d --dry-run",
    "MODELLOOP_TRACKING_URI=http://ml-host:8765 modelloop runs sweep",
)


def _duration(value: str | None, option: str) -> timedelta | None:
    if value is None:
        return None
    from modelloop.errors import InvalidArgument
    from modelloop.monitoring.monitor import parse_duration

    try:
        duration = parse_duration(value)
    except ValueError as exc:
        raise InvalidArgument(f"{option}: {exc}") from None
    if duration <= timedelta(0):
        raise InvalidArgument(f"{option}: {value!r} is not a positive duration")
    return duration


def sweep(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say which runs would be marked; change nothing.")
    ] = False,
    stale_after: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Dead after this long without a heartbeat, e.g. 90s, 15m, 1h. Default: 5 of "
            "the run's own heartbeat intervals (2.5 min at the default 30 s).",
            show_default=False,
        ),
    ] = None,
    untracked_older_than: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Also mark runs that record no process, when started longer ago than this "
            "(e.g. 7d). Default: leave them alone.",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.tracking.sweep import sweep_runs

    stale = _duration(stale_after, "--stale-after")
    untracked = _duration(untracked_older_than, "--untracked-older-than")
    with _client() as client:
        found = sweep_runs(
            client.store, stale_after=stale, untracked_older_than=untracked, dry_run=dry_run
        )
        names = {e.experiment_id: e.name for e in client.list_experiments()} if found else {}
    if output is OutputFormat.json:
        from modelloop.cli import _output

        _output.print_json(
            {
                "dry_run": found.dry_run,
                "killed": [
                    {
                        "run_id": r.run_id,
                        "experiment": names.get(r.experiment_id, r.experiment_id),
                        "name": r.name,
                        "cause": r.cause,
                        "reason": r.reason,
                        "end_time": r.last_seen,
                    }
                    for r in found.killed
                ],
                "alive": found.alive,
                "untracked": found.untracked,
            }
        )
        return
    _print_sweep(found, names)


def _print_sweep(found: Sweep, names: dict[str, str]) -> None:
    count = len(found.killed)
    runs = "run" if count == 1 else "runs"
    if found.dry_run:
        typer.echo(
            f"Would mark {count} {runs} KILLED (dry run: nothing changed)" + ":" * bool(count)
        )
    else:
        typer.echo(f"Marked {count} {runs} KILLED" + ":" * bool(count))
    for run in found.killed:
        experiment = names.get(run.experiment_id, run.experiment_id)
        typer.echo(f"  {run.run_id}  {experiment}/{run.name}: {run.reason}")
    typer.echo(f"Alive: {found.alive} RUNNING {'run' if found.alive == 1 else 'runs'}")
    if found.untracked:
        typer.echo(
            f"Left alone: {found.untracked} RUNNING "
            f"{'run records' if found.untracked == 1 else 'runs record'} no process (started "
            "before heartbeats, or by Client.create_run); --untracked-older-than DURATION marks "
            "the old ones"
        )


def register(runs_app: typer.Typer) -> None:
    """Attach ``modelloop runs sweep``."""
    runs_app.command("sweep", help=SWEEP_HELP, epilog=SWEEP_EPILOG)(sweep)
