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
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelloop.artifacts import canonical_path
from modelloop.errors import Conflict, InvalidArgument, ModelloopError, NotFound
from modelloop.registry import reference
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
    from modelloop.datasets.reference import ColumnReference
    from modelloop.flavors import LoadedModel
    from modelloop.tracking.client import Client
    from modelloop.tracking.run import ActiveRun


# On a version registered from a cached pipeline step's run: that run (the version's run_id is
# the earlier run whose package the step reused).
TAG_REGISTERED_FROM = "modelloop.registered_from"


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


def resolve_model_uri(store: RegistryStore, uri: str) -> ModelVersion:
    """The version ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``.../latest`` names
    in ``store`` now (``latest``: the highest READY version)."""
    parsed = parse_model_uri(uri)
    if parsed.alias is not None:
        return store.get_version_by_alias(parsed.name, parsed.alias)
    if parsed.version is not None:
        return store.get_model_version(parsed.name, parsed.version)
    ready = [v for v in store.list_model_versions(parsed.name) if v.status is VersionStatus.READY]
    if not ready:
        raise NotFound(f"Model {parsed.name!r} has no READY version")
    return ready[-1]


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
        training_data: pd.DataFrame | str | None = None,
        signature: Any = None,
        description: str | None = None,
        tags: Mapping[str, object] | None = None,
        metrics: Mapping[str, float] | None = None,
        dataset_digests: Mapping[str, str] | None = None,
        allow_pickle: bool = False,
    ) -> ModelVersion:
        """Package ``model`` into the run's artifacts under ``artifact_path`` and register it as
        the next version of ``name``; with ``model=None``, register the package already logged
        there (its manifest, when present, supplies the flavor and signature). A cached pipeline
        step's run logged nothing: its package is the one of the run it reuses, so the version
        is registered from that run, tagged ``modelloop.registered_from`` = ``run``.

        ``training_data`` (a frame, or a dataset reference such as ``"fraud@3"``) gives the
        version its drift reference; without it, the dataset the run trained on according to
        lineage does, and when there is none a :class:`~modelloop.registry.reference.
        NoDriftReference` warning says so and how to add one (the version is registered)."""
        run_id = run if isinstance(run, str) else run.run_id
        prefix = canonical_path(artifact_path)
        frame, source = self._training_frame(training_data)
        digests = dict(dataset_digests or {})
        version_tags = {k: v if isinstance(v, str) else str(v) for k, v in (tags or {}).items()}
        if model is None:
            package_run = self._package_run(run_id, prefix)
            if package_run != run_id:  # the version's run is the one that made the package
                version_tags[TAG_REGISTERED_FROM] = run_id
                run_id = package_run
            self._require_package(run_id, prefix)
        flavor: str | None
        signature_dict: dict[str, Any] | None
        missing: str | None = None  # why the version gets no drift reference
        if model is not None:
            from modelloop import flavors

            with tempfile.TemporaryDirectory(prefix="modelloop-package-") as tmp:
                package = Path(tmp) / "package"
                manifest = flavors.save_model(
                    model,
                    package,
                    training_data=frame,
                    signature=signature,
                    allow_pickle=allow_pickle,
                    metadata={
                        "run_id": run_id,
                        "dataset_digests": digests,
                        "metrics": dict(metrics or {}),
                    },
                )
                data, source, missing = self._reference_data(
                    run_id, frame, source, manifest.signature.names
                )
                if data is not None:
                    fitted = reference.fit(package, data, allow_pickle)
                    (package / reference.REFERENCE_FILE).write_bytes(fitted)
                self.client.log_artifacts(run_id, package, prefix)
            flavor, signature_dict = manifest.flavor, manifest.signature.to_dict()
        else:
            flavor, signature_dict = self._logged_manifest(run_id, prefix)
            if signature is not None:
                signature_dict = signature if isinstance(signature, dict) else signature.to_dict()
            in_package = f"{prefix}/{reference.REFERENCE_FILE}"
            if flavor is not None and (
                frame is not None or self._read(run_id, in_package) is None
            ):  # e.g. a pipeline step's model
                path, source, missing = self._reference_beside(
                    run_id, prefix, frame, source, allow_pickle
                )
                if path is not None:
                    version_tags[reference.TAG_REFERENCE] = path
        if source is not None:
            version_tags[reference.TAG_REFERENCE_DATASET] = source
        spec = ModelVersionSpec(
            name=name,
            run_id=run_id,
            artifact_path=prefix,
            flavor=flavor,
            signature=signature_dict,
            description=description,
            tags=version_tags,
            metrics=dict(metrics or {}),
            dataset_digests=digests,
        )
        version = self.store.create_model_version(spec, actor=self.actor)
        if missing is not None:
            warnings.warn(reference.NoDriftReference(_no_reference(version, missing)), stacklevel=2)
        return version

    def set_reference_profile(
        self,
        name: str,
        version: int,
        training_data: pd.DataFrame | str,
        *,
        allow_pickle: bool = False,
    ) -> ModelVersion:
        """Give a version registered without one its drift reference, fitted on
        ``training_data`` (a frame, or a dataset reference such as ``"fraud@3"``). Stored beside
        its package, so the package stays the one registered; a reference, once there, is
        fixed (Conflict): register a new version to change it. Recorded in the audit log."""
        found = self.store.get_model_version(name, version)
        if found.flavor is None:
            raise InvalidArgument(
                f"{found.uri} was registered from files modelloop did not package: there is no "
                "signature to fit a drift reference for"
            )
        if self._read_reference(found) is not None:
            raise Conflict(
                f"{found.uri} already has a drift reference; it is fixed once set: register a "
                "new version to monitor against other data"
            )
        frame, source = self._training_frame(training_data)
        assert frame is not None
        payload = reference.fit(self.download_model(found), frame, allow_pickle)
        path = self.client.log_bytes(found.run_id, payload, reference.beside_path(payload)).path
        tags = {reference.TAG_REFERENCE: path}
        if source is not None:
            tags[reference.TAG_REFERENCE_DATASET] = source
        return self.store.update_model_version(name, version, actor=self.actor, tags=tags)

    def _training_frame(
        self, training_data: pd.DataFrame | str | None
    ) -> tuple[pd.DataFrame | None, str | None]:
        """The frame to fit a reference on and, given a dataset reference, the version it is."""
        if not isinstance(training_data, str):
            return training_data, None
        from modelloop.datasets.entities import parse_ref
        from modelloop.datasets.fluent import dataset_store

        store = dataset_store(self.client)
        dataset = store.get_version(*parse_ref(training_data))
        return store.load(dataset), dataset.ref

    def _reference_data(
        self,
        run_id: str,
        frame: pd.DataFrame | None,
        source: str | None,
        features: Sequence[str],
    ) -> tuple[pd.DataFrame | None, str | None, str | None]:
        """``(data to fit the reference on, the dataset it is, why there is none)``."""
        if frame is not None:
            return frame, source, None
        dataset, why = reference.training_dataset(self.client, run_id, features)
        if dataset is None:
            return None, None, why
        from modelloop.datasets.fluent import dataset_store

        return dataset_store(self.client).load(dataset), dataset.ref, None

    def _reference_beside(
        self,
        run_id: str,
        prefix: str,
        frame: pd.DataFrame | None,
        source: str | None,
        allow_pickle: bool,
    ) -> tuple[str | None, str | None, str | None]:
        """Fit the reference of a logged package and store it beside the package:
        ``(its artifact path, the dataset it is, why there is none)``."""
        from modelloop import flavors

        with tempfile.TemporaryDirectory(prefix="modelloop-package-") as tmp:
            self.client.download_artifacts(run_id, Path(tmp), prefix)
            package = Path(tmp).joinpath(*prefix.split("/"))
            features = flavors.read_manifest(package).signature.names
            data, source, missing = self._reference_data(run_id, frame, source, features)
            if data is None:
                return None, None, missing
            payload = reference.fit(package, data, allow_pickle)
        info = self.client.log_bytes(run_id, payload, reference.beside_path(payload))
        return info.path, source, None

    def _package_run(self, run_id: str, prefix: str) -> str:
        """The run holding the package under ``prefix``: ``run_id``, or for a cached pipeline
        step's run, which logged nothing, the run it stands for (its ``cached_from`` tag)."""
        from modelloop.tracking.entities import TAG_CACHED_FROM

        chain = [run_id]
        while True:
            current = chain[-1]
            original = self.client.get_run(current).tags.get(TAG_CACHED_FROM)
            if not original or original in chain or self.client.list_artifacts(current, prefix):
                return current
            chain.append(original)

    def _require_package(self, run_id: str, prefix: str) -> None:
        """NotFound naming the run's folders that do hold a model package (a pipeline step's
        model is under ``outputs/<output name>``, not the default ``model``)."""
        from modelloop.flavors import MANIFEST_NAME

        logged = [info.path for info in self.client.list_artifacts(run_id)]
        if any(path.startswith(prefix + "/") for path in logged):
            return
        suffix = "/" + MANIFEST_NAME
        packages = sorted(p.removesuffix(suffix) for p in logged if p.endswith(suffix))
        if not packages:
            raise NotFound(
                f"Run {run_id} has no artifacts under {prefix!r} and no model package elsewhere: "
                "log the model package there first (or pass the model to register_model)"
            )
        raise NotFound(
            f"Run {run_id} has no artifacts under {prefix!r}; its model packages are under "
            f"{', '.join(packages)}: register one with artifact_path={packages[0]!r} "
            f"(--artifact-path {packages[0]} on the command line)"
        )

    def _logged_manifest(self, run_id: str, prefix: str) -> tuple[str | None, Any]:
        import json

        from modelloop.flavors import MANIFEST_NAME, ModelManifest

        try:
            raw = self.client.read_artifact(run_id, f"{prefix}/{MANIFEST_NAME}")
        except NotFound:
            return self._mlflow_manifest(run_id, prefix)
        try:
            manifest = ModelManifest.from_dict(json.loads(raw))
        except ValueError as exc:
            raise InvalidArgument(f"{prefix}/{MANIFEST_NAME} is not valid JSON: {exc}") from None
        return manifest.flavor, manifest.signature.to_dict()

    def _mlflow_manifest(self, run_id: str, prefix: str) -> tuple[str | None, Any]:
        """The flavor and signature of a model an MLflow client logged there (an ``MLmodel``
        file), or none: files modelloop did not write, loaded as files."""
        from modelloop.tracking.logged_models import describe_mlflow_model

        return describe_mlflow_model(self.client.store, run_id, prefix)

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
        return resolve_model_uri(self.store, uri)

    def reference_profile(self, uri: str) -> dict[str, ColumnReference]:
        """The drift reference of a version: one per input feature and ``score`` (the model's
        output on its training data), so monitoring never re-reads the training data (see
        :mod:`modelloop.registry.reference`). NotFound, saying how to add one, when it has
        none."""
        import json

        from modelloop.datasets.reference import ColumnReference

        version = self.resolve_model_uri(uri)
        raw = self._read_reference(version)
        if raw is None:
            why = (
                "it was registered from files modelloop did not package"
                if version.flavor is None
                else "none was fitted when it was registered, nor set since"
            )
            raise NotFound(_no_reference(version, why))
        return {k: ColumnReference.from_dict(v) for k, v in json.loads(raw).items()}

    def _read_reference(self, version: ModelVersion) -> bytes | None:
        path = version.tags.get(reference.TAG_REFERENCE)
        default = f"{version.artifact_path}/{reference.REFERENCE_FILE}"
        return self._read(version.run_id, path or default)

    def _read(self, run_id: str, path: str) -> bytes | None:
        try:
            return self.client.read_artifact(run_id, path)
        except NotFound:
            return None

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

    def rename_model(self, name: str, new_name: str) -> RegisteredModel:
        """Refused while the model has aliases or a deployment, monitor or policy names it."""
        return self.store.rename_registered_model(name, new_name, actor=self.actor)

    def delete_model(self, name: str, *, reason: str) -> None:
        """With its versions; refused while aliases, pending requests or configs name it."""
        self.store.delete_registered_model(name, actor=self.actor, reason=reason)

    def delete_version(self, name: str, version: int, *, reason: str) -> None:
        """Refused while an alias, a pending request or a deployment names it; its number is
        never given again."""
        self.store.delete_model_version(name, version, actor=self.actor, reason=reason)

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


def _no_reference(version: ModelVersion, why: str) -> str:
    text = f"{version.uri} has no drift reference, so monitoring cannot check its drift ({why})"
    if version.flavor is None:
        return text  # files modelloop did not package: no signature to fit a reference for
    return (
        f"{text}. Add one with ml.set_reference_profile({version.name!r}, {version.version}, "
        "DATA) (DATA: a frame or 'NAME@VERSION' of a dataset), or register the package again "
        "with its training data (`modelloop models register ... --dataset NAME@VERSION`)"
    )
