"""MLflow's stores for ``modelloop://`` tracking URIs: MLflow code, unchanged, at modelloop's pace.

MLflow's REST client spends 3-5 ms of its own on every call (request-header providers that probe
for Databricks, proxy settings read from the environment, protobuf JSON both ways), more than a
modelloop server needs to answer. Over ``http://`` that caps how much faster any server can make
``log_metric`` (``docs/benchmarks.md`` measures the cap). With modelloop installed next to MLflow,
``MLFLOW_TRACKING_URI=modelloop://127.0.0.1:5000`` (``modelloop+https://`` for TLS) selects these
stores through MLflow's plugin entry points:

- the hot tracking calls (``log_metric``, ``log_param``, ``set_tag``, ``log_batch``, metric
  history, run search) go as plain JSON over one keep-alive connection per thread, to the same
  MLflow-compatible endpoints, raising what MLflow's client raises (``RestException``);
- every other call is MLflow's own REST store against the same server, so it behaves exactly as
  over ``http://``; so does anything needing credentials beyond a token or a user and password;
- ``mlflow-artifacts:`` URIs resolve against the server the tracking URI names.

Importing this package imports nothing of MLflow: MLflow imports it while it registers its
plugins (the entry points in ``pyproject.toml``), and the stores load when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelloop.mlflow_store._stores import ArtifactsRepository, ModelloopTrackingStore

__all__ = ["artifacts_repository", "registry_store", "tracking_store"]


def tracking_store(store_uri: str, artifact_uri: str | None = None) -> ModelloopTrackingStore:
    """Entry point ``mlflow.tracking_store``."""
    from modelloop.mlflow_store._stores import ModelloopTrackingStore

    return ModelloopTrackingStore(store_uri)


def registry_store(store_uri: str, tracking_uri: str | None = None) -> Any:
    """Entry point ``mlflow.model_registry_store``: MLflow's REST registry store, unchanged."""
    from modelloop.mlflow_store import _stores

    return _stores.registry_store(store_uri)


def artifacts_repository(
    artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> ArtifactsRepository:
    """Entry point ``mlflow.artifact_repository`` for ``mlflow-artifacts:`` URIs."""
    from modelloop.mlflow_store._stores import ArtifactsRepository

    return ArtifactsRepository(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
