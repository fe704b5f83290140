"""``modelloop models``: registered models, versions, aliases and alias requests.

    modelloop models list|show NAME|versions NAME|lineage NAME VERSION
    modelloop models register RUN_ID NAME [--artifact-path model] [--dataset NAME@VERSION]
    modelloop models set-alias NAME ALIAS VERSION --reason ... [--expected-version N]
    modelloop models delete-alias NAME ALIAS --reason ...
    modelloop models request-alias NAME ALIAS VERSION --reason ...
    modelloop models approve|reject|cancel REQUEST_ID [--reason ...]
    modelloop models requests [--model NAME] [--pending]
    modelloop models archive|restore NAME VERSION --reason ...

Changes are made as ``MODELLOOP_USER`` (or the OS user); through a server with authentication,
as the user whose ``MODELLOOP_TOKEN`` is set. The audit trail and users: ``cli/audit.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelloop.cli._common import OptionalReason, OutputFormat, OutputOption, _examples, _registry
from modelloop.cli._output import as_record, format_time, print_table
from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    pass

models_app: typer.Typer = typer.Typer(
    help="Registered models, versions, aliases and alias requests.",
    no_args_is_help=True,
    epilog=_examples(
        "modelloop models register <run-id> quickstart-lgbm --artifact-path model",
        "modelloop models list",
    ),
)
Name = Annotated[str, typer.Argument(metavar="NAME", help="Registered model name.")]
AliasArg = Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion, challenger.")]
VersionArg = Annotated[int, typer.Argument(metavar="VERSION", help="Version number.", min=1)]
RequestId = Annotated[str, typer.Argument(metavar="REQUEST_ID", help="The request's id.")]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (recorded in the audit log).")]
# -- models --------------------------------------------------------------------------------------


@models_app.command(
    "register",
    help="Register a model package already logged in a run's artifacts as the next version.",
    epilog=_examples(
        "modelloop models register <run-id> quickstart-lgbm --artifact-path model",
    ),
)
def models_register(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run holding the package.")],
    name: Name,
    artifact_path: Annotated[
        str,
        typer.Option(
            help="The package's folder in the run (a pipeline step's model output: "
            "outputs/<output name>)."
        ),
    ] = "model",
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            metavar="NAME@VERSION",
            help="The dataset the model was trained on, to fit its drift reference (default: "
            "the one its run read, from lineage).",
        ),
    ] = None,
) -> None:
    """Without a drift reference (no --dataset, none found from lineage) the SDK's warning is
    printed and the command still succeeds: the version was registered."""
    import warnings

    from modelloop.registry.reference import TAG_REFERENCE_DATASET, NoDriftReference

    with _registry() as registry, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NoDriftReference)
        version = registry.register_model(
            run_id,
            name,
            artifact_path=artifact_path,
            description=description,
            training_data=dataset,
        )
    source = version.tags.get(TAG_REFERENCE_DATASET)
    extra = f"; drift reference from dataset {source}" if source else ""
    typer.echo(f"Registered {version.uri} (package {version.package_digest[:12]}){extra}")
    for warning in caught:
        if issubclass(warning.category, NoDriftReference):
            typer.echo(f"Warning: {warning.message}", err=True)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


@models_app.command(
    "list",
    help="List registered models with their latest version and aliases.",
    epilog=_examples("modelloop models list", "modelloop models list --output json"),
)
def models_list(output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output

    with _registry() as registry:
        models = registry.list_models()
    if output is OutputFormat.json:
        _output.print_json([as_record(m) for m in models])
        return
    rows = [
        [m.name, m.latest_version, _aliases(m.aliases), format_time(m.updated_at), m.description]
        for m in models
    ]
    print_table(
        None, ["name", "latest", "aliases", "updated", "description"], rows, "No models yet."
    )


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias}->v{version}" for alias, version in aliases.items())


@models_app.command(
    "show",
    help="One registered model: description, tags, aliases and its versions.",
    epilog=_examples("modelloop models show quickstart-lgbm"),
)
def models_show(name: Name, output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output

    with _registry() as registry:
        model = registry.get_model(name)
        versions = registry.list_versions(name)
    if output is OutputFormat.json:
        _output.print_json({**as_record(model), "versions": [as_record(v) for v in versions]})
        return
    typer.echo(f"{model.name}: {model.description or '(no description)'}")
    typer.echo(f"aliases: {_aliases(model.aliases) or '-'}")
    typer.echo(f"tags: {', '.join(f'{k}={v}' for k, v in model.tags.items()) or '-'}")
    _versions_table(versions)


def _versions_table(versions: list[Any]) -> None:
    rows = [
        [
            v.version,
            v.status.value,
            ", ".join(v.aliases),
            v.flavor,
            v.run_id,
            format_time(v.created_at),
            v.created_by,
        ]
        for v in versions
    ]
    columns = ["version", "status", "aliases", "flavor", "run", "created", "by"]
    print_table(None, columns, rows, "No versions.")


@models_app.command(
    "versions",
    help="List a model's versions.",
    epilog=_examples("modelloop models versions quickstart-lgbm --output json"),
)
def models_versions(name: Name, output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output

    with _registry() as registry:
        versions = registry.list_versions(name)
    if output is OutputFormat.json:
        _output.print_json([as_record(v) for v in versions])
    else:
        _versions_table(versions)


@models_app.command(
    "set-alias",
    help="Point an alias at a version, atomically. Protected aliases (champion) need "
    "request-alias and another user's approval.",
    epilog=_examples(
        'modelloop models set-alias quickstart-lgbm challenger 1 --reason "best valid AUC"',
        "modelloop models set-alias quickstart-lgbm challenger 2 --expected-version 1 "
        '--reason "retrained on May data"',
    ),
)
def models_set_alias(
    name: Name,
    alias: AliasArg,
    version: VersionArg,
    reason: Reason,
    expected_version: Annotated[
        int | None,
        typer.Option(help="Only if the alias points at this version now (0: does not exist)."),
    ] = None,
) -> None:
    with _registry() as registry:
        registry.set_alias(name, alias, version, reason=reason, expected_version=expected_version)
    typer.echo(f"{name}@{alias} -> version {version}")


@models_app.command(
    "delete-alias",
    help="Remove an alias (protected aliases cannot be deleted).",
    epilog=_examples(
        'modelloop models delete-alias quickstart-lgbm challenger --reason "experiment over"'
    ),
)
def models_delete_alias(name: Name, alias: AliasArg, reason: Reason) -> None:
    with _registry() as registry:
        registry.delete_alias(name, alias, reason=reason)
    typer.echo(f"Deleted {name}@{alias}")


@models_app.command(
    "request-alias",
    help="Ask for an alias to move; another user approves (approve) or rejects it.",
    epilog=_examples(
        'modelloop models request-alias quickstart-lgbm champion 1 --reason "beats v0 by 2% AUC"'
    ),
)
def models_request_alias(name: Name, alias: AliasArg, version: VersionArg, reason: Reason) -> None:
    with _registry() as registry:
        request = registry.request_alias(name, alias, version, reason)
    typer.echo(f"Requested {name}@{alias} -> version {version}: request {request.request_id}")
    typer.echo("Another user with the approver role must approve it.")


@models_app.command(
    "approve",
    help="Approve another user's alias request: the alias moves now.",
    epilog=_examples(
        "modelloop models requests --pending",
        'MODELLOOP_USER=bob modelloop models approve <request-id> --reason "checked the report"',
    ),
)
def models_approve(request_id: RequestId, reason: OptionalReason = None) -> None:
    with _registry() as registry:
        request = registry.approve_request(request_id, reason)
    typer.echo(
        f"Approved: {request.name}@{request.alias} -> version {request.version} "
        f"(requested by {request.requested_by})"
    )


@models_app.command(
    "reject",
    help="Reject another user's alias request.",
    epilog=_examples(
        "modelloop models requests --pending",
        'MODELLOOP_USER=bob modelloop models reject <request-id> --reason "drift on new data"',
    ),
)
def models_reject(request_id: RequestId, reason: Reason) -> None:
    with _registry() as registry:
        request = registry.reject_request(request_id, reason)
    typer.echo(f"Rejected request {request.request_id} of {request.requested_by}")


@models_app.command(
    "cancel",
    help="Withdraw your own pending alias request.",
    epilog=_examples(
        "modelloop models requests --pending",
        'MODELLOOP_USER=alice modelloop models cancel <request-id> --reason "wrong version"',
    ),
)
def models_cancel(request_id: RequestId, reason: Reason) -> None:
    with _registry() as registry:
        request = registry.cancel_request(request_id, reason)
    typer.echo(f"Cancelled request {request.request_id}")


@models_app.command(
    "requests",
    help="List alias requests, oldest first.",
    epilog=_examples(
        "modelloop models requests --pending", "modelloop models requests --model quickstart-lgbm"
    ),
)
def models_requests(
    model: Annotated[str | None, typer.Option(help="Only this model's requests.")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only undecided ones.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output

    with _registry() as registry:
        requests = registry.list_requests(model, "PENDING" if pending else None)
    if output is OutputFormat.json:
        _output.print_json([as_record(r) for r in requests])
        return
    rows = [
        [
            r.request_id,
            f"{r.name}@{r.alias}",
            r.version,
            r.status.value,
            r.requested_by,
            r.reason,
            r.decided_by,
            format_time(r.created_at),
        ]
        for r in requests
    ]
    columns = ["request", "alias", "version", "status", "by", "reason", "decided by", "created"]
    print_table(None, columns, rows, "No requests.")


@models_app.command(
    "archive",
    help="Archive a version (no alias may point at it).",
    epilog=_examples('modelloop models archive quickstart-lgbm 2 --reason "superseded by v1"'),
)
def models_archive(name: Name, version: VersionArg, reason: Reason) -> None:
    with _registry() as registry:
        registry.set_version_status(name, version, "ARCHIVED", reason=reason)
    typer.echo(f"Archived {name} version {version}")


@models_app.command(
    "restore",
    help="Make an archived version READY again.",
    epilog=_examples('modelloop models restore quickstart-lgbm 2 --reason "needed for a rerun"'),
)
def models_restore(name: Name, version: VersionArg, reason: Reason) -> None:
    with _registry() as registry:
        registry.set_version_status(name, version, "READY", reason=reason)
    typer.echo(f"Restored {name} version {version}")


@models_app.command(
    "lineage",
    help="Where a version came from: run, code version, environment, data digests, and the "
    "dataset versions its lineage reaches (as `modelloop lineage models:/NAME/V` walks it).",
    epilog=_examples("modelloop models lineage quickstart-lgbm 1"),
)
def models_lineage(
    name: Name, version: VersionArg, output: OutputOption = OutputFormat.table
) -> None:
    from modelloop.cli import _output
    from modelloop.pipelines.lineage import database_of
    from modelloop.pipelines.lineage import get_lineage as walk

    with _registry() as registry:
        lineage = registry.lineage(name, version)
        try:
            database_of(registry.client)
        except InvalidArgument:  # through a server: lineage edges live in the local store
            datasets = None
        else:
            datasets = walk(lineage.version.uri, registry.client).datasets()
    record = {
        "model": lineage.version.uri,
        "package_digest": lineage.version.package_digest,
        "run_id": lineage.run.run_id,
        "run_name": lineage.run.name,
        "code_version": lineage.code_version,
        "environment": lineage.environment,
        "dataset_digests": lineage.dataset_digests,
        "datasets": datasets,
    }
    if output is OutputFormat.json:
        _output.print_json(record)
        return
    for key, value in record.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(value) or "-"
        elif key == "datasets" and value is None:
            value = "? (lineage is recorded in the local store, not through a server)"
        typer.echo(f"{key:>16}: {value}")
