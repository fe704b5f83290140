"""The ``modelloop`` command line (Typer); ``main`` is the console script."""

from modelloop.cli.app import app, main

__all__ = ["app", "main"]
