"""Where a run came from: the code version and the environment it ran in.

Captured once per process (git and package metadata do not change under a running program, and
``git`` costs milliseconds) and stored with every run, so any result can be traced to the exact
commit, uncommitted diff and library versions that produced it.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

KEY_PACKAGES = (
    "modelloop",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "torch",
    "scipy",
)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, timeout=10, check=False, cwd=os.getcwd()
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


@functools.cache
def code_version() -> dict[str, Any]:
    """Git commit, dirty flag and sha256 of the uncommitted diff (tracked files) of the cwd."""
    entry_point = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else None
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "entry_point": entry_point}
    diff = _git("diff", "HEAD", "--no-ext-diff", "--binary") or ""
    return {
        "git_commit": commit.strip(),
        "git_dirty": bool(diff),
        "git_diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
        "entry_point": entry_point,
    }


@functools.cache
def environment() -> dict[str, Any]:
    """Python, platform and the versions of the packages that decide a model's behaviour."""
    packages: dict[str, str] = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": packages,
    }


def current_user() -> str:
    try:
        return os.environ.get("MODELLOOP_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
