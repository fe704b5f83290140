"""``Registry``: the registry behind the SDK, on the local store or a server alike.

Whether calls go to the embedded store or over HTTP is decided in :func:`open_registry_store`
and nowhere else, from the same settings as tracking's ``open_store``. A ``Registry`` pairs that
store with a tracking :class:`~modelloop.tracking.client.Client`, which holds the runs and the
model packages (run artifacts): registering logs a package, loading downloads one.

Downloaded packages are cached under ``$MODELLOOP_HOME/cache/models/<package digest>``: the
digest names the exact content, so a cached package is never stale and is reused by every
version and alias that points at the same files. A download lands in a temporary directory and is
renamed into place, so concurrent loaders never see half a package.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelloop.artifacts import canonical_path
from modelloop.errors import InvalidArgument, ModelloopError, NotFound
from modelloop.registry.entities import (
    Alias,
    AliasRequest,
    ModelLineage,
    ModelVersion,
    ModelVersionSpec,
    RegisteredModel,
    RequestStatus,
    VersionStatus,
    check_request_status,
    check_version_status,
    parse_model_uri,
)
from modelloop.registry.store import RegistryStore
from modelloop.settings import Settings
from modelloop.tracking.source import current_user

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.audit import AuditEvent, AuditVerification
    from modelloop.flavors import LoadedModel
    from modelloop.monitoring.drift import ColumnReference
    from modelloop.tracking.client import Client
    from modelloop.tracking.run import ActiveRun


def open_registry_store(settings: Settings) -> RegistryStore:
    """The registry backend named by the settings."""
    if settings.tracking_uri is not None:
        from modelloop.registry.http import HttpRegistryStore

        return HttpRegistryStore(settings.tracking_uri, token=settings.token)
    from modelloop.registry.sql import SqlRegistryStore
    from modelloop.store import open_database

    return SqlRegistryStore(
        open_database(settings.database_url), protected_aliases=settings.protected_aliases
    )


class Registry:
    """Registered models, versions, aliases, approvals and the audit trail."""

    def __init__(self, client: Client | None = None, *, store: RegistryStore | None = None) -> None:
        if client is None:
            from modelloop.tracking.client import Client

            client = Client()
        self.client = client
        self.store = store if store is not None else open_registry_store(client.settings)

    def close(self) -> None:
        self.store.close()

    @property
    def actor(self) -> str:
        """Who changes are recorded as: ``MODELLOOP_USER`` or the OS user (a server with
        authentication records its token's user instead)."""
        return current_user()

    # -- registering -------------------------------------------------------------------------

    def register_model(
        self,
        run: ActiveRun | str,
        name: str,
        model: object | None = None,
        *,
        artifact_path: str = "model",
        training_data: pd.DataFrame | None = None,
        signature: Any = None,
        description: str | None = None,
        tags: Mapping[str, object] | None = None,
        metrics: Mapping[str, float] | None = None,
        dataset_digests: Mapping[str, str] | None = None,
        allow_pickle: bool = False,
    ) -> ModelVersion:
        """Package ``model`` into the run's artifacts under ``artifact_path`` and register it as
        the next version of ``name``; with ``model=None``, register the package already logged
        there (its manifest, when present, supplies the flavor and signature)."""
        run_id = run if isinstance(run, str) else run.run_id
        prefix = canonical_path(artifact_path)
        digests = dict(dataset_digests or {})
        flavor: str | None
        signature_dict: dict[str, Any] | None
        if model is not None:
            from modelloop import flavors

            with tempfile.TemporaryDirectory(prefix="modelloop-package-") as tmp:
                manifest = flavors.save_model(
                    model,
                    Path(tmp) / "package",
                    training_data=training_data,
                    signature=signature,
                    allow_pickle=allow_pickle,
                    metadata={
                        "run_id": run_id,
                        "dataset_digests": digests,
                        "metrics": dict(metrics or {}),
                    },
                )
                if training_data is not None:
                    _write_reference(Path(tmp) / "package", training_data, allow_pickle)
                self.client.log_artifacts(run_id, Path(tmp) / "package", prefix)
            flavor, signature_dict = manifest.flavor, manifest.signature.to_dict()
        else:
            flavor, signature_dict = self._logged_manifest(run_id, prefix)
            if signature is not None:
                signature_dict = signature if isinstance(signature, dict) else signature.to_dict()
            if training_data is not None and flavor is not None:  # e.g. a pipeline step's model
                with tempfile.TemporaryDirectory(prefix="modelloop-package-") as tmp:
                    self.client.download_artifacts(run_id, Path(tmp), prefix)
                    package = Path(tmp).joinpath(*prefix.split("/"))
                    _write_reference(package, training_data, allow_pickle)
                    self.client.log_bytes(
                        run_id,
                        (package / REFERENCE_FILE).read_bytes(),
                        f"{prefix}/{REFERENCE_FILE}",
                    )
        spec = ModelVersionSpec(
            name=name,
            run_id=run_id,
            artifact_path=prefix,
            flavor=flavor,
            signature=signature_dict,
            description=description,
            tags={k: v if isinstance(v, str) else str(v) for k, v in (tags or {}).items()},
            metrics=dict(metrics or {}),
            dataset_digests=digests,
        )
        return self.store.create_model_version(spec, actor=self.actor)

    def _logged_manifest(self, run_id: str, prefix: str) -> tuple[str | None, Any]:
        import json

        from modelloop.flavors import MANIFEST_NAME, ModelManifest

        try:
            raw = self.client.read_artifact(run_id, f"{prefix}/{MANIFEST_NAME}")
        except NotFound:
            return None, None  # a package of files modelloop did not write: loaded as files
        try:
            manifest = ModelManifest.from_dict(json.loads(raw))
        except ValueError as exc:
            raise InvalidArgument(f"{prefix}/{MANIFEST_NAME} is not valid JSON: {exc}") from None
        return manifest.flavor, manifest.signature.to_dict()

    # -- reading -----------------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        return self.store.get_registered_model(name)

    def list_models(self) -> list[RegisteredModel]:
        return self.store.list_registered_models()

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.store.get_model_version(name, version)

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.store.list_model_versions(name)

    def resolve_model_uri(self, uri: str) -> ModelVersion:
        """The version ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``.../latest``
        names now (``latest``: the highest READY version)."""
        parsed = parse_model_uri(uri)
        if parsed.alias is not None:
            return self.store.get_version_by_alias(parsed.name, parsed.alias)
        if parsed.version is not None:
            return self.store.get_model_version(parsed.name, parsed.version)
        ready = [
            v
            for v in self.store.list_model_versions(parsed.name)
            if v.status is VersionStatus.READY
        ]
        if not ready:
            raise NotFound(f"Model {parsed.name!r} has no READY version")
        return ready[-1]

    def reference_profile(self, uri: str) -> dict[str, ColumnReference]:
        """The drift reference stored with a version at registration: one per input feature and
        ``score`` (the model's output on its training data), so monitoring never re-reads the
        training data. Empty for a version registered without ``training_data``."""
        import json

        from modelloop.monitoring.drift import ColumnReference

        version = self.resolve_model_uri(uri)
        path = f"{version.artifact_path}/{REFERENCE_FILE}"
        try:
            raw = self.client.read_artifact(version.run_id, path)
        except NotFound:
            return {}
        return {k: ColumnReference.from_dict(v) for k, v in json.loads(raw).items()}

    def download_model(self, version: ModelVersion) -> Path:
        """The version's package as a local directory (cached by its package digest)."""
        root = self.client.settings.home / "cache" / "models"
        final = root / version.package_digest
        if final.is_dir():
            return final
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version.package_digest[:12]}-", dir=root))
        try:
            infos = [
                info
                for info in self.client.list_artifacts(version.run_id, version.artifact_path)
                if info.path.startswith(version.artifact_path + "/")
            ]
            self.client.download_artifacts(version.run_id, staging, version.artifact_path)
            package = staging.joinpath(*version.artifact_path.split("/"))
            lines = []
            for info in infos:
                relative = info.path[len(version.artifact_path) + 1 :]
                if _sha256(package / relative) != info.digest:
                    raise ModelloopError(f"Downloaded {info.path} does not match its digest")
                lines.append(f"{relative}\t{info.digest}\n")
            if hashlib.sha256("".join(lines).encode()).hexdigest() != version.package_digest:
                raise ModelloopError(
                    f"The artifacts of {version.uri} under {version.artifact_path!r} are not the "
                    "package that was registered"
                )
            try:
                os.rename(package, final)
            except OSError:
                if not final.is_dir():  # another loader won the race otherwise
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def load_model(self, uri: str, *, allow_pickle: bool = False) -> LoadedModel:
        """Resolve ``uri``, download its package (or reuse the cache) and load it."""
        from modelloop import flavors

        version = self.resolve_model_uri(uri)
        if version.flavor is None:
            raise InvalidArgument(
                f"{version.uri} was registered from files modelloop did not package (no "
                "manifest); use download_model() and load them yourself"
            )
        return flavors.load_model(self.download_model(version), allow_pickle=allow_pickle)

    def lineage(self, name: str, version: int) -> ModelLineage:
        """version -> run -> code version, environment -> dataset digests."""
        found = self.store.get_model_version(name, version)
        run = self.client.get_run(found.run_id)
        return ModelLineage(
            found, run, dict(run.source), dict(run.environment), dict(found.dataset_digests)
        )

    # -- changing ----------------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str,
        expected_version: int | None = None,
    ) -> Alias:
        return self.store.set_alias(
            name, alias, version, actor=self.actor, reason=reason, expected_version=expected_version
        )

    def delete_alias(
        self, name: str, alias: str, *, reason: str, expected_version: int | None = None
    ) -> None:
        self.store.delete_alias(
            name, alias, actor=self.actor, reason=reason, expected_version=expected_version
        )

    def request_alias(self, name: str, alias: str, version: int, reason: str) -> AliasRequest:
        return self.store.request_alias(name, alias, version, actor=self.actor, reason=reason)

    def approve_request(self, request_id: str, reason: str | None = None) -> AliasRequest:
        return self.store.approve_request(request_id, actor=self.actor, reason=reason)

    def reject_request(self, request_id: str, reason: str) -> AliasRequest:
        return self.store.reject_request(request_id, actor=self.actor, reason=reason)

    def cancel_request(self, request_id: str, reason: str) -> AliasRequest:
        return self.store.cancel_request(request_id, actor=self.actor, reason=reason)

    def list_requests(
        self, name: str | None = None, status: RequestStatus | str | None = None
    ) -> list[AliasRequest]:
        return self.store.list_requests(
            name, None if status is None else check_request_status(status)
        )

    def set_version_status(
        self, name: str, version: int, status: VersionStatus | str, *, reason: str
    ) -> ModelVersion:
        return self.store.set_version_status(
            name, version, check_version_status(status), actor=self.actor, reason=reason
        )

    def audit_log(self, model: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        return self.store.audit_events(model, limit)

    def verify_audit(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        return self.store.verify_audit(anchor)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


REFERENCE_FILE = "reference.json"


def _write_reference(package: Path, training_data: pd.DataFrame, allow_pickle: bool) -> None:
    """Fit the drift reference of a package's inputs and score once, when it is registered."""
    import json

    from modelloop import flavors
    from modelloop.monitoring.drift import fit_reference, fit_references

    manifest = flavors.read_manifest(package)
    features = training_data[list(manifest.signature.names)]
    references = fit_references(features)
    try:
        scores = flavors.load_model(package, allow_pickle=allow_pickle).predict(features)
    except ModelloopError:  # e.g. skops types that need trusting at load: inputs only
        scores = None
    if scores is not None and scores.ndim == 1:
        references["score"] = fit_reference(scores)
    payload = {name: ref.to_dict() for name, ref in references.items()}
    (package / REFERENCE_FILE).write_text(json.dumps(payload))
