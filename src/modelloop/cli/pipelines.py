"""``modelloop pipelines``, ``lineage`` and ``reproduce``: run pipelines, inspect and re-run them.

    modelloop pipelines run MODULE:PIPELINE [--param k=v ...] [--no-cache] [--executor process]
    modelloop pipelines list [--output table|json]
    modelloop pipelines show RUN_ID [--output table|json]
    modelloop lineage RUN_ID | [sha256:]DIGEST | dataset:NAME@V | models:/NAME/V
    modelloop reproduce RUN_ID [--executor process] [--output table|json]

``--param`` values are read as JSON when they parse (``lr=0.1`` is a number, ``name=abc`` a
string). The pipeline's module is imported from the current directory or ``sys.path``.
"""

from __future__ import annotations

import importlib
import json
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelloop.cli._common import OutputFormat, OutputOption, _client, _examples
from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    from modelloop.pipelines.pipeline import Pipeline, PipelineRun

pipelines_app: typer.Typer = typer.Typer(
    help="Run pipelines of cached steps and inspect their runs.",
    no_args_is_help=True,
    epilog=_examples(
        "modelloop pipelines run modelloop.examples.training_pipeline:pipeline "
        "-p train.learning_rate=0.05",
        "modelloop pipelines list",
    ),
)


class ExecutorChoice(StrEnum):
    local = "local"
    process = "process"
    ray = "ray"


@pipelines_app.command(
    "run",
    help="Run a pipeline, showing each step's progress; steps whose inputs, code and params "
    "are unchanged are reused from the cache.",
    epilog=_examples(
        "modelloop pipelines run modelloop.examples.training_pipeline:pipeline --param seed=1",
        "modelloop pipelines run modelloop.examples.training_pipeline:pipeline "
        "--param seed=1 --no-cache --executor process",
    ),
)
def pipelines_run(
    target: Annotated[str, typer.Argument(metavar="MODULE:PIPELINE", help="What to run.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="k=v or step.k=v (repeatable).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step.")] = False,
    executor: Annotated[
        ExecutorChoice, typer.Option(help="Where steps run.")
    ] = ExecutorChoice.local,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment (default: the pipeline's name).")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from modelloop.cli import _output

    pipeline = _load(target)
    params = dict(_parse_param(p) for p in param or [])
    with (
        _client() as client,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=_output.console(),
            disable=output is OutputFormat.json,
        ) as progress,
    ):
        tasks = {name: progress.add_task(f"{name}: PENDING", total=1) for name in pipeline.order}

        def on_event(step: str, state: str) -> None:
            done = state not in ("RUNNING", "PENDING")
            progress.update(tasks[step], description=f"{step}: {state}", completed=int(done))

        result = pipeline.run(
            params,
            executor=executor.value,
            cache=not no_cache,
            experiment=experiment,
            on_event=on_event,
            client=client,
        )
    _show(result, output)
    if result.status != "FINISHED":
        raise typer.Exit(1)


@pipelines_app.command(
    "list",
    help="List pipeline runs, newest first.",
    epilog=_examples("modelloop pipelines list", "modelloop pipelines list --output json"),
)
def pipelines_list(output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output
    from modelloop.pipelines.pipeline import TAG_PIPELINE

    with _client() as client:
        runs = [r for r in client.find_runs(order_by=["start_time DESC"]) if TAG_PIPELINE in r.tags]
    records = [
        {
            "run_id": r.run_id,
            "pipeline": r.tags[TAG_PIPELINE],
            "status": r.status.value,
            "started": _output.format_time(r.start_time),
            "duration": _output.format_duration(r),
        }
        for r in runs
    ]
    if output is OutputFormat.json:
        _output.print_json(records)
        return
    print_table(
        list(records[0]) if records else [], [list(r.values()) for r in records], "No runs."
    )


@pipelines_app.command(
    "show",
    help="Show a pipeline run's DAG: states, durations, cache hits.",
    epilog=_examples("modelloop pipelines show <pipeline-run-id>"),
)
def pipelines_show(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The pipeline run.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.pipelines.pipeline import PipelineRun

    with _client() as client:
        result = PipelineRun.load(run_id, client)
    _show(result, output)


def lineage(
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="RUN_ID, artifact [sha256:]DIGEST, dataset:NAME@V or models:/NAME/V.",
        ),
    ],
    output: OutputOption = OutputFormat.table,
) -> None:
    """What produced TARGET, and from what inputs, transitively."""
    from modelloop.cli import _output
    from modelloop.pipelines.lineage import get_lineage as walk

    with _client() as client:
        graph = walk(target, client)
    if output is OutputFormat.json:
        _output.print_json(
            {
                "root": list(graph.root),
                "nodes": [{"kind": k, "id": i, "label": v} for (k, i), v in graph.labels.items()],
                "edges": [
                    {"source": list(s), "target": list(t), "relation": r} for s, t, r in graph.edges
                ],
            }
        )
        return
    typer.echo(graph.render())


def reproduce(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The pipeline run.")],
    executor: Annotated[
        ExecutorChoice, typer.Option(help="Where steps run.")
    ] = ExecutorChoice.local,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Re-run a pipeline run without the cache; report per step whether outputs match and why
    not (code changed, inputs or input data changed, package versions, git commit)."""
    from modelloop.cli import _output
    from modelloop.cli._common import report_error
    from modelloop.pipelines.reproduce import reproduce as rerun

    if "" not in sys.path:
        sys.path.insert(0, "")  # the pipeline's module may live in the current directory
    with _client() as client:
        report = rerun(run_id, client=client, executor=executor.value)
    if output is OutputFormat.json:
        _output.print_json(report.to_dict())
    else:
        typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(report_error(report.summary(), 1))


def _load(target: str) -> Pipeline:
    from modelloop.pipelines.pipeline import Pipeline

    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidArgument(f"expected MODULE:PIPELINE, got {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` would
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"cannot load {target!r}: {exc}") from exc
    if not isinstance(value, Pipeline):
        raise InvalidArgument(f"{target} is a {type(value).__name__}, not a Pipeline")
    return value


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InvalidArgument(f"--param expects k=v, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _show(result: PipelineRun, output: OutputFormat) -> None:
    from modelloop.cli import _output

    if output is OutputFormat.json:
        _output.print_json(result.to_dict())
        return
    typer.echo(f"Pipeline {result.name}  run {result.run_id}  {result.status}")
    rows = [
        [
            s.name,
            s.state,
            f"{s.duration_s:.3f}s",
            ", ".join(s.upstream) or "-",
            s.run_id,
            s.cached_from or "-",
        ]
        for s in result.steps.values()
    ]
    columns = ["step", "state", "duration", "after", "run", "cached from"]
    print_table(columns, rows, "No steps.")
    for s in result.steps.values():
        if s.state == "FAILED":
            typer.echo(f"{s.name} failed: {s.reason or 'unknown error'}")
            if s.run_id:
                typer.echo(f"  traceback: modelloop runs show {s.run_id}")


def print_table(columns: list[str], rows: list[list[Any]], empty: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from modelloop.cli import _output

    if not rows:
        typer.echo(empty)
        return
    table = Table(title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if v is None else escape(str(v)) for v in row))
    _output.console().print(table)
