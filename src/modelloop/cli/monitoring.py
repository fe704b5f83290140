"""``modelloop monitor``: drift and delayed-label performance of deployments, on schedule.

    modelloop monitor apply FILE
    modelloop monitor list | show NAME
    modelloop monitor run NAME [--window WHEN]
    modelloop monitor results NAME [--kind drift|performance] [--version N] [--start] [--end]
    modelloop monitor alerts [NAME] [--state firing|resolved]

Thin: every command calls the monitoring SDK (local store or server alike) and renders it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelloop.cli._common import OutputFormat, OutputOption, _examples

if TYPE_CHECKING:
    from modelloop.monitoring.monitor import Monitor

monitor_app: typer.Typer = typer.Typer(
    help="Monitors: drift and delayed-label performance of a deployment's predictions, per "
    "window, with alerts. 'modelloop server' runs them on schedule; 'run' runs one now.",
    no_args_is_help=True,
    epilog=_examples(
        "modelloop monitor apply monitor.yaml",
        "modelloop monitor run quickstart",
        "modelloop monitor results quickstart --kind drift",
        "modelloop monitor alerts --state firing",
    ),
)
Name = Annotated[str, typer.Argument(metavar="NAME", help="The monitor's name.")]
_DRIFT_COLUMNS = ("drift.share", "drift.dataset", "drift.score", "drift.score_drifted")
_PERFORMANCE_COLUMNS = (
    "performance.label_coverage",
    "performance.auc_roc",
    "performance.average_precision",
    "performance.precision",
    "performance.recall",
    "performance.precision_at_k",
    "performance.card_precision_at_k",
    "performance.expected_calibration_error",
)


@monitor_app.command(
    "apply",
    help="Create or replace a monitor from a YAML file (validated whole; every problem is "
    "reported). The file's keys: name, deployment, model, window (15m, 1h, 1d or 'last N'), "
    "grace, since, catch_up (default 7d: windows due longer ago are left to --window), drift, "
    "performance (label_delay, threshold, k, entity), alerts, webhooks.",
    epilog=_examples("modelloop monitor apply monitor.yaml"),
)
def monitor_apply(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The monitor's YAML file.")],
) -> None:
    from modelloop.monitoring import fluent
    from modelloop.monitoring.monitor import load_monitor_file

    config = load_monitor_file(file)
    changed = fluent.apply_monitor(config)
    typer.echo(f"Monitor {config.name} {'applied' if changed else 'unchanged'}")


@monitor_app.command(
    "list",
    help="List the stored monitors.",
    epilog=_examples("modelloop monitor list", "modelloop monitor list --output json"),
)
def monitor_list(output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output
    from modelloop.monitoring import fluent

    monitors = fluent.list_monitors()
    if output is OutputFormat.json:
        _output.print_json([m.model_dump(mode="json") for m in monitors])
        return
    if not monitors:
        typer.echo("No monitors yet: modelloop monitor apply FILE")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("name", "deployment", "model", "window", "checks", "alert rules", "webhooks"):
        table.add_column(column, no_wrap=True)
    for m in monitors:
        table.add_row(
            _output.escape(m.name),
            _output.escape(m.deployment),
            _output.escape(m.model or "(the deployment's)"),
            m.window,
            _checks(m),
            str(len(m.alerts)),
            str(len(m.webhooks)),
        )
    _output.console().print(table)


@monitor_app.command(
    "show",
    help="A monitor's settings (as YAML, defaults included) and its firing alerts.",
    epilog=_examples("modelloop monitor show quickstart"),
)
def monitor_show(
    name: Name,
    output: Annotated[
        OutputFormat | None, typer.Option("--output", "-o", help="json instead of YAML.")
    ] = None,
) -> None:
    from modelloop.cli import _output
    from modelloop.monitoring import fluent

    monitor = fluent.get_monitor(name)
    if output is OutputFormat.json:
        _output.print_json(monitor.model_dump(mode="json"))
        return
    import yaml

    typer.echo(yaml.safe_dump(monitor.model_dump(mode="json"), sort_keys=False).rstrip())
    firing = fluent.list_alerts(name, state="firing")
    typer.echo(f"# {len(firing)} alert(s) firing" + (": " if firing else ""))
    for alert in firing:
        typer.echo(
            f"#   [{alert.severity}] {alert.rule}: {alert.metric} = {alert.value:.6g} "
            f"({alert.condition}) since {alert.first_window:%Y-%m-%d %H:%M}Z"
        )


@monitor_app.command(
    "run",
    help="Check the monitor's due windows now (on the store's clock) and store the results "
    "(what the server's scheduler does on its own), going back at most the monitor's catch_up. "
    "Idempotent: a stored window is not computed again. With --window, check the window "
    "containing that time, if it is due, however old.",
    epilog=_examples(
        "modelloop monitor run quickstart",
        "modelloop monitor run quickstart --output json",
    ),
)
def monitor_run(
    name: Name,
    window: Annotated[
        str | None,
        typer.Option(
            help="A time inside the window to check, e.g. 2026-11-25 or 2026-11-25T14:00Z.",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output
    from modelloop.monitoring import fluent

    with _output.console().status(f"Checking monitor {name}..."):
        results = fluent.run_monitor(name, window=window)
    if output is OutputFormat.json:
        _output.print_json(results)
        return
    stored = [r for r in results if r["stored"]]
    if not results:
        typer.echo(f"Nothing due for monitor {name}: every closed window is already checked")
        return
    for result in results:
        start = _utc(result["window_start"])
        if not result["stored"]:
            typer.echo(f"{result['kind']:<11} {start}  already stored")
            continue
        whole = next((s for s in result["scopes"] if s["model_version"] == 0), None)
        summary = _summary(whole["values"]) if whole else ""
        status = whole["status"] if whole else "no_data"
        typer.echo(f"{result['kind']:<11} {start}  {status:<19} {summary}")
        for note in whole.get("notes", []) if whole else []:
            typer.echo(f"  note: {note}")
        for alert in result["alerts"]:
            typer.echo(
                f"  alert {alert['state']}: {alert['rule']} ({alert['metric']} "
                f"{alert['condition']}, value {alert['value']:.6g})"
            )
    typer.echo(f"{len(stored)} window(s) stored, {len(results) - len(stored)} already there")


@monitor_app.command(
    "results",
    help="The monitor's windows as a time series: status, prediction count and the main "
    "values of each window; for drift, the columns that drifted with the test that said so "
    "(its p-value, or its distance against the threshold). Notes saying why a window's status "
    "is not ok follow the table. --output json has every value, and per column the statistic "
    "with its column type, method, p-value, threshold and whether it drifted.",
    epilog=_examples(
        "modelloop monitor results quickstart --kind drift",
        "modelloop monitor results quickstart --kind performance --start 2026-01-01 -o json",
    ),
)
def monitor_results(
    name: Name,
    kind: Annotated[str, typer.Option(help="drift or performance.")] = "drift",
    version: Annotated[
        int, typer.Option(help="A model version; 0 is the deployment as a whole.", min=0)
    ] = 0,
    start: Annotated[
        str | None, typer.Option(help="Windows starting at or after.", show_default=False)
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Windows starting before.", show_default=False)
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output
    from modelloop.monitoring import fluent

    frame = fluent.monitor_results(name, kind=kind, version=version, start=start, end=end)
    records = [
        {
            k: v.isoformat() if hasattr(v, "isoformat") else v
            for k, v in row.items()
            if not (isinstance(v, float) and math.isnan(v)) and v is not None
        }
        for row in frame.to_dict(orient="records")
    ]
    if output is OutputFormat.json:
        _output.print_json(records)
        return
    if not records:
        typer.echo(f"No {kind} windows stored for {name} yet: modelloop monitor run {name}")
        return
    from rich.table import Table

    columns = [
        c
        for c in (_DRIFT_COLUMNS if kind == "drift" else _PERFORMANCE_COLUMNS)
        if c in frame.columns
    ]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("window start", "status", "predictions", *(c.split(".", 1)[1] for c in columns)):
        table.add_column(column, no_wrap=True, justify="left" if " " in column else "right")
    if kind == "drift":
        table.add_column("drifted", overflow="fold")
    for record in records:
        cells = [
            record["window_start"][:16].replace("T", " "),
            record["status"],
            str(record["n_predictions"]),
            *(_number(record.get(c)) for c in columns),
        ]
        if kind == "drift":
            cells.append(_output.escape(_drifted(record)))
        table.add_row(*cells)
    console = _output.console()
    console.print(table)
    for record in records:
        for note in record.get("notes") or []:
            when = record["window_start"][:16].replace("T", " ")
            console.print(_output.escape(f"{when} {record['status']}: {note}"))


@monitor_app.command(
    "alerts",
    help="Alerts, newest first: which rule fired, on what value, since when, and whether it "
    "resolved and its webhooks were told.",
    epilog=_examples(
        "modelloop monitor alerts --state firing",
        "modelloop monitor alerts quickstart --output json",
    ),
)
def monitor_alerts(
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="Only this monitor's alerts.")
    ] = None,
    state: Annotated[
        str | None, typer.Option(help="firing or resolved.", show_default=False)
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output
    from modelloop.monitoring import fluent

    found = fluent.list_alerts(name, state=state)
    if output is OutputFormat.json:
        _output.print_json([a.to_dict() for a in found])
        return
    if not found:
        typer.echo("No alerts" + (f" {state}" if state else ""))
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in (
        "id",
        "monitor",
        "rule",
        "severity",
        "state",
        "metric",
        "value",
        "since",
        "windows",
        "webhooks",
    ):
        table.add_column(column, no_wrap=True)
    for a in found:
        table.add_row(
            str(a.alert_id),
            _output.escape(a.monitor),
            _output.escape(a.rule),
            a.severity,
            a.state,
            f"{a.metric} {a.condition}",
            f"{a.value:.4g}",
            f"{a.first_window:%Y-%m-%d %H:%M}",
            str(a.breaches),
            "told" if a.notified == a.state else "pending",
        )
    _output.console().print(table)


def _utc(ms: int) -> str:
    from modelloop.clock import from_ms

    return from_ms(ms).strftime("%Y-%m-%d %H:%MZ")


@monitor_app.command(
    "delete",
    help="Delete a monitor with its stored windows and alerts (the audit trail keeps what it "
    "was). Asks first unless --yes.",
    epilog=_examples("MODELLOOP_USER=ops modelloop monitor delete fraud-watch --yes"),
)
def monitor_delete(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    from modelloop.monitoring import fluent

    fluent.get_monitor(name)  # NotFound before asking
    if not yes:
        typer.confirm(f"Delete monitor {name} and every window and alert it stored?", abort=True)
    fluent.delete_monitor(name)
    typer.echo(f"Monitor {name} deleted")


def _checks(monitor: Monitor) -> str:
    checks = [name for name in ("drift", "performance") if getattr(monitor, name).enabled]
    return "+".join(checks) or "none"


def _summary(values: dict[str, Any]) -> str:
    shown = [
        f"{k.split('.', 1)[-1]}={_number(v)}"
        for k, v in values.items()
        if k in (*_DRIFT_COLUMNS, *_PERFORMANCE_COLUMNS, "predictions")
    ]
    return " ".join(shown)


def _drifted(record: Mapping[Any, Any]) -> str:
    """The window's drifted columns, each with its test: the p-value for a test, the value
    against the threshold for a distance (their statistics are not comparable)."""
    shown = []
    for column in record.get("drift.drifted_columns") or []:
        key = f"drift.column.{column}"
        method, p_value = record.get(f"{key}.method"), record.get(f"{key}.p_value")
        threshold = _number(record.get(f"{key}.threshold"))
        if p_value is not None:
            test = f"p={p_value:.2g} < {threshold}"
        else:
            test = f"{_number(record.get(key))} >= {threshold}"
        shown.append(f"{column} ({method} {test})")
    return ", ".join(shown) or "-"


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
