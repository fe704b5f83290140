"""Shared fixtures: a fresh store per test, on SQLite and (when configured) PostgreSQL; and one
store, shared by the session, in which the fraud demo's closed loop ran (``fraud_loop``).

PostgreSQL tests run when ``MODELLOOP_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it). If it is
set but the server does not answer, the whole session stops with an error instead of skipping:
CI must never pass by silently leaving PostgreSQL out.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from modelloop.settings import Settings, load_settings
from modelloop.store import close_database
from modelloop.tracking import fluent

POSTGRES_URL = os.environ.get("MODELLOOP_TEST_POSTGRES_URL")
# Commands print tables and wrapped lines as wide as the terminal: the same width for every test,
# whatever runs them (a developer's terminal, CI, or pytest-xdist workers, which have none).
os.environ["COLUMNS"] = "200"
SKIP_POSTGRES = "set MODELLOOP_TEST_POSTGRES_URL=postgresql+psycopg://user@host:5432/db to run"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not POSTGRES_URL:
        return
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        pytest.exit(
            f"MODELLOOP_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc}",
            returncode=3,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive chromium are marked ``browser``: ``make test-fast`` leaves them out."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True, scope="session")
def audit_key_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Audit keys and checkpoints default to ``$MODELLOOP_HOME``, which many tests pass as a
    Settings object rather than through the environment: keep the session's in a temporary
    directory instead of ``./.modelloop`` of the checkout (tests of the defaults unset these)."""
    where = tmp_path_factory.mktemp("audit")
    patch = pytest.MonkeyPatch()
    patch.setenv("MODELLOOP_AUDIT_KEY_FILE", str(where / "audit.key"))
    patch.setenv("MODELLOOP_AUDIT_CHECKPOINTS", str(where / "audit-checkpoints.jsonl"))
    yield
    patch.undo()


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose search_path is a brand-new schema, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(SKIP_POSTGRES)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextlib.contextmanager
def store_settings(tmp_path: Path, backend: str) -> Iterator[Settings]:
    """Settings for a fresh store under ``tmp_path`` on ``backend`` (sqlite or postgres)."""
    env = {"MODELLOOP_HOME": str(tmp_path / "home")}
    with contextlib.ExitStack() as stack:
        if backend == "postgres":
            env["MODELLOOP_DATABASE_URL"] = stack.enter_context(postgres_schema())
        settings = load_settings(env)
        try:
            yield settings
        finally:
            fluent.close_clients()
            close_database(settings.database_url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A fresh local store, once on SQLite and once on PostgreSQL."""
    with store_settings(tmp_path, request.param) as value:
        yield value


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Iterator[Settings]:
    with store_settings(tmp_path, "sqlite") as value:
        yield value


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``MODELLOOP_HOME`` pointed at a fresh directory for SDK-level tests (``ml.start_run``)."""
    path = tmp_path / "home"
    for name in ("MODELLOOP_DATABASE_URL", "MODELLOOP_ARTIFACT_URI", "MODELLOOP_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELLOOP_HOME", str(path))
    monkeypatch.chdir(tmp_path)
    yield path
    fluent.close_clients()
    close_database(load_settings().database_url)


STORE_VARIABLES = (
    "MODELLOOP_DATABASE_URL",
    "MODELLOOP_ARTIFACT_URI",
    "MODELLOOP_TRACKING_URI",
    "MODELLOOP_PREDICTION_LOG",
)


@dataclass(frozen=True)
class FraudLoop:
    """A store in which the fraud demo's closed loop ran for real."""

    home: Path
    settings: Settings
    policy: str
    model: str


@pytest.fixture(scope="session")
def fraud_loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FraudLoop]:
    """The fraud demo on a small bank (300 customers, 20 served days, the fraud ring from day
    4): triggers skipped and a retraining scheduled, then a challenger trained (once the log
    holds the policy's 5,000 labelled rows) and judged on a replay of the logged requests. One
    run (about half a minute) for the whole session: the timeline's command line and its pages
    only read it."""
    from modelloop.examples.fraud.demo import MODEL, POLICY, DemoConfig, run_demo

    home = tmp_path_factory.mktemp("fraud-loop") / "home"
    with pytest.MonkeyPatch.context() as patch:
        for name in STORE_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("MODELLOOP_HOME", str(home))
        settings = load_settings()
        try:
            run_demo(DemoConfig(days=20, drift_day=4, customers=300, terminals=600))
        finally:
            fluent.close_clients()
    try:
        yield FraudLoop(home, settings, POLICY, MODEL)
    finally:
        fluent.close_clients()
        close_database(settings.database_url)
