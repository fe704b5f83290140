"""``modelloop audit|users``: the registry's audit trail and who may act on it.

    modelloop audit log [--model NAME] [--limit N]
    modelloop audit verify [--anchor SEQ:HASH] [--checkpoints FILE]
    modelloop audit checkpoint [--to FILE|URL]
    modelloop users add NAME --role ROLE | list | disable NAME | token --generate

Users live in the server's database, so ``users`` commands run where that database is
reachable, not through a server.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelloop.cli._common import (
    OptionalReason,
    OutputFormat,
    OutputOption,
    _examples,
    _registry,
    report_error,
)
from modelloop.cli._output import as_record, format_time, print_table

if TYPE_CHECKING:
    from modelloop.audit import AuditEvent
    from modelloop.store import Database

audit_app: typer.Typer = typer.Typer(
    help="The hash-chained audit trail of registry changes.",
    no_args_is_help=True,
    epilog=_examples("modelloop audit log", "modelloop audit verify"),
)
users_app: typer.Typer = typer.Typer(
    help="Users, their roles (viewer < editor < approver < admin) and server tokens: of the "
    "metadata database, or of the server MODELLOOP_TRACKING_URI names (with its admin token "
    "in MODELLOOP_TOKEN).",
    no_args_is_help=True,
    epilog=_examples(
        "modelloop users list",
        "MODELLOOP_TRACKING_URI=http://mlops.example:8765 MODELLOOP_TOKEN=... "
        "modelloop users add bob --role viewer",
    ),
)


class RoleChoice(StrEnum):  # modelloop.auth.Role, without importing the store for --help
    viewer = "viewer"
    editor = "editor"
    approver = "approver"
    admin = "admin"


# -- audit ---------------------------------------------------------------------------------------


@audit_app.command(
    "log",
    help="Registry changes, oldest first: who moved which alias from which version to which, "
    "when, why, and who approved it.",
    epilog=_examples(
        "modelloop audit log --model quickstart-lgbm",
        "modelloop audit log --limit 20 --output json",
    ),
)
def audit_log(
    model: Annotated[str | None, typer.Option(help="Only changes to this model.")] = None,
    limit: Annotated[int | None, typer.Option(help="The newest N events.", min=1)] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    from modelloop.cli import _output

    with _registry() as registry:
        events = registry.audit_log(model, limit)
    if output is OutputFormat.json:
        _output.print_json([as_record(e) for e in events])
        return
    rows = [
        [e.seq, format_time(e.time), e.actor, e.action, e.object_id, _change(e), e.reason]
        for e in events
    ]
    columns = ["seq", "time", "actor", "action", "object", "change", "reason"]
    print_table(None, columns, rows, "No audit events.")
    _clock_note(events)


def _clock_note(events: Sequence[AuditEvent]) -> None:
    """Audit times are when each change was recorded (wall clock); on a store whose data runs on
    a simulated clock (the fraud demo's), say so, since its monitors and policies show that one."""
    from modelloop.store_clock import store_clock

    clock = store_clock()
    if events and clock.simulated:
        typer.echo(
            f"Times are wall-clock, when each change was recorded; this store's data runs on a "
            f"{clock} (monitor windows, predictions and policy decisions are on that clock)."
        )


def _change(event: AuditEvent) -> str:
    before, after = event.before or {}, event.after or {}
    if event.object_type == "alias":
        old = f"v{before['version']}" if "version" in before else "-"
        text = f"{old} -> v{after['version']}" if "version" in after else f"{old} -> -"
        if "approved_by" in after:
            text += f" (requested by {after['requested_by']}, approved by {after['approved_by']})"
        return text
    if event.before is None:  # a creation: what was created
        keys = ("version", "run_id", "package_digest", "role", "status")
        return ", ".join(f"{k}={str(after[k])[:12]}" for k in keys if k in after)
    changed = [k for k in after if before.get(k) != after[k]]
    return ", ".join(f"{k}: {before.get(k, '-')} -> {after[k]}" for k in changed)


@audit_app.command(
    "verify",
    help="Check the audit trail: recompute its keyed hash chain, compare it with every signed "
    "checkpoint of this store, and reconcile the registry's tables with it (aliases, versions, "
    "approvals, users, deployments, monitors, policies). Exit 1 naming the first modified, "
    "forged or missing event, or each change that no event explains.\n\n"
    "Record the printed head somewhere the database's writers cannot change, and pass it back "
    "as --anchor to also detect a past rewritten by someone holding the audit key.",
    epilog=_examples(
        "modelloop audit verify",
        "modelloop audit verify --checkpoints exported-checkpoints.jsonl",
    ),
)
def audit_verify(
    anchor: Annotated[
        str | None, typer.Option(help="SEQ:HASH printed by an earlier verify.")
    ] = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoints",
            help="Also check against the checkpoints in this file (repeatable; besides "
            "MODELLOOP_AUDIT_CHECKPOINTS). Local store only.",
        ),
    ] = None,
) -> None:
    from modelloop import audit

    parsed = audit.parse_anchor(anchor)
    if checkpoints:
        with _local_database() as db:
            result = audit.verify(db, parsed, checkpoint_files=checkpoints)
    else:
        with _registry() as registry:
            result = registry.verify_audit(parsed)
    for line in result.unexplained:
        typer.echo(f"Changed without an audit event: {line}")
    if not result.ok:
        where = "" if result.first_bad_seq is None else f" at event {result.first_bad_seq}"
        raise typer.Exit(report_error(f"Audit trail broken{where}: {result.problem}", 1))
    if result.head_seq is None:
        typer.echo("Audit trail is empty.")
        return
    typer.echo(f"Audit trail intact: {result.checked} events verified.")
    covered = (
        f"checked against {result.checkpoints} checkpoints (the newest at event "
        f"{result.checkpoint_seq})"
        if result.checkpoints
        else "no checkpoint of this store to check against (MODELLOOP_AUDIT_CHECKPOINTS)"
    )
    typer.echo(f"{covered[0].upper()}{covered[1:]}.")
    typer.echo(
        f"Tables reconciled: {result.reconciled} objects, each explained by the audit trail."
    )
    typer.echo(f"Head: {result.head_seq}:{result.head_hash}")


