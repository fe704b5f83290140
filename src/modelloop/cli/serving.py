"""``modelloop serve`` and ``modelloop feedback``: real-time serving from the registry."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the serving commands to the root command."""
