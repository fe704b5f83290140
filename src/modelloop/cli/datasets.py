"""``modelloop datasets``: versioned datasets, their profiles, and contract validation.

    modelloop datasets list [-o json]
    modelloop datasets show NAME[@VERSION] [-o json]
    modelloop datasets validate NAME[@VERSION] --contract contract.yaml   (the result is kept)

Thin: every command calls the datasets SDK and renders the result.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelloop.cli._common import OutputFormat, OutputOption, _client, _examples

if TYPE_CHECKING:
    from modelloop.datasets.entities import DatasetVersion

datasets_app: typer.Typer = typer.Typer(
    help="Versioned datasets: content-addressed Parquet, schema, profile and contracts.",
    no_args_is_help=True,
    epilog=_examples(
        "modelloop datasets list",
        "modelloop datasets show quickstart-train@1",
        "modelloop datasets validate quickstart-train --contract contract.yaml",
    ),
)
Ref = Annotated[
    str,
    typer.Argument(metavar="NAME[@VERSION]", help="A dataset; without @VERSION the latest."),
]


def as_record(version: DatasetVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": version.version,
        "digest": version.digest,
        "artifact_digest": version.artifact_digest,
        "num_rows": version.num_rows,
        "num_columns": version.num_columns,
        "created_at": version.created_at,
        "created_by": version.created_by,
        "run_id": version.run_id,
        "schema": version.schema.to_dict(),
        "profile": version.profile.to_dict(),
    }


@datasets_app.command(
    "list",
    help="List datasets with their latest version.",
    epilog=_examples("modelloop datasets list", "modelloop datasets list --output json"),
)
def datasets_list(output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output
    from modelloop.cli._output import format_time, print_table
    from modelloop.datasets.fluent import dataset_store

    with _client() as client:
        found = dataset_store(client).list_datasets()
    if output is OutputFormat.json:
        _output.print_json([dataclasses.asdict(d) for d in found])
        return
    rows = [
        [d.name, d.latest_version, d.num_versions, format_time(d.created_at), d.description]
        for d in found
    ]
    columns = ["name", "latest", "versions", "created", "description"]
    print_table(None, columns, rows, "No datasets yet.")


@datasets_app.command(
    "show",
    help="One dataset version: schema, row count, the run that logged it and a profile summary.",
    epilog=_examples(
        "modelloop datasets show quickstart-train",
        "modelloop datasets show quickstart-train@1 --output json | jq .profile",
    ),
)
def datasets_show(ref: Ref, output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output
    from modelloop.cli._output import format_time, print_table
    from modelloop.datasets.entities import parse_ref
    from modelloop.datasets.fluent import dataset_store

    name, number = parse_ref(ref)
    with _client() as client:
        version = dataset_store(client).get_version(name, number)
    if output is OutputFormat.json:
        _output.print_json(as_record(version))
        return
    typer.echo(f"{version.ref}: {version.num_rows} rows x {version.num_columns} columns")
    typer.echo(f"digest: {version.digest}")
    typer.echo(f"created: {format_time(version.created_at)} by {version.created_by}")
    typer.echo(f"run: {version.run_id or '-'}")
    rows = [
        [c.name, c.dtype, f"{c.null_rate:.2%}", c.distinct, *_summary(c)]
        for c in version.profile.columns.values()
    ]
    print_table(None, ["column", "dtype", "nulls", "distinct", "range / top"], rows, "No columns.")


def _summary(column: Any) -> list[str]:
    if column.kind == "numeric" and column.min is not None:
        return [f"{column.min:.6g} .. {column.max:.6g} (mean {column.mean:.6g})"]
    if column.kind == "datetime" and column.min is not None:
        return [f"{column.min} .. {column.max}"]
    if column.top:
        return [", ".join(f"{k} {v:.0%}" for k, v in list(column.top.items())[:3])]
    return ["-"]


@datasets_app.command(
    "validate",
    help="Validate a dataset version against a YAML contract and print every violation.\n\n"
    "The result is kept with the version (its page in the web UI lists it). "
    "Exits with status 2 when the contract is violated.",
    epilog=_examples(
        "modelloop datasets validate quickstart-train --contract contract.yaml",
        "modelloop datasets validate quickstart-train@1 -c contract.yaml --output json",
    ),
)
def datasets_validate(
    ref: Ref,
    contract: Annotated[
        Path,
        typer.Option("--contract", "-c", help="YAML: columns, unique, rows, allow_extra_columns."),
    ],
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output
    from modelloop.datasets.contracts import Contract, ContractViolation
    from modelloop.datasets.entities import parse_ref
    from modelloop.datasets.fluent import dataset_store
    from modelloop.tracking.source import current_user

    rules = Contract.from_yaml(contract)
    name, number = parse_ref(ref)
    with _client() as client:
        store = dataset_store(client)
        version = store.get_version(name, number)
        report = rules.validate(store.load(version))
        store.add_validation(version, rules, report, actor=current_user())
    if output is OutputFormat.json:
        _output.print_json(
            {"ok": report.ok, "violations": [v.to_dict() for v in report.violations]}
        )
    else:
        typer.echo(f"{version.ref}: {report.summary()}")
    if not report.ok:
        rules_broken = ", ".join(sorted({v.rule for v in report.violations}))
        raise ContractViolation(
            f"{version.ref} violates {contract}: {len(report.violations)} violation(s) "
            f"({rules_broken})",
            [v.to_dict() for v in report.violations],
        )