@audit_app.command(
    "checkpoint",
    help="Sign the audit log's current head with the audit key and export it: appended to a "
    "file, or POSTed as JSON to an http(s) URL, somewhere the database's writers cannot change. "
    "'audit verify --checkpoints FILE' later proves that no event up to it was deleted or "
    "rewritten. Run it from cron for periodic checkpoints (e.g. --to "
    "https://audit.example.com/modelloop, or a file on another machine's mount); without --to "
    "it prints the JSON.",
    epilog=_examples(
        "modelloop audit checkpoint",
        "modelloop audit checkpoint --to exported-checkpoints.jsonl",
    ),
)
def audit_checkpoint(
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="A file to append to or an http(s) URL to POST to (repeatable)."),
    ] = None,
) -> None:
    from modelloop.audit import checkpoints

    with _local_database() as db:
        checkpoint = checkpoints.current(db)
    if not to:
        typer.echo(checkpoint.to_json())
        return
    for target in to:
        typer.echo(
            f"Checkpoint of event {checkpoint.seq} {checkpoints.export(checkpoint, target)}."
        )


@contextmanager
def _local_database() -> Iterator[Database]:
    """The metadata database itself: checkpoints are signed and read where the audit key is."""
    from modelloop.errors import InvalidArgument
    from modelloop.settings import load_settings
    from modelloop.store import open_database

    settings = load_settings()
    if settings.tracking_uri is not None:
        raise InvalidArgument(
            "Audit checkpoints are signed and read where the database and the audit key are: "
            "run this on the server's machine (unset MODELLOOP_TRACKING_URI, set "
            "MODELLOOP_DATABASE_URL and MODELLOOP_AUDIT_KEY_FILE)"
        )
    yield open_database(settings.database_url)


# -- users ---------------------------------------------------------------------------------------


@contextmanager
def _users() -> Iterator[Any]:
    from modelloop.auth import open_user_store
    from modelloop.settings import load_settings

    users = open_user_store(load_settings())
    try:
        yield users
    finally:
        users.close()


@users_app.command(
    "add",
    help="Add a user and print their token, once: only its hash is stored.\n\n"
    "A server requires tokens from its next start once any user exists.",
    epilog=_examples("modelloop users add alice --role approver"),
)
def users_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The user's name.")],
    role: Annotated[RoleChoice, typer.Option(help="What the user may do.")] = RoleChoice.editor,
) -> None:
    from modelloop.tracking.source import current_user

    with _users() as users:
        user, token = users.add(name, role.value, actor=current_user())
    typer.echo(f"Added {user.name} ({user.role.value}). Their token, shown only now:")
    typer.echo(token)


@users_app.command(
    "token",
    help="Print a new strong random token (43 characters), for the server's MODELLOOP_TOKEN. "
    "Nothing is stored: the token is shown only now, keep it where the server's environment "
    "comes from. (A user's token comes from 'modelloop users add'.)",
    epilog=_examples(
        "modelloop users token --generate",
        "MODELLOOP_TOKEN=$(modelloop users token --generate) modelloop server --host 0.0.0.0",
    ),
)
def users_token(
    generate: Annotated[
        bool, typer.Option("--generate", help="Generate the token (required).")
    ] = False,
) -> None:
    if not generate:
        raise typer.Exit(report_error("Pass --generate to print a new token", 2))
    from modelloop.auth import generate_token

    typer.echo(generate_token())


@users_app.command(
    "list",
    help="List users, their roles and whether they are disabled.",
    epilog=_examples("modelloop users list", "modelloop users list --output json"),
)
def users_list(output: OutputOption = OutputFormat.table) -> None:
    from modelloop.cli import _output

    with _users() as users:
        found = users.list()
    if output is OutputFormat.json:
        _output.print_json([as_record(u) for u in found])
        return
    rows = [
        [u.name, u.role.value, "yes" if u.disabled else "no", format_time(u.created_at)]
        for u in found
    ]
    print_table(None, ["name", "role", "disabled", "created"], rows, "No users yet.")


@users_app.command(
    "disable",
    help="Refuse a user's token from now on.",
    epilog=_examples('modelloop users disable alice --reason "left the team"'),
)
def users_disable(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The user.")],
    reason: OptionalReason = None,
) -> None:
    from modelloop.tracking.source import current_user

    with _users() as users:
        users.disable(name, actor=current_user(), reason=reason)
    typer.echo(f"Disabled {name}")


@users_app.command(
    "rotate-token",
    help="Give a user a new token, printed once; the old one stops working at once (audited).",
    epilog=_examples('modelloop users rotate-token alice --reason "laptop lost"'),
)
def users_rotate_token(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The user.")],
    reason: OptionalReason = None,
) -> None:
    from modelloop.tracking.source import current_user

    with _users() as users:
        token = users.rotate_token(name, actor=current_user(), reason=reason)
    typer.echo(f"New token of {name}, shown only now (the old one no longer works):")
    typer.echo(token)
