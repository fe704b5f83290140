"""Runnable examples: ``python -m modelloop.examples.quickstart`` (what ``make demo`` runs)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def cli_command() -> str:
    """How to call the ``modelloop`` command from here (it may not be on PATH in a venv), for
    the next steps an example prints."""
    if shutil.which("modelloop"):
        return "modelloop"
    beside = Path(sys.executable).parent / "modelloop"
    if beside.exists():
        relative = os.path.relpath(beside)
        return relative if not relative.startswith("..") else str(beside)
    return f"{Path(sys.executable).name} -m modelloop"
