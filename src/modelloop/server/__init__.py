"""The modelloop REST server (FastAPI + uvicorn): ``create_app`` and ``run_server``.

Importing this package is cheap: FastAPI, uvicorn and the store load only when an app is built,
so ``modelloop --help`` does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelloop.server.app import create_app, run_server

__all__ = ["create_app", "run_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from modelloop.server import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
