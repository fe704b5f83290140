"""Reading an MLflow store: its URI checked before MLflow's client opens it (which would create
an empty store where a path or database is wrong), MLflow's client quietened, pages walked."""

from __future__ import annotations

import logging
import os
import re
import socket
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelloop.errors import (
    InvalidArgument,
    ModelloopError,
    NotFound,
    ServerUnavailable,
)


def _open_source(source: str) -> tuple[Any, tuple[type[BaseException], ...]]:
    """An ``MlflowClient`` on ``source`` and the exceptions reading it may raise, after checking
    the source is there: MLflow would otherwise create an empty store where a path is wrong."""
    if not source or not source.strip():
        raise InvalidArgument("SOURCE is empty: give an MLflow tracking URI such as ./mlruns")
    scheme = urlsplit(source).scheme.lower()
    shown = _hide_password(source)
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        path = Path(urlsplit(source).path if scheme == "file" else source)
        if not path.is_dir():
            raise NotFound(f"No MLflow file store at {shown}: {path} is not a directory")
    elif scheme == "sqlite":
        database = source.split("://", 1)[1].split("?", 1)[0].removeprefix("/")
        if not database or database == ":memory:" or not Path(database).is_file():
            raise NotFound(f"No MLflow database at {shown}: {database or '(none)'} is not a file")
        _require_mlflow_tables(source)
    elif scheme.partition("+")[0] in _DATABASES:
        _require_mlflow_tables(source)
    elif scheme in ("http", "https"):
        _reach(source)
    try:
        import mlflow
        import requests
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ModelloopError(
            "Importing from MLflow needs the mlflow client: pip install 'modelloop[mlflow]'"
        ) from None
    errors: tuple[type[BaseException], ...] = (MlflowException, requests.RequestException)
    try:
        mlflow_client = mlflow.MlflowClient(tracking_uri=source, registry_uri=source)
        mlflow_client.search_experiments(max_results=1)  # fails now if the store is unreadable
    except errors as exc:
        message = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise ServerUnavailable(f"Cannot read the MLflow store at {shown}: {message}") from None
    return mlflow_client, errors


@contextmanager
def _reading_mlflow() -> Iterator[None]:
    """MLflow's client as an import wants it. Quiet: its store code trips its dependencies'
    deprecation warnings (SQLAlchemy's ``noload``), logs its schema checks and draws a progress
    bar per downloaded file, none of it for the importing user to act on (the import has its
    own progress). A server that went away fails within seconds: MLflow's default of 7
    retries backs off for minutes (a rerun resumes the import). And a file store is read,
    which MLflow 3 refuses unless told (moving off one is the point here). Variables the user
    set win; the others are restored afterwards."""
    defaults = {
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    added = [name for name in defaults if name not in os.environ]
    os.environ.update({name: defaults[name] for name in added})
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)
        for name in added:
            os.environ.pop(name, None)


_DATABASES = ("postgresql", "mysql", "mssql")


def _require_mlflow_tables(uri: str) -> None:
    """Refuse a database that holds no MLflow store: MLflow's client would create its ~70
    tables in it (a mistyped database name, or modelloop's own), and a source is only read."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    shown = _hide_password(uri)
    try:
        engine = create_engine(uri)
    except ImportError as exc:
        raise ModelloopError(f"Reading {shown} needs its database driver: {exc}") from None
    except (ArgumentError, ValueError) as exc:
        raise InvalidArgument(f"Invalid database URI {shown}: {exc}") from None
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            tables = set(found.get_table_names())
            columns = set()
            if "experiments" in tables:
                columns = {c["name"] for c in found.get_columns("experiments")}
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ServerUnavailable(f"Cannot read the MLflow database at {shown}: {reason}") from None
    finally:
        engine.dispose()
    if not {"experiments", "runs", "metrics"} <= tables or "lifecycle_stage" not in columns:
        raise NotFound(
            f"No MLflow store in the database at {shown}: it has no MLflow tables (MLflow's "
            "client would create them there; check the URI)"
        )


def _reach(url: str) -> None:
    """Fail fast on a server that does not answer (MLflow's client would retry for minutes)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=10):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ServerUnavailable(
            f"Cannot reach the MLflow server at {_hide_password(url)}: {reason}"
        ) from None


def _hide_password(uri: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", uri)


def _pages(search: Callable[..., Any], **query: Any) -> Iterator[Any]:
    token = None
    while True:
        page = search(**query, page_token=token)
        yield from page
        token = page.token
        if not token:
            return
