"""``modelloop models|audit|users``: the registry, its audit trail and who may act on it."""

from __future__ import annotations

import typer

models_app = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The hash-chained audit trail of registry changes.", no_args_is_help=True
)
users_app = typer.Typer(help="Users, their roles and server tokens.", no_args_is_help=True)
