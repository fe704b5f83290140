"""Which of MLflow's REST endpoints ``modelloop server`` implements, read off the app itself.

``python -m modelloop.server.mlflow.compat`` lists every endpoint of the installed MLflow
server (``mlflow.server.handlers.get_endpoints``), asks modelloop's app which route answers it,
and rewrites the table in ``docs/mlflow.md``; a test fails when the table is stale. What is not
implemented answers 501 with the advice below, which the table repeats.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp

# (path pattern, what to use instead), first match wins.
ADVICE: list[tuple[str, str]] = [
    (
        r"/api/[23]\.0/mlflow/(traces|unified-traces|get-online-trace-details)",
        "GenAI tracing is not part of modelloop: keep traces in MLflow or an OpenTelemetry backend",
    ),
    (r"/api/3\.0/mlflow/gateway", "MLflow's AI gateway is not part of modelloop"),
    (
        r"/api/3\.0/mlflow/(datasets|scorers|label-schemas|issues|review-queues|prompt-opt)",
        "GenAI evaluation is not part of modelloop; a run's tabular datasets are `runs/log-inputs` "
        "and modelloop's versioned datasets (`ml.log_dataset`, `/api/v1/datasets`)",
    ),
    (r"/api/3\.0/mlflow/workspaces", "modelloop server has one workspace: leave it unset"),
    (
        r"/api/2\.0/mlflow/webhooks",
        "registry webhooks: use the audit trail (`modelloop audit log`) and monitor webhooks",
    ),
    (
        r"/api/2\.0/mlflow(-artifacts)?/(artifacts/)?presigned",
        "presigned URLs need object storage; modelloop proxies artifacts (`mlflow-artifacts`)",
    ),
    (
        r"/api/2\.0/mlflow-artifacts/mpu",
        "multipart uploads are for object storage; a plain PUT of any size works",
    ),
    (
        r"/api/2\.0/mlflow/model-versions/transition-stage",
        "stages are deprecated since MLflow 2.9: use aliases (`set_registered_model_alias`)",
    ),
    (
        r"/api/2\.0/mlflow/runs/log-model",
        "MLflow 2's model record; MLflow 3 logs models as logged models (`logged-models`)",
    ),
    (r"/graphql", "the MLflow UI's GraphQL: modelloop's UI is at /ui"),
]

DOC = Path("docs/mlflow.md")
START, END = "<!-- mlflow-endpoints:start -->", "<!-- mlflow-endpoints:end -->"


def advice(path: str) -> str | None:
    """What to use instead of the unimplemented endpoint at ``path``, if there is advice."""
    for pattern, text in ADVICE:
        if re.match(pattern, path):
            return text
    return None


def endpoints() -> list[tuple[str, str]]:
    """``(method, path)`` of every endpoint the installed MLflow server serves (not the UI's
    ``/ajax-api`` copies), sorted; MLflow's ``<name>`` placeholders kept."""
    import warnings

    with warnings.catch_warnings():  # MLflow's own models use SQLAlchemy features it deprecates
        warnings.simplefilter("ignore")
        from mlflow.server.handlers import get_endpoints

    found = {
        (method, path)
        for path, _, methods in get_endpoints()  # type: ignore[no-untyped-call]
        if not path.startswith("/ajax-api")
        for method in methods
    }
    return sorted(found, key=lambda e: (e[1], e[0]))


NOT_IMPLEMENTED = "is an MLflow endpoint modelloop does not implement"


def implemented(app: ASGIApp, listed: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of ``listed`` ``app`` implements: asked with an empty body, does any route but the
    catch-all answer? Only ask an app over a throwaway store: an endpoint that accepts an empty
    body acts on it."""
    import asyncio

    import httpx

    async def ask() -> set[tuple[str, str]]:
        transport = httpx.ASGITransport(app=app)
        found = set()
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for method, path in listed:
                concrete = re.sub(r"<(?:\w+:)?(\w+)>", r"x-\1", path)
                answer = await client.request(method, concrete, json={})
                if not (answer.status_code == 501 and NOT_IMPLEMENTED in answer.text):
                    found.add((method, path))
        return found

    return asyncio.run(ask())


def table(app: ASGIApp) -> str:
    listed = endpoints()
    served = implemented(app, listed)
    rows = ["| endpoint | status |", "|---|---|"]
    for method, path in listed:
        if (method, path) in served:
            status = "implemented"
        else:
            status = "not implemented (501)" + (f": {advice(path)}" if advice(path) else "")
        rows.append(f"| `{method} {path}` | {status} |")
    return "\n".join(rows)


def write(app: ASGIApp, doc: Path = DOC) -> str:
    """Replace the table between the markers of ``doc``; the new text. ``app`` must serve a
    throwaway store (see :func:`implemented`)."""
    text = doc.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    updated = f"{head}{START}\n{table(app)}\n{END}{rest.split(END, 1)[1]}"
    doc.write_text(updated, encoding="utf-8")
    return updated


def main() -> None:  # pragma: no cover - the test checks the table it writes
    import tempfile

    from modelloop.server import create_app
    from modelloop.settings import load_settings

    with tempfile.TemporaryDirectory() as home:
        app = create_app(load_settings({"MODELLOOP_HOME": home}))
        write(app, Path(sys.argv[1]) if len(sys.argv) > 1 else DOC)


if __name__ == "__main__":
    main()
