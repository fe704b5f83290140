"""Serving's stored state through a modelloop server: deployments and the prediction log.

:class:`HttpDeploymentStore` is :class:`~modelloop.serving.store.DeploymentStore` over the REST
API (``/api/v1/deployments``); :func:`read_predictions` is ``ml.load_predictions`` answered by the
server (``/api/v1/predictions``), which reads its own prediction log and joins its feedback.
Requests go through :class:`modelloop.transport.Transport`, so errors come back as the same
:mod:`modelloop.errors` classes and messages as from the local store. Each change sends its
``actor`` as ``X-Modelloop-User``: a server without authentication (loopback development) records
that name; a server with authentication records the user whose token the request carries.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from modelloop.errors import NotFound
from modelloop.serving.deployment import Deployment, StoredDeployment, check_deployment_name
from modelloop.transport import API, DEFAULT_TIMEOUT, HttpStore, Transport, segment

if TYPE_CHECKING:
    import pandas as pd

PARQUET = "application/vnd.apache.parquet"


class HttpDeploymentStore(HttpStore):
    """Implements :class:`~modelloop.serving.store.DeploymentStore` against a server."""

    def apply(self, deployment: Deployment, *, actor: str) -> bool:
        answer = self._call("PUT", _d(deployment.name), deployment.to_record(), actor=actor)
        return bool(answer["changed"])

    def get(self, name: str) -> StoredDeployment:
        return StoredDeployment.from_record(self._call("GET", _d(name)))

    def list(self) -> builtins.list[StoredDeployment]:
        records = self._call("GET", "/deployments")["deployments"]
        return [StoredDeployment.from_record(r) for r in records]

    def delete(self, name: str, *, actor: str) -> bool:
        try:
            self._call("DELETE", _d(name), actor=actor)
        except NotFound:  # the name is checked first: only a missing deployment answers 404
            return False
        return True


def read_predictions(
    url: str,
    model: str,
    start: datetime | None,
    end: datetime | None,
    *,
    token: str | None = None,
    deployment: str | None = None,
    version: int | None = None,
    with_labels: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> pd.DataFrame:
    """The logged predictions the server at ``url`` holds, as ``ml.load_predictions`` reads them
    locally (the same columns and dtypes), sent as one Parquet file."""
    import io

    import pandas as pd

    params: Mapping[str, str | None] = {
        "model": model,
        "start": None if start is None else start.isoformat(),
        "end": None if end is None else end.isoformat(),
        "deployment": deployment,
        "version": None if version is None else str(version),
        "with_labels": "true" if with_labels else "false",
    }
    transport = Transport(url, token=token, timeout=timeout)
    try:
        client = transport.client()
        request = client.build_request(
            "GET",
            f"{API}/predictions",
            params={k: v for k, v in params.items() if v is not None},
            headers={"Accept": PARQUET},
        )
        content = transport.send(request).content
    finally:
        transport.close()
    return pd.read_parquet(io.BytesIO(content))


def _d(name: str) -> str:
    return f"/deployments/{segment(check_deployment_name(name))}"  # refused here as there
