"""docs/mlflow.md's endpoint table is what the code does: regenerated from the installed MLflow
server's endpoints and modelloop's routes, it must equal the committed file (run
``python -m modelloop.server.mlflow.compat`` after changing a route)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from modelloop.server import create_app
from modelloop.server.mlflow import compat
from modelloop.settings import Settings
from tests.mlflow_compat.conftest import MlflowServer

DOC = Path(__file__).parents[2] / "docs" / "mlflow.md"


def test_the_table_in_the_docs_is_current(sqlite_settings: Settings, tmp_path: Path) -> None:
    copy = tmp_path / "mlflow.md"
    shutil.copy(DOC, copy)
    assert compat.write(create_app(sqlite_settings), copy) == DOC.read_text(encoding="utf-8"), (
        "docs/mlflow.md is stale: run `python -m modelloop.server.mlflow.compat`"
    )


def test_every_endpoint_is_listed_and_the_unimplemented_answer_501(
    mlflow_server: MlflowServer,
) -> None:
    """Each row says implemented or 501; a sample of the 501 rows really answers 501 in
    MLflow's shape with the advice the table gives."""
    listed = compat.endpoints()
    assert len(listed) > 100  # MLflow 3 serves ~190 endpoints
    table = DOC.read_text(encoding="utf-8")
    missing = [(m, p) for m, p in listed if f"| `{m} {p}` | not implemented" in table]
    assert len(missing) + table.count("| implemented |") == len(listed)
    for method, path in missing[:: max(1, len(missing) // 15)]:
        concrete = path.replace("<", "x-").replace(">", "").replace("path:", "")
        answer = httpx.request(method, f"{mlflow_server.url}{concrete}", json={})
        assert answer.status_code == 501, (method, path, answer.text)
        body = answer.json()
        assert body["error_code"] == "NOT_IMPLEMENTED"
        assert f"{method} {concrete}" in body["message"]
        if compat.advice(path):
            assert compat.advice(path) in body["message"]
