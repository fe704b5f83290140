"""A registry store on SQLite, PostgreSQL or a live server, with runs to register from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelloop.registry.client import open_registry_store
from modelloop.registry.entities import ModelVersionSpec
from modelloop.registry.store import RegistryStore
from modelloop.settings import Settings
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import RunSpec
from modelloop.tracking.store import TrackingStore
from tests.conftest import store_settings


@dataclass
class Env:
    store: RegistryStore
    tracking: TrackingStore  # the same database, always local
    settings: Settings

    def run(self, files: dict[str, bytes] | None = None) -> str:
        """A run with a model package (``model/...``) in its artifacts."""
        found = self.tracking.get_experiment_by_name("reg")
        exp = found if found is not None else self.tracking.create_experiment("reg")
        run_id = self.tracking.create_run(RunSpec(experiment_id=exp.experiment_id)).run_id
        for path, content in (files or {"model/model.txt": b"tree 1\n"}).items():
            self.tracking.put_artifact(run_id, path, content)
        return run_id

    def version(self, name: str, actor: str = "alice", **spec: object) -> int:
        created = self.store.create_model_version(
            ModelVersionSpec(name=name, run_id=self.run(), **spec),  # type: ignore[arg-type]
            actor=actor,
        )
        return created.version


def package_digest(files: dict[str, bytes], prefix: str = "model") -> str:
    lines = "".join(
        f"{path[len(prefix) + 1 :]}\t{hashlib.sha256(content).hexdigest()}\n"
        for path, content in sorted(files.items())
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    backend = "sqlite" if request.param == "http" else request.param
    with store_settings(tmp_path, backend) as settings:
        tracking = open_store(settings)
        if request.param != "http":
            yield Env(open_registry_store(settings), tracking, settings)
            return
        from modelloop.registry.http import HttpRegistryStore
        from tests.live_server import live_server

        with live_server(settings) as url:
            remote = HttpRegistryStore(url)
            try:
                yield Env(remote, tracking, settings)
            finally:
                remote.close()
