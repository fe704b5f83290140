"""``modelloop import``: bring another tool's store into modelloop.

    modelloop import mlflow SOURCE [--experiment NAME ...] [--dry-run] [--output table|json]

Thin: the copy is :func:`modelloop.mlflow_import.import_mlflow`; this shows its progress and
renders its report, and fails (after printing it) when the destination does not hold
everything the source does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelloop.cli._common import OutputFormat, OutputOption, _examples

if TYPE_CHECKING:
    from modelloop.mlflow_import import ImportReport

import_app: typer.Typer = typer.Typer(
    help="Bring another tool's store into modelloop.",
    no_args_is_help=True,
    epilog=_examples("modelloop import mlflow ./mlruns", "modelloop import mlflow --help"),
)

_LABELS = {
    "experiments": "experiments",
    "experiment_tags": "experiment tags",
    "runs": "runs",
    "params": "params",
    "tags": "tags",
    "dataset_inputs": "dataset inputs",
    "metric_points": "metric points",
    "artifact_files": "artifact files",
    "artifact_bytes": "artifact bytes",
    "models": "registered models",
    "versions": "model versions",
    "aliases": "aliases",
}


@import_app.command(
    "mlflow",
    help="Copy an MLflow tracking store into modelloop: experiments, runs (name, user, status, "
    "start and end time, params, tags, every metric point with its step and timestamp, "
    "dataset inputs, artifacts, MLflow 3 logged models), registered models, their versions "
    "(a deprecated stage kept as the tag mlflow.stage) and aliases.\n\n"
    "SOURCE is what MLFLOW_TRACKING_URI would be: a file store (./mlruns or file:///...), a "
    "database (sqlite:///mlflow.db, postgresql://user@host/mlflow) or a server "
    "(http://mlflow.internal:5000). The destination is the store of the current settings "
    "($MODELLOOP_HOME, $MODELLOOP_DATABASE_URL, or a server at $MODELLOOP_TRACKING_URI, e.g. "
    "MODELLOOP_TRACKING_URI=http://127.0.0.1:8765 modelloop import mlflow sqlite:///mlflow.db)."
    "\n\n"
    "Safe to repeat: what an earlier import copied is recognised (runs and versions carry the "
    "tag modelloop.imported_from) and not copied twice, so an interrupted import is completed "
    "by running it again. Deleted MLflow runs and experiments, traces and prompts are left out "
    "(the report counts them). A protected alias "
    "(MODELLOOP_PROTECTED_ALIASES) is requested, not set: another user approves it.\n\n"
    "The report counts each kind in MLflow and in modelloop; the command fails when they "
    "differ, saying what was not copied and why. Needs the mlflow client: pip install "
    "'modelloop\\[mlflow]'.",
    epilog=_examples(
        "modelloop import mlflow ./mlruns --dry-run",
        "modelloop import mlflow ./mlruns",
        "modelloop import mlflow ./mlruns --experiment churn --output json | jq .counts.runs",
    ),
)
def import_mlflow(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="The MLflow tracking URI: ./mlruns, file:///..., sqlite:///mlflow.db, "
            "postgresql://..., http://host:5000.",
            show_default=False,
        ),
    ],
    experiment: Annotated[
        list[str] | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="NAME",
            help="Only this MLflow experiment (and the models registered from its runs); "
            "repeat for several. Default: all.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Count what would be copied; write nothing."),
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from modelloop.cli import _output
    from modelloop.errors import ModelloopError
    from modelloop.mlflow_import import import_mlflow

    errors = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"copying {stage}", total=total)
            progress.update(tasks[stage], completed=done, total=total)

        report = import_mlflow(
            source, experiments=experiment, dry_run=dry_run, progress=on_progress
        )
    if output is OutputFormat.json:
        _output.print_json(report.to_dict())
    else:
        _show(report)
    if not report.complete and not dry_run:
        differ = [_LABELS[k] for k, c in report.counts.items() if c.source != c.imported]
        what = f" ({', '.join(differ)} differ)" if differ else ""
        raise ModelloopError(
            f"The import is incomplete{what}: {len(report.problems)} problem(s) listed above; "
            "fix them and run the same command again (what is copied stays copied)"
        )


def _show(report: ImportReport) -> None:
    from modelloop.cli import _output

    columns = ["", "in MLflow", "in modelloop", "would copy" if report.dry_run else "copied now"]
    rows: list[list[object]] = [
        [_LABELS[k], c.source, c.imported, c.new] for k, c in report.counts.items()
    ]
    if not report.dry_run:  # a dry run differs by what it would copy: no news
        columns.append("")
        for row, count in zip(rows, report.counts.values(), strict=True):
            row.append("" if count.source == count.imported else "differs")
    title = f"MLflow {report.source} -> modelloop" + (" (dry run)" if report.dry_run else "")
    _output.print_table(title, columns, rows, "")
    for problem in report.problems:
        typer.echo(f"- {problem}")
    for note in report.notes:
        typer.echo(f"note: {note}")
    for left in report.not_copied:
        typer.echo(f"not copied: {left}")
    if report.dry_run:
        typer.echo("Dry run: nothing was written.")
    elif report.complete and report.not_copied:
        typer.echo("Complete: modelloop holds all the MLflow store does but what is not copied.")
    elif report.complete:
        typer.echo("Complete: modelloop holds everything the MLflow store does.")
