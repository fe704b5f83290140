"""The registry SDK end to end with a real LightGBM model: register from a run, alias, load by
alias and by version, locally and through a server."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop.errors import InvalidArgument, NotFound, UnsafeFormat
from modelloop.registry.reference import NoDriftReference
from modelloop.settings import load_settings
from modelloop.tracking.client import Client
from tests.live_server import live_server

DIGESTS = {"train": "a" * 64, "valid": "b" * 64}


@pytest.fixture(scope="module")
def trained() -> tuple[Any, pd.DataFrame]:
    import lightgbm as lgb

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(400, 5)), columns=[f"f{i}" for i in range(5)])
    label = (frame.f0 + 0.5 * frame.f1 - frame.f2 > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "deterministic": True}
    return lgb.train(params, lgb.Dataset(frame, label), num_boost_round=15), frame


def _register(trained: tuple[Any, pd.DataFrame], name: str = "fraud-detector") -> ml.ModelVersion:
    booster, frame = trained
    with ml.start_run(experiment="fraud") as run:
        return ml.register_model(
            run,
            name,
            booster,
            training_data=frame,
            description="gbdt baseline",
            tags={"team": "risk"},
            metrics={"auc": 0.91},
            dataset_digests=DIGESTS,
        )


def test_register_alias_load_predict(home: Path, trained: tuple[Any, pd.DataFrame]) -> None:
    booster, frame = trained
    version = _register(trained)
    assert (version.name, version.version, version.flavor) == ("fraud-detector", 1, "lightgbm")
    assert [f["name"] for f in version.signature["inputs"]] == list(frame.columns)  # type: ignore[index]
    assert (version.metrics, version.dataset_digests) == ({"auc": 0.91}, DIGESTS)
    ml.set_alias("fraud-detector", "challenger", 1, reason="first candidate")
    by_alias = ml.load_model("models:/fraud-detector@challenger")
    by_version = ml.load_model("models:/fraud-detector/1")
    expected = booster.predict(frame)
    np.testing.assert_array_equal(by_alias.predict(frame), by_version.predict(frame))
    np.testing.assert_allclose(by_alias.predict(frame), expected, rtol=1e-12)
    cached = home / "cache" / "models" / version.package_digest
    assert cached.is_dir()
    manifest = json.loads((cached / "modelloop-model.json").read_text())
    assert manifest["metadata"]["run_id"] == version.run_id
    assert manifest["metadata"]["dataset_digests"] == DIGESTS
    assert manifest["metadata"]["metrics"] == {"auc": 0.91}


def test_the_cache_is_reused(
    home: Path, trained: tuple[Any, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    version = _register(trained)
    first = ml.download_model(version)

    def no_downloads(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded again")

    monkeypatch.setattr(Client, "download_artifacts", no_downloads)
    assert ml.download_model(ml.resolve_model_uri("models:/fraud-detector/1")) == first
    ml.load_model("models:/fraud-detector/1")


def test_concurrent_loaders_share_one_download(
    home: Path, trained: tuple[Any, pd.DataFrame]
) -> None:
    version = _register(trained)
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(ml.download_model(version))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 1
    assert [p.name for p in (home / "cache" / "models").iterdir()] == [version.package_digest]


def test_register_an_already_logged_package(
    home: Path, trained: tuple[Any, pd.DataFrame], tmp_path: Path
) -> None:
    from modelloop import flavors

    booster, frame = trained
    flavors.save_model(booster, tmp_path / "pkg", training_data=frame)
    with ml.start_run(experiment="fraud") as run:
        run.log_artifacts(tmp_path / "pkg", artifact_path="packaged/lgbm")
    with pytest.warns(NoDriftReference, match="no drift reference"):  # no data, no dataset read
        version = ml.register_model(run.run_id, "fraud-detector", artifact_path="packaged/lgbm")
    assert version.flavor == "lightgbm"
    assert version.artifact_path == "packaged/lgbm"
    loaded = ml.load_model("models:/fraud-detector/latest")
    np.testing.assert_allclose(loaded.predict(frame), booster.predict(frame), rtol=1e-12)


def test_files_modelloop_did_not_package(home: Path) -> None:
    with ml.start_run() as run:
        run.log_text("tree\n", "model/model.txt")
    version = ml.register_model(run, "raw")
    assert (version.flavor, version.signature) == (None, None)
    with pytest.raises(InvalidArgument, match="download_model"):
        ml.load_model("models:/raw/1")
    assert (ml.download_model(version) / "model.txt").read_text() == "tree\n"


class _Custom:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:  # pragma: no cover - never loaded
        return np.zeros(len(frame))


def test_pickle_needs_an_opt_in(home: Path, trained: tuple[Any, pd.DataFrame]) -> None:
    with ml.start_run() as run, pytest.raises(UnsafeFormat):
        ml.register_model(run, "odd", _Custom(), training_data=trained[1])
    with pytest.raises(NotFound):
        ml.get_registry().get_model("odd")


@pytest.mark.parametrize(
    "uri",
    [
        "fraud-detector",
        "models:/fraud-detector",
        "models:/fraud-detector@",
        "models:/x/1/2",
        "models:/x@Champion",
        "models:/x/v1",
        "models:/x/0",
        "models:/x/-1",
        "models://x/1",
        "runs:/abc/model",
        "models:/x/\u0661",
    ],
)
def test_malformed_uris_say_what_is_expected(home: Path, uri: str) -> None:
    with pytest.raises(InvalidArgument, match=r"models:/NAME@ALIAS|alias|version"):
        ml.resolve_model_uri(uri)


def test_latest_is_the_highest_ready_version(home: Path, trained: tuple[Any, pd.DataFrame]) -> None:
    for _ in range(3):
        _register(trained)
    ml.set_version_status("fraud-detector", 3, "ARCHIVED", reason="leaky feature")
    assert ml.resolve_model_uri("models:/fraud-detector/latest").version == 2
    with pytest.raises(NotFound):
        ml.resolve_model_uri("models:/nothing/latest")


def test_lineage(home: Path, trained: tuple[Any, pd.DataFrame]) -> None:
    version = _register(trained)
    lineage = ml.model_lineage("fraud-detector", 1)
    assert lineage.version == ml.get_model_version("fraud-detector", 1)
    assert lineage.run.run_id == version.run_id
    assert "git_commit" in lineage.code_version
    assert lineage.environment["packages"]["lightgbm"]
    assert lineage.dataset_digests == DIGESTS


def test_through_a_server(
    home: Path, trained: tuple[Any, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    booster, frame = trained
    server_settings = load_settings({"MODELLOOP_HOME": str(tmp_path / "server")})
    with live_server(server_settings) as url:
        monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
        monkeypatch.setenv("MODELLOOP_USER", "alice")
        version = _register(trained)
        ml.set_alias("fraud-detector", "challenger", version.version, reason="remote")
        loaded = ml.load_model("models:/fraud-detector@challenger")
        np.testing.assert_allclose(loaded.predict(frame), booster.predict(frame), rtol=1e-12)
        assert [e.actor for e in ml.audit_log("fraud-detector")] == ["alice"] * 3
        assert ml.verify_audit().ok
        ml.get_client().close()
    assert (home / "cache" / "models" / version.package_digest).is_dir()  # cached client-side


def test_rename_and_delete(
    home: Path, trained: tuple[Any, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_USER", "alice")
    _register(trained)
    _register(trained)
    registry = ml.get_client().registry
    assert registry.rename_model("fraud-detector", "fraud").latest_version == 2
    registry.delete_version("fraud", 2, reason="superseded")
    assert [v.version for v in registry.list_versions("fraud")] == [1]
    registry.delete_model("fraud", reason="retired")
    with pytest.raises(NotFound):
        registry.get_model("fraud")
    events = registry.audit_log("fraud")
    assert [(e.action, e.actor) for e in events][-2:] == [
        ("model_version.delete", "alice"),
        ("model.delete", "alice"),
    ]
    assert registry.verify_audit().ok
