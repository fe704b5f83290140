"""How the CLI shows things: Rich tables for people, JSON for programs.

Rendering only; every value comes from the SDK as it is. JSON keeps the SDK's units (times in
milliseconds since the epoch) and turns non-finite metric values into ``null`` so that any JSON
parser accepts the output.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelloop.clock import from_ms, now_ms

if TYPE_CHECKING:
    from rich.console import Console

    from modelloop.tracking.entities import ArtifactInfo, Experiment, Run

MAX_METRIC_COLUMNS = 5
MAX_PARAM_COLUMNS = 3
_ERROR_LINES = 20
_KEY_REFERENCE = re.compile(r"\b(metrics?|params?)\.([\w\-./:]+|`[^`]*`)")


def console() -> Console:
    """A console on stdout; wide when piped, so ids and numbers are never cut."""
    from rich.console import Console

    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, soft_wrap=False, width=200 if piped else None)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# -- values --------------------------------------------------------------------------------------


def format_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return from_ms(ms).astimezone().strftime("%Y-%m-%d %H:%M")  # the local time zone


def format_duration(run: Run) -> str:
    end = run.end_time if run.end_time is not None else now_ms()  # runs: the wall clock
    seconds = max(end - run.start_time, 0) / 1000
    if seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    else:
        text = f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    return text if run.end_time is not None else f"{text} so far"


def format_number(value: float) -> str:
    return f"{value:.6g}"


def format_size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


_STATUS_STYLE = {"RUNNING": "cyan", "FINISHED": "green", "FAILED": "red", "KILLED": "yellow"}


def _status(run: Run) -> str:
    style = _STATUS_STYLE.get(run.status.value, "")
    return f"[{style}]{run.status.value}[/]" if style else run.status.value


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# -- JSON shapes ---------------------------------------------------------------------------------


def experiment_record(experiment: Experiment) -> dict[str, Any]:
    return dataclasses.asdict(experiment)


def run_record(run: Run, experiment_name: str | None = None) -> dict[str, Any]:
    record = dataclasses.asdict(run)
    record["status"] = run.status.value
    record["experiment"] = experiment_name
    record["duration_ms"] = None if run.end_time is None else run.end_time - run.start_time
    return record


def run_detail_record(
    run: Run, experiment_name: str | None, artifacts: Sequence[ArtifactInfo]
) -> dict[str, Any]:
    record = run_record(run, experiment_name)
    record["artifacts"] = [dataclasses.asdict(a) for a in artifacts]
    return record


# -- tables --------------------------------------------------------------------------------------


def referenced_keys(texts: Iterable[str], entity: str) -> list[str]:
    """Metric or param keys a filter / order_by mentions, in order of appearance."""
    keys: list[str] = []
    for text in texts:
        for prefix, key in _KEY_REFERENCE.findall(text):
            key = key.strip("`")
            if prefix.rstrip("s") == entity and key not in keys:
                keys.append(key)
    return keys


def experiments_table(experiments: Sequence[Experiment]) -> None:
    from rich.table import Table

    out = console()
    if not experiments:
        out.print("No experiments yet. Start a run: [bold]ml.start_run(experiment=...)[/]")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("experiment id", no_wrap=True)
    table.add_column("name", style="bold")
    table.add_column("created", no_wrap=True)
    table.add_column("description")
    for exp in experiments:
        table.add_row(
            exp.experiment_id,
            escape(exp.name),
            format_time(exp.created_at),
            escape(exp.description or ""),
        )
    out.print(table)


@dataclass
class _Column:
    """A column of the runs table: plain-text cells, and how much it matters when space is short
    (lower ``rank`` is kept first; ``None`` is always kept)."""

    header: str
    cells: list[str]
    rank: int | None
    justify: Literal["left", "right"] = "left"
    style: str = ""
    max_width: int = 40
    wrap: bool = False
    markup: list[str] | None = None  # the cells as Rich markup, when they are styled one by one

    @property
    def width(self) -> int:
        return min(max(len(self.header), *(len(c) for c in self.cells)), self.max_width)


def runs_table(
    runs: Sequence[Run],
    experiment_names: Mapping[str, str],
    *,
    asked: Sequence[str] = (),
    more_hint: str | None = None,
) -> None:
    """One row per run. The metrics and params that ``asked`` (the filter and order_by texts)
    names are always shown; other columns are added, most useful first, while they fit."""
    from rich.table import Table

    out = console()
    if not runs:
        out.print("No runs match.")
        return
    metric_keys = sorted({k for r in runs for k in r.metrics})
    param_keys = sorted({k for r in runs for k in r.params})
    asked_metrics = [k for k in referenced_keys(asked, "metric") if k in metric_keys]
    asked_params = [k for k in referenced_keys(asked, "param") if k in param_keys]
    other_metrics = [k for k in metric_keys if k not in asked_metrics][:MAX_METRIC_COLUMNS]
    other_params = [k for k in param_keys if k not in asked_params][:MAX_PARAM_COLUMNS]

    def metric(key: str, rank: int | None) -> _Column:
        cells = [format_number(r.metrics[key]) if key in r.metrics else "-" for r in runs]
        return _Column(key, cells, rank, justify="right", style="cyan")

    def param(key: str, rank: int | None) -> _Column:
        return _Column(key, [r.params.get(key, "-") for r in runs], rank, style="magenta")

    columns = [_Column("run id", [r.run_id for r in runs], None)]
    if len({r.experiment_id for r in runs}) > 1:
        names = [experiment_names.get(r.experiment_id, r.experiment_id) for r in runs]
        columns.append(_Column("experiment", names, 0, max_width=20))
    columns.append(_Column("name", [r.name for r in runs], None, max_width=30, wrap=True))
    if any(r.parent_run_id for r in runs):
        columns.append(_Column("parent", [(r.parent_run_id or "")[:8] for r in runs], 20))
    statuses = [r.status.value for r in runs]
    columns.append(_Column("status", statuses, None, markup=[_status(r) for r in runs]))
    columns.append(_Column("started", [format_time(r.start_time) for r in runs], 1))
    columns.append(_Column("duration", [format_duration(r) for r in runs], 30, "right"))
    columns += [metric(k, None) for k in asked_metrics]
    columns += [metric(k, 10 + i) for i, k in enumerate(other_metrics)]
    columns += [param(k, None) for k in asked_params]
    columns += [param(k, 40 + i) for i, k in enumerate(other_params)]

    room = out.width - sum(c.width + 2 for c in columns if c.rank is None)
    shown = {id(c) for c in columns if c.rank is None}
    for column in sorted((c for c in columns if c.rank is not None), key=lambda c: c.rank or 0):
        if column.width + 2 <= room:
            room -= column.width + 2
            shown.add(id(column))

    table = Table(box=None, header_style="bold", pad_edge=False)
    kept = [c for c in columns if id(c) in shown]
    for column in kept:
        table.add_column(
            escape(column.header),
            justify=column.justify,
            style=column.style,
            no_wrap=not column.wrap,
            min_width=column.width if column.rank is None else None,
            max_width=column.max_width,
        )
    for i in range(len(runs)):
        table.add_row(*(c.markup[i] if c.markup else escape(c.cells[i]) for c in kept))
    out.print(table)
    noun = "run" if len(runs) == 1 else "runs"
    hidden = len(columns) - len(kept)
    notes = [f"{len(runs)} {noun}"]
    if hidden:
        notes.append(f"{hidden} more columns with --output json or a wider terminal")
    capped = [
        (kind, [k for k in keys if k not in asked and k not in shown_keys])
        for kind, keys, asked, shown_keys in (
            ("params", param_keys, asked_params, other_params),
            ("metrics", metric_keys, asked_metrics, other_metrics),
        )
    ]
    capped = [(kind, keys) for kind, keys in capped if keys]
    if capped:  # columns past MAX_*_COLUMNS: say which, and how to ask for one
        kind, keys = capped[0]
        listed = " and ".join(
            f"{len(k)} more {what if len(k) > 1 else what[:-1]} ({_names(k)})" for what, k in capped
        )
        key = keys[0] if re.fullmatch(r"[\w\-./:]+", keys[0]) else f"`{keys[0]}`"
        notes.append(
            f"{listed} not shown: name one in --filter or --order-by to show it (e.g. "
            f"--order-by {kind}.{key}), or --output json for all"
        )
    if more_hint:
        notes.append(more_hint)
    out.print(f"[dim]{escape('; '.join(notes))}[/]")


def _names(keys: Sequence[str], shown: int = 3) -> str:
    return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")


def run_detail(run: Run, experiment_name: str | None, artifacts: Sequence[ArtifactInfo]) -> None:
    from rich.table import Table

    out = console()
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column()
    summary.add_row("run id", run.run_id)
    summary.add_row("name", escape(run.name))
    summary.add_row("experiment", escape(experiment_name or run.experiment_id))
    summary.add_row("status", _status(run))
    summary.add_row("user", escape(run.user))
    if run.parent_run_id:
        summary.add_row("parent run", run.parent_run_id)
    summary.add_row("started", format_time(run.start_time))
    summary.add_row("ended", format_time(run.end_time))
    summary.add_row("duration", format_duration(run))
    out.print(summary)

    _section(out, "params", run.params, empty="no params")
    _section(
        out,
        "metrics (latest value)",
        {k: format_number(v) for k, v in run.metrics.items()},
        empty="no metrics",
    )
    _section(out, "tags", run.tags, empty="no tags")
    _section(out, "source", run.source, empty="not recorded")
    environment = {k: v for k, v in run.environment.items() if k != "packages"}
    environment.update(
        {f"packages.{k}": v for k, v in (run.environment.get("packages") or {}).items()}
    )
    _section(out, "environment", environment, empty="not recorded")

    out.print()
    out.print(f"[bold underline]artifacts[/] ({len(artifacts)})")
    if artifacts:
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("path")
        table.add_column("size", justify="right", no_wrap=True)
        table.add_column("sha256", no_wrap=True, style="dim")
        for art in artifacts:
            table.add_row(escape(art.path), format_size(art.size), art.digest[:12])
        out.print(table)
    else:
        out.print("  [dim]none[/]")

    if run.error:
        lines = run.error.rstrip().splitlines()
        out.print()
        out.print("[bold underline red]error[/]")
        if len(lines) > _ERROR_LINES:
            out.print(
                f"  [dim]... {len(lines) - _ERROR_LINES} earlier lines (see --output json)[/]"
            )
        out.print(escape("\n".join(lines[-_ERROR_LINES:])), style="red")


def _section(out: Console, title: str, values: Mapping[str, Any], *, empty: str) -> None:
    from rich.table import Table

    out.print()
    out.print(f"[bold underline]{title}[/]")
    if not values:
        out.print(f"  [dim]{empty}[/]")
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for key in sorted(values):
        value = values[key]
        grid.add_row(f"  {escape(str(key))}", escape("-" if value is None else str(value)))
    out.print(grid)


def as_record(value: Any) -> Any:
    """A dataclass as JSON-ready data, enums as their values."""
    data = value if isinstance(value, dict) else dataclasses.asdict(value)
    return {k: getattr(v, "value", v) for k, v in data.items()}


def print_table(title: str | None, columns: list[str], rows: list[list[Any]], empty: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not rows:
        print(empty)
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if v is None else escape(str(v)) for v in row))
    console().print(table)
