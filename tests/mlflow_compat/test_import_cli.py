"""``modelloop import mlflow SOURCE``: the report (table and JSON), a rerun that copies nothing,
the dry run, the exit code of an incomplete import, and one-line errors for a missing source, an
unreachable server, an unknown experiment and a missing mlflow client."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from modelloop.mlflow_import import KINDS
from tests.cli_helpers import fails, invoke, ok
from tests.conftest import postgres_schema
from tests.mlflow_compat.mlflow_stores import MlflowStore


def test_the_command_copies_and_reports_in_json(mlflow_sqlite: MlflowStore, home: Path) -> None:
    first = json.loads(ok("import", "mlflow", mlflow_sqlite.uri, "--output", "json"))

    assert first["complete"] is True
    assert first["problems"] == []
    assert len(first["not_copied"]) == 5  # deleted, traces, ...: see test_import.py
    assert set(first["counts"]) == set(KINDS)
    for kind, count in first["counts"].items():
        assert count["source"] == count["imported"] == count["new"] > 0, kind
    listed = json.loads(ok("runs", "list", "--output", "json"))
    assert len(listed) == first["counts"]["runs"]["source"]

    again = json.loads(ok("import", "mlflow", mlflow_sqlite.uri, "-o", "json"))
    assert again["complete"] is True
    assert {k: c["new"] for k, c in again["counts"].items()} == dict.fromkeys(KINDS, 0)
    assert len(json.loads(ok("runs", "list", "--output", "json"))) == len(listed)


def test_the_table_says_what_was_copied(mlflow_file: MlflowStore, home: Path) -> None:
    dry = ok("import", "mlflow", mlflow_file.uri, "--dry-run", "--experiment", "fraud")
    assert "would copy" in dry
    assert "Dry run: nothing was written." in dry
    assert json.loads(ok("experiments", "list", "--output", "json")) == []

    shown = ok("import", "mlflow", mlflow_file.uri, "-e", "fraud")
    assert "metric points" in shown
    assert "dataset inputs" in shown
    assert "copied now" in shown
    assert "not copied: 1 deleted run(s): deleted in MLflow" in shown  # fraud's "mistake"
    assert "Complete: modelloop holds all the MLflow store does but what is not copied." in shown
    (experiment,) = json.loads(ok("experiments", "list", "--output", "json"))
    assert experiment["name"] == "fraud"


def test_an_incomplete_import_fails_after_its_report(
    mlflow_sqlite: MlflowStore, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_PROTECTED_ALIASES", "challenger")
    result = invoke("import", "mlflow", mlflow_sqlite.uri)

    assert result.exit_code == 1, result.output
    assert "is protected: requested for version 2" in result.stdout
    assert result.stderr.strip() == (
        "Error: The import is incomplete (aliases differ): 1 problem(s) listed above; fix them "
        "and run the same command again (what is copied stays copied)"
    )


def test_a_missing_source_is_an_error(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "no-mlruns"
    assert "No MLflow file store" in fails(3, "import", "mlflow", str(folder))
    assert "No MLflow file store" in fails(3, "import", "mlflow", folder.as_uri())
    database = tmp_path / "no.db"
    assert "No MLflow database" in fails(3, "import", "mlflow", f"sqlite:///{database}")
    assert not database.exists()  # MLflow would have created an empty store there


def test_a_database_without_an_mlflow_store_is_refused_untouched(
    tmp_path: Path, home: Path
) -> None:
    """MLflow's client would create its tables in any database it is pointed at."""
    database = tmp_path / "other.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    message = fails(3, "import", "mlflow", f"sqlite:///{database}")
    assert "No MLflow store in the database" in message
    with sqlite3.connect(database) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("notes",)]


@pytest.mark.postgres
def test_a_postgres_database_without_an_mlflow_store_is_refused_untouched(home: Path) -> None:
    with postgres_schema() as url:
        assert "No MLflow store in the database" in fails(3, "import", "mlflow", url)
        engine = create_engine(url)
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
        engine.dispose()


def test_an_unreachable_database_is_an_error(home: Path) -> None:
    port = _free_port()
    message = fails(6, "import", "mlflow", f"postgresql+psycopg://u:pw@127.0.0.1:{port}/mlflow")
    assert message.startswith(
        "Error: Cannot read the MLflow database at postgresql+psycopg://u:***@"
    )
    assert "pw" not in message


def _free_port() -> int:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_server_is_an_error(home: Path) -> None:
    port = _free_port()
    message = fails(6, "import", "mlflow", f"http://u:secret@127.0.0.1:{port}")
    assert message.startswith(
        f"Error: Cannot reach the MLflow server at http://u:***@127.0.0.1:{port}"
    )
    assert "secret" not in message


def test_an_unknown_experiment_is_an_error(mlflow_sqlite: MlflowStore, home: Path) -> None:
    message = fails(3, "import", "mlflow", mlflow_sqlite.uri, "-e", "nope")
    assert "No experiment 'nope'" in message
    assert "churn, fraud" in message


def test_without_mlflow_the_command_says_what_to_install(tmp_path: Path) -> None:
    """A Python where ``import mlflow`` fails, as it does without the extra."""
    (tmp_path / "mlruns").mkdir()
    script = (
        "import sys; sys.modules['mlflow'] = None\n"
        "from modelloop.cli.app import main\n"
        f"main(['import', 'mlflow', {str(tmp_path / 'mlruns')!r}])\n"
    )
    env = {**os.environ, "MODELLOOP_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: Importing from MLflow needs the mlflow client: pip install 'modelloop[mlflow]'"
    ]


def test_the_help_teaches_with_examples() -> None:
    shown = ok("import", "mlflow", "--help")
    assert "modelloop import mlflow ./mlruns --dry-run" in shown
    for kind in ("sqlite:///mlflow.db", "postgresql://", "http://mlflow.internal:5000"):
        assert kind in shown
    assert "pip install 'modelloop[mlflow]'" in " ".join(shown.split())
