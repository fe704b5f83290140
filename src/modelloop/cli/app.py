"""The ``modelloop`` command line: a thin layer over the SDK.

    modelloop --version
    modelloop server [--host] [--port] [--token] [--workers] [--log-level]
    modelloop ui [the options of server]
    modelloop experiments list [--output table|json]
    modelloop runs list [--experiment NAME ...] [--filter] [--order-by ...] [--max-results]
    modelloop runs show RUN_ID [--output table|json]
    modelloop runs sweep [--dry-run] [--stale-after] [--untracked-older-than]
    modelloop db upgrade [--database-url]
    modelloop db current [--database-url]
    modelloop clock [--simulated WHEN | --wall]
    modelloop import mlflow SOURCE [--experiment NAME ...] [--dry-run] [--output table|json]

Commands translate options into SDK calls and render the results; they decide nothing. Where the
data lives comes from the SDK's settings (``MODELLOOP_HOME``, ``MODELLOOP_DATABASE_URL``,
``MODELLOOP_TRACKING_URI``), so the same command reads a local store or a server.

A user's mistake (any :class:`~modelloop.errors.ModelloopError`, a bad option) prints one line,
``Error: <message>``, on stderr and exits with the error's ``exit_code``; never a traceback.
Heavy libraries (pandas, SQLAlchemy, FastAPI, ...) are imported inside the commands that need
them, so ``modelloop --help`` answers at once.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from modelloop._version import __version__
from modelloop.cli._common import (
    DatabaseUrlOption,
    LogLevel,
    OutputFormat,
    OutputOption,
    _client,
    _examples,
    report_error,
)
from modelloop.errors import ModelloopError

try:  # Typer that vendors Click: its usage errors derive from TyperException
    from typer import TyperException as _UsageProblem
except ImportError:  # pragma: no cover - older Typer on top of Click
    from click import ClickException as _UsageProblem  # type: ignore[assignment]

if TYPE_CHECKING:
    pass


class _CommandLine(TyperGroup):
    """The root command: reports every user mistake as one ``Error:`` line (Typer, CliRunner
    and ``main()`` all come through here)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
            code = result if isinstance(result, int) else 0
        except _UsageProblem as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help, already printed by Rich
                code = exc.exit_code
            else:
                ctx = getattr(exc, "ctx", None)
                message = exc.format_message().rstrip()
                if ctx is not None:
                    stop = "" if message.endswith((".", "!", "?")) else "."
                    message = f"{message}{stop} See '{ctx.command_path} --help'."
                code = report_error(message, exc.exit_code)
        except ModelloopError as exc:
            code = report_error(exc.message, exc.exit_code)
        except typer.Abort:
            code = report_error("Aborted.", 1)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_CommandLine,
    name="modelloop",
    help=(
        "modelloop: track experiments and runs, and serve them over HTTP.\n\n"
        "Data lives where the settings say: $MODELLOOP_HOME (default ./.modelloop, SQLite + local "
        "files), $MODELLOOP_DATABASE_URL, or a server at $MODELLOOP_TRACKING_URI."
    ),
    epilog=_examples(
        "python -m modelloop.examples.quickstart",
        'modelloop runs list --experiment quickstart --order-by "metrics.valid_auc DESC"',
        "modelloop runs show <run-id>",
        "modelloop server",
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
experiments_app = typer.Typer(
    help="Named groups of runs.",
    no_args_is_help=True,
    epilog=_examples("modelloop experiments list", "modelloop experiments list --output json"),
)
runs_app = typer.Typer(
    help="Executions with params, metric histories, tags and artifacts.",
    no_args_is_help=True,
    epilog=_examples(
        'modelloop runs list --experiment quickstart --order-by "metrics.valid_auc DESC"',
        "modelloop runs show <run-id>",
        "modelloop runs sweep --dry-run",
    ),
)
db_app = typer.Typer(
    help="The metadata database's schema (SQLite or PostgreSQL).",
    no_args_is_help=True,
    epilog=_examples("modelloop db current", "modelloop db upgrade"),
)
app.add_typer(experiments_app, name="experiments")
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"modelloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """modelloop: track experiments and runs, and serve them over HTTP."""


# -- server --------------------------------------------------------------------------------------


@app.command(
    help="Serve the REST API (docs at /docs) over the store named by the settings, and run "
    "the stored monitors and automation policies on schedule (Prometheus gauges at "
    "/metrics).\n\n"
    "Clients point at it with MODELLOOP_TRACKING_URI=http://HOST:PORT (and MODELLOOP_TOKEN).",
    epilog=_examples(
        "modelloop server",
        "modelloop server --port 9000 --workers 2",
        "MODELLOOP_TOKEN=$(modelloop users token --generate) modelloop server --host 0.0.0.0",
        "MODELLOOP_TRACKING_URI=http://127.0.0.1:8765 modelloop runs list",
    ),
)
def server(
    host: Annotated[
        str,
        typer.Option(help="Address to bind. Anything but loopback requires a token."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MODELLOOP_TOKEN",
            help="Bearer token clients must send. Prefer the environment variable: command "
            "lines are visible to other users.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Server processes.", min=1)] = 1,
    log_level: Annotated[LogLevel, typer.Option(help="Server log verbosity.")] = LogLevel.info,
    monitor_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between runs of the stored monitors (their due windows) and policies; "
            "0 turns the scheduler off.",
            min=0,
        ),
    ] = 60.0,
) -> None:
    from modelloop.server import run_server

    run_server(
        host,
        port,
        token=token,
        workers=workers,
        log_level=log_level.value,
        monitor_interval=monitor_interval,
    )


@app.command(
    "ui",
    help="The web UI: 'modelloop server' (same options), printing the UI's address (/ui/). "
    "Experiments, runs, metric charts and run comparisons, in a browser.",
    epilog=_examples(
        "MODELLOOP_HOME=~/experiments modelloop ui --port 9000",
        "MODELLOOP_TOKEN=$(modelloop users token --generate) modelloop ui --host 0.0.0.0",
    ),
)
@functools.wraps(server)
def ui(**options: Any) -> None:
    host = str(options.get("host", "127.0.0.1"))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"modelloop UI: http://{shown}:{options.get('port', 8765)}/ui/")
    server(**options)


# -- experiments ---------------------------------------------------------------------------------


@experiments_app.command(
    "list",
    help="List every experiment.",
    epilog=_examples("modelloop experiments list", "modelloop experiments list --output json"),
)
def experiments_list(output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output

    with _client() as client:
        experiments = client.list_experiments()
    if output is OutputFormat.json:
        _output.print_json([_output.experiment_record(e) for e in experiments])
    else:
        _output.experiments_table(experiments)


# -- runs ----------------------------------------------------------------------------------------


@runs_app.command(
    "list",
    help="List runs, filtered and sorted like ml.search_runs.\n\n"
    "The table always shows the metrics and params that --filter and --order-by name, then "
    "as many others as the terminal fits; --output json has everything.",
    epilog=_examples(
        "modelloop runs list",
        "modelloop runs list --experiment quickstart --max-results 10",
        "modelloop runs list --filter \"metrics.valid_auc > 0.9 and params.num_leaves = '31'\"",
        "modelloop runs list --filter \"status = 'FAILED'\"",
        'modelloop runs list --order-by "metrics.valid_auc DESC" --order-by "start_time"',
        "modelloop runs list --output json | jq '.[0].run_id'",
    ),
)
def runs_list(
    experiment: Annotated[
        list[str] | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="NAME",
            help="Experiment name or id; repeat for several. Default: all experiments.",
            show_default=False,
        ),
    ] = None,
    filter: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            metavar="FILTER",
            help="Which runs, e.g. \"metrics.auc > 0.9 and params.model = 'lgbm'\". Fields: "
            "metrics.*, params.*, tags.*, and run_id, name, status, user, start_time, end_time, "
            "parent_run_id. Operators: = != < <= > >= LIKE ILIKE IN, NOT IN; and, or, (...).",
            show_default=False,
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option(
            "--order-by",
            metavar="KEY",
            help='Sort key, e.g. "metrics.auc DESC"; repeat for ties. Default: newest first.',
            show_default=False,
        ),
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max-results", "-n", help="At most this many runs.", min=1)
    ] = 50,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output

    with _client() as client:
        runs = client.find_runs(experiment, filter, order_by, max_results)
        names = {e.experiment_id: e.name for e in client.list_experiments()}
    if output is OutputFormat.json:
        _output.print_json([_output.run_record(r, names.get(r.experiment_id)) for r in runs])
        return
    hint = None
    if len(runs) == max_results:
        hint = f"there may be more: raise --max-results (now {max_results})"
    _output.runs_table(runs, names, asked=[filter or "", *(order_by or ())], more_hint=hint)


@runs_app.command(
    "show",
    help="Everything about one run: status, params, latest metrics, tags, code version, "
    "environment, artifacts, and the error of a failed run.",
    epilog=_examples(
        "modelloop runs show <run-id> --output json | jq .metrics",
    ),
)
def runs_show(
    run_id: Annotated[
        str,
        typer.Argument(metavar="RUN_ID", help="The run's 32-character id.", show_default=False),
    ],
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output

    with _client() as client:
        run = client.get_run(run_id)
        names = {e.experiment_id: e.name for e in client.list_experiments()}
        experiment = names.get(run.experiment_id)
        artifacts = client.list_artifacts(run_id)
    if output is OutputFormat.json:
        _output.print_json(_output.run_detail_record(run, experiment, artifacts))
    else:
        _output.run_detail(run, experiment, artifacts)


# -- db ------------------------------------------------------------------------------------------


def _database_url(url: str | None) -> str:
    from modelloop.settings import load_settings

    return url or load_settings().database_url


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command(
    "upgrade",
    help="Migrate the database to the newest schema and say from which revision to which.\n\n"
    "Safe to repeat; the SDK and the server also migrate on first use.",
    epilog=_examples(
        "modelloop db upgrade",
        "modelloop db upgrade --database-url postgresql+psycopg://user@db.example:5432/modelloop",
    ),
)
def db_upgrade(database_url: DatabaseUrlOption = None) -> None:
    from modelloop.store import Database

    url = _database_url(database_url)
    db = Database(url)
    try:
        before = db.upgrade()
        after = db.current_revision()
    finally:
        db.dispose()
    where = _safe_url(url)
    if before == after:
        typer.echo(f"{where} is already at revision {after} (head)")
    else:
        typer.echo(f"Upgraded {where} from revision {before or 'none (empty)'} to {after}")


@db_app.command(
    "current",
    help="Print the database's schema revision and whether it is the newest.",
    epilog=_examples("modelloop db current"),
)
def db_current(database_url: DatabaseUrlOption = None) -> None:
    from modelloop.store import HEAD_REVISION, Database

    url = _database_url(database_url)
    db = Database(url)
    try:
        revision = db.current_revision()
    finally:
        db.dispose()
    if revision == HEAD_REVISION:
        typer.echo(f"{revision} (head)")
    elif revision is None:
        typer.echo(f"none (empty database at {_safe_url(url)}; run 'modelloop db upgrade')")
    else:
        typer.echo(f"{revision} (head is {HEAD_REVISION}; run 'modelloop db upgrade')")


def main(argv: Sequence[str] | None = None) -> None:
    """The ``modelloop`` console script."""
    app(args=None if argv is None else list(argv), prog_name="modelloop")


# Command groups of other domains live in their own modules; they import helpers from this one,
# so they are attached last.
from modelloop.cli import audit as _audit  # noqa: E402
from modelloop.cli import clock as _clock  # noqa: E402
from modelloop.cli import datasets as _datasets  # noqa: E402
from modelloop.cli import demo as _demo  # noqa: E402
from modelloop.cli import gate as _gate  # noqa: E402
from modelloop.cli import importing as _importing  # noqa: E402
from modelloop.cli import monitoring as _monitoring  # noqa: E402
from modelloop.cli import pipelines as _pipelines  # noqa: E402
from modelloop.cli import policy as _policy  # noqa: E402
from modelloop.cli import registry as _registry  # noqa: E402
from modelloop.cli import runs as _runs  # noqa: E402
from modelloop.cli import serving as _serving  # noqa: E402

app.add_typer(_registry.models_app, name="models")
app.add_typer(_audit.audit_app, name="audit")
app.add_typer(_audit.users_app, name="users")
app.add_typer(_datasets.datasets_app, name="datasets")
app.add_typer(_pipelines.pipelines_app, name="pipelines")
app.add_typer(_monitoring.monitor_app, name="monitor")
app.add_typer(_policy.policy_app, name="policy")
app.add_typer(_demo.demo_app, name="demo")
app.add_typer(_importing.import_app, name="import")
app.command(
    "lineage",
    epilog=_examples(
        "modelloop lineage <run-id>",
        "modelloop lineage dataset:quickstart-train@1 --output json",
    ),
)(_pipelines.lineage)
app.command(
    "reproduce",
    epilog=_examples(
        "modelloop reproduce <pipeline-run-id>",
        "modelloop reproduce <pipeline-run-id> --executor process --output json",
    ),
)(_pipelines.reproduce)
_runs.register(runs_app)
_serving.register(app)
_gate.register(app)
_clock.register(app)
