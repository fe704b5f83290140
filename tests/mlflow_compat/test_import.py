"""``import_mlflow``: real MLflow stores (SQLite and file, written by the real mlflow client) copied
into a fresh modelloop store (SQLite, PostgreSQL, or a live modelloop server), then compared with
what MLflow's own client reads from the source: runs and their times, params, tags, dataset
inputs, every metric point, artifact bytes, registered models, versions (a stage kept as a tag)
and aliases; what is not copied is counted. A second import copies nothing."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

import modelloop as ml
from modelloop.errors import NotFound
from modelloop.mlflow_import import (
    KINDS,
    TAG_IMPORTED_FROM,
    TAG_STAGE,
    ImportReport,
    import_mlflow,
)
from modelloop.settings import Settings
from modelloop.tracking.entities import DatasetInput, Metric, RunSpec, RunStatus
from tests.live_server import live_server
from tests.mlflow_compat.mlflow_stores import MODEL, MlflowStore


@pytest.fixture
def client(settings: Settings) -> Iterator[ml.Client]:
    handle = ml.Client(settings=settings)
    yield handle
    handle.close()


def _source(store: MlflowStore) -> MlflowClient:
    return MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)


def _imported_runs(client: ml.Client) -> dict[str, ml.Run]:
    """MLflow run id -> the modelloop run imported from it."""
    runs = client.find_runs(max_results=1000)
    return {
        r.tags[TAG_IMPORTED_FROM].removeprefix("mlflow:"): r
        for r in runs
        if TAG_IMPORTED_FROM in r.tags
    }


def _files(source: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found: list[str] = []
    for info in source.list_artifacts(run_id, path):
        found += _files(source, run_id, info.path) if info.is_dir else [info.path]
    return found


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_same_as_source(store: MlflowStore, client: ml.Client, tmp: Path) -> None:
    """What MLflow's client reads from the source, modelloop holds."""
    source = _source(store)
    imported = _imported_runs(client)
    expected = {
        r.info.run_id: r
        for e in source.search_experiments()
        for r in source.search_runs([e.experiment_id])
    }
    assert set(imported) == set(expected)
    assert store.deleted not in imported
    names = {e.experiment_id: e.name for e in client.list_experiments()}
    for theirs_experiment in source.search_experiments():
        if theirs_experiment.name != "Default":
            ours_experiment = client.get_experiment(theirs_experiment.name)
            assert ours_experiment.tags == theirs_experiment.tags
    for run_id, theirs in expected.items():
        ours = imported[run_id]
        info = theirs.info
        assert names[ours.experiment_id] == source.get_experiment(info.experiment_id).name
        assert (ours.name, ours.user) == (info.run_name, info.user_id)
        assert ours.start_time == info.start_time
        assert ours.end_time == info.end_time
        assert ours.status.value == info.status
        assert ours.params == theirs.data.params
        assert {k: v for k, v in ours.tags.items() if k != TAG_IMPORTED_FROM} == theirs.data.tags
        parent = theirs.data.tags.get("mlflow.parentRunId")
        assert ours.parent_run_id == (imported[parent].run_id if parent else None)
        inputs = client.store.run_inputs(ours.run_id)
        assert sorted(inputs, key=lambda i: i.name) == sorted(
            (
                DatasetInput(
                    i.dataset.name,
                    i.dataset.digest,
                    i.dataset.source_type,
                    i.dataset.source,
                    i.dataset.schema,
                    i.dataset.profile,
                    {t.key: t.value for t in i.tags},
                )
                for i in theirs.inputs.dataset_inputs
            ),
            key=lambda i: i.name,
        )
        for key in theirs.data.metrics:
            history = source.get_metric_history(run_id, key)
            copied = client.metric_history(ours.run_id, key)
            ordered = sorted(history, key=lambda m: (m.step, m.timestamp))
            assert list(copied["step"]) == [m.step for m in ordered]
            assert list(copied["timestamp"]) == [m.timestamp for m in ordered]
            assert all(_same(a, m.value) for a, m in zip(copied["value"], ordered, strict=True))
        ours_files = {a.path for a in client.list_artifacts(ours.run_id)}
        for path in _files(source, run_id):
            local = source.download_artifacts(run_id, path, str(tmp))
            assert client.read_artifact(ours.run_id, path) == Path(local).read_bytes()
            ours_files.discard(path)
        assert all(p.startswith("models/m-") for p in ours_files), ours_files

    child = imported[store.child]
    assert len(client.metric_history(child.run_id, "loss")) > 300  # steps 0-299, two at 0
    versions = client.registry.list_versions(MODEL)
    theirs_model = source.get_registered_model(MODEL)
    ours_model = client.registry.get_model(MODEL)
    assert ours_model.description == theirs_model.description
    assert ours_model.tags == theirs_model.tags
    assert ours_model.aliases == {"challenger": 2}
    assert [v.version for v in versions] == [1, 2]
    for version in versions:
        theirs_version = source.get_model_version(MODEL, str(version.version))
        assert version.run_id == child.run_id
        assert version.description == theirs_version.description
        stage = theirs_version.current_stage
        assert version.tags == {
            **theirs_version.tags,
            TAG_IMPORTED_FROM: f"mlflow:{MODEL}/{version.version}",
            **({TAG_STAGE: stage} if stage != "None" else {}),
        }
        package = client.registry.download_model(version)
        if theirs_version.source.startswith("runs:/"):
            root = Path(source.download_artifacts(store.child, "plots", str(tmp / "v2")))
        else:  # an MLflow 3 logged model: its files, beside the run in MLflow
            from mlflow.artifacts import download_artifacts

            logged = source.get_logged_model(theirs_version.source.removeprefix("models:/"))
            where = str(tmp / "v1")
            location = logged.artifact_location
            root = Path(download_artifacts(location, dst_path=where, tracking_uri=store.uri))
        assert _tree(package) == _tree(root)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_counts_match(report: ImportReport) -> None:
    assert report.complete, report.to_dict()
    assert report.problems == []
    for kind in KINDS:
        assert report.counts[kind].source == report.counts[kind].imported, kind
        assert report.counts[kind].source > 0, kind


def test_an_mlflow_store_is_copied_whole_and_once(
    mlflow_store: MlflowStore, client: ml.Client, tmp_path: Path
) -> None:
    report = import_mlflow(mlflow_store.uri, client=client)

    assert_counts_match(report)
    assert {k: c.new for k, c in report.counts.items()} == {
        k: c.source for k, c in report.counts.items()
    }
    assert report.counts["runs"].source == 4  # the deleted run is left out
    assert report.counts["dataset_inputs"].source == 3  # the parent's one, the child's two
    names = sorted(e.name for e in client.list_experiments())
    assert names == ["churn", "default", "fraud"]  # MLflow's "Default" is modelloop's
    assert_same_as_source(mlflow_store, client, tmp_path)
    assert report.not_copied == not_copied(mlflow_store)
    # stages are deprecated and modelloop has none: the fact is kept, and said
    stage, drift = report.notes
    assert stage == (
        f"{MODEL}: MLflow stages (deprecated in MLflow 3; modelloop has none) are kept as the "
        "version tag mlflow.stage, with no other effect: MLflow version 1 Production"
    )
    assert client.registry.get_version(MODEL, 1).status.value == "READY"
    # MLflow's sklearn model is a modelloop model now: it loads and scores as it did
    assert drift.startswith(f"models:/{MODEL}/1 has no drift reference")  # no training data
    version = client.registry.get_version(MODEL, 1)
    assert version.flavor == "sklearn"
    loaded = client.registry.load_model(f"models:/{MODEL}/1")
    names = [column["name"] for column in version.signature["inputs"]]
    scores = loaded.predict(pd.DataFrame(mlflow_store.scored, columns=names))
    assert list(scores) == pytest.approx(mlflow_store.scores, abs=1e-12)

    # an import by an earlier modelloop kept no stage: a rerun adds it, copying nothing else
    client.registry.store.update_model_version(MODEL, 1, actor="test", delete_tags=[TAG_STAGE])
    again = import_mlflow(mlflow_store.uri, client=client)
    assert_counts_match(again)
    assert {k: c.new for k, c in again.counts.items()} == dict.fromkeys(KINDS, 0)
    assert again.not_copied == report.not_copied
    assert len(client.find_runs()) == 4
    assert_same_as_source(mlflow_store, client, tmp_path)


def not_copied(store: MlflowStore) -> list[str]:
    """What an import of the whole store says it left out, counted with MLflow's own client."""
    from mlflow.entities import ViewType

    source = _source(store)
    experiments = [e.experiment_id for e in source.search_experiments()]
    deleted = source.search_experiments(view_type=ViewType.DELETED_ONLY)
    runs = source.search_runs(experiments, run_view_type=ViewType.DELETED_ONLY)
    traces = source.search_traces(locations=experiments, include_spans=False)
    found = [source.get_run(r.info.run_id) for r in source.search_runs(experiments)]
    models = [m for r in found for m in r.inputs.model_inputs]  # not in search results
    prompts = source.search_prompts()
    assert {len(deleted), len(runs), len(traces), len(models), len(prompts)} == {1}
    restore = "deleted in MLflow (restored there, the next import copies them)"
    return [
        f"{len(deleted)} deleted experiment(s) and their runs: {restore}",
        f"{len(runs)} deleted run(s): {restore}",
        f"{len(traces)} trace(s): GenAI tracing is not part of modelloop",
        f"{len(models)} logged model input(s) of runs: logged models are copied as files of the "
        "run that logged them, not as models a run can take as input",
        f"{len(prompts)} prompt(s): MLflow's prompt registry is not part of modelloop's",
    ]


def test_an_interrupted_import_is_completed_by_the_next(
    mlflow_sqlite: MlflowStore, sqlite_settings: Settings, tmp_path: Path
) -> None:
    """Killed after the first run (the parent), then again half-way through the child's
    history and artifacts (the state a kill between two batches leaves, here every third point
    of its loss and one file): nothing committed is lost or copied twice, and the next import
    completes it."""
    client = ml.Client(settings=sqlite_settings)

    def stop_after_first_run(stage: str, done: int, total: int) -> None:
        if stage == "runs" and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_mlflow(mlflow_sqlite.uri, client=client, progress=stop_after_first_run)
    (parent,) = _imported_runs(client).values()
    assert (parent.name, parent.status) == ("sweep", RunStatus.FINISHED)

    source = _source(mlflow_sqlite)
    theirs = source.get_run(mlflow_sqlite.child)
    history = source.get_metric_history(mlflow_sqlite.child, "loss")
    half = client.store.create_run(
        RunSpec(
            experiment_id=parent.experiment_id,
            name=theirs.info.run_name,
            parent_run_id=parent.run_id,
            user=theirs.info.user_id,
            params=theirs.data.params,
            tags={**theirs.data.tags, TAG_IMPORTED_FROM: f"mlflow:{mlflow_sqlite.child}"},
            start_time=theirs.info.start_time,
        )
    )
    copied = [Metric(m.key, m.value, m.step, m.timestamp) for m in history[::3]]
    client.store.log_batch(half.run_id, metrics=copied)  # any subset: batches need no order
    roc = Path(source.download_artifacts(mlflow_sqlite.child, "plots/roc.csv", str(tmp_path)))
    client.log_bytes(half.run_id, roc.read_bytes(), "plots/roc.csv")

    report = import_mlflow(mlflow_sqlite.uri, client=client)

    assert_counts_match(report)
    assert report.counts["runs"].new == 2  # the failed sibling and the fraud run
    points = report.counts["metric_points"]
    parent_points = len(source.get_metric_history(mlflow_sqlite.parent, "best_auc"))
    assert points.new == points.source - parent_points - len(copied)
    assert report.counts["artifact_files"].new == report.counts["artifact_files"].source - 1
    assert_same_as_source(mlflow_sqlite, client, tmp_path)
    client.close()


def test_a_dry_run_counts_and_writes_nothing(
    mlflow_sqlite: MlflowStore, sqlite_settings: Settings
) -> None:
    client = ml.Client(settings=sqlite_settings)
    before = import_mlflow(mlflow_sqlite.uri, client=client, dry_run=True)

    assert client.list_experiments() == []
    assert not before.complete
    for kind in KINDS:
        count = before.counts[kind]
        assert (count.imported, count.new) == (0, count.source), kind
        assert count.source > 0, kind

    real = import_mlflow(mlflow_sqlite.uri, client=client)
    assert {k: c.source for k, c in real.counts.items()} == {
        k: c.source for k, c in before.counts.items()
    }
    after = import_mlflow(mlflow_sqlite.uri, client=client, dry_run=True)
    assert after.complete
    assert {k: c.new for k, c in after.counts.items()} == dict.fromkeys(KINDS, 0)
    client.close()


def test_only_the_named_experiments_are_copied(
    mlflow_sqlite: MlflowStore, sqlite_settings: Settings
) -> None:
    client = ml.Client(settings=sqlite_settings)
    report = import_mlflow(mlflow_sqlite.uri, client=client, experiments=["fraud"])

    assert_counts_match_where_present(report)
    assert [e.name for e in client.list_experiments()] == ["fraud"]
    (run,) = _imported_runs(client).values()
    assert (run.name, run.status) == ("still going", RunStatus.RUNNING)
    assert report.counts["models"].source == 0  # its versions come from churn's runs
    assert client.registry.list_models() == []
    assert report.not_copied == [  # of fraud only
        "1 deleted run(s): deleted in MLflow (restored there, the next import copies them)"
    ]

    with pytest.raises(NotFound, match=r"'nope'.*churn, fraud"):
        import_mlflow(mlflow_sqlite.uri, client=client, experiments=["nope"])
    client.close()


def assert_counts_match_where_present(report: ImportReport) -> None:
    assert report.complete, report.to_dict()
    for kind in KINDS:
        assert report.counts[kind].source == report.counts[kind].imported, kind


def test_a_protected_alias_is_requested_not_set(
    mlflow_sqlite: MlflowStore,
    sqlite_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An import does not bypass four eyes: the alias waits for another user's approval, a
    rerun does not request it twice, and once approved the import is complete."""
    settings = dataclasses.replace(sqlite_settings, protected_aliases=frozenset({"challenger"}))
    monkeypatch.setenv("MODELLOOP_USER", "importer")
    client = ml.Client(settings=settings)

    report = import_mlflow(mlflow_sqlite.uri, client=client)
    assert not report.complete
    assert (report.counts["aliases"].source, report.counts["aliases"].imported) == (1, 0)
    (request,) = client.registry.list_requests(MODEL, "PENDING")
    assert (request.alias, request.version, request.requested_by) == ("challenger", 2, "importer")
    assert report.problems == [
        f"alias {MODEL}@challenger is protected: requested for version 2, awaiting approval by "
        f"another user (modelloop models approve {request.request_id})"
    ]

    again = import_mlflow(mlflow_sqlite.uri, client=client)
    assert again.problems == report.problems
    assert len(client.registry.list_requests(MODEL)) == 1

    monkeypatch.setenv("MODELLOOP_USER", "approver")
    client.registry.approve_request(request.request_id, "checked the MLflow import")
    monkeypatch.setenv("MODELLOOP_USER", "importer")
    done = import_mlflow(mlflow_sqlite.uri, client=client)
    assert_counts_match(done)
    assert client.registry.get_model(MODEL).aliases == {"challenger": 2}
    client.close()


def test_an_import_through_a_modelloop_server(
    mlflow_sqlite: MlflowStore, sqlite_settings: Settings, tmp_path: Path
) -> None:
    with live_server(sqlite_settings) as url:
        client = ml.Client(settings=dataclasses.replace(sqlite_settings, tracking_uri=url))
        report = import_mlflow(mlflow_sqlite.uri, client=client)
        assert_counts_match(report)
        assert_same_as_source(mlflow_sqlite, client, tmp_path)
        again = import_mlflow(mlflow_sqlite.uri, client=client)
        assert {k: c.new for k, c in again.counts.items()} == dict.fromkeys(KINDS, 0)
        client.close()


@pytest.mark.slow
def test_an_mlflow_server_is_copied(
    mlflow_http: MlflowStore, sqlite_settings: Settings, tmp_path: Path
) -> None:
    """Through MLflow's REST API, its artifacts (logged models' too) proxied by the server."""
    client = ml.Client(settings=sqlite_settings)
    report = import_mlflow(mlflow_http.uri, client=client)
    assert_counts_match(report)
    assert_same_as_source(mlflow_http, client, tmp_path)
    again = import_mlflow(mlflow_http.uri, client=client)
    assert {k: c.new for k, c in again.counts.items()} == dict.fromkeys(KINDS, 0)
    client.close()


def test_a_param_that_differs_is_reported_not_overwritten(
    mlflow_sqlite: MlflowStore, sqlite_settings: Settings
) -> None:
    client = ml.Client(settings=sqlite_settings)
    experiment = client.create_experiment("churn")
    mine = client.store.create_run(
        RunSpec(
            experiment_id=experiment.experiment_id,
            name="sweep",
            params={"folds": "10"},
            tags={TAG_IMPORTED_FROM: f"mlflow:{mlflow_sqlite.parent}"},
        )
    )
    report = import_mlflow(mlflow_sqlite.uri, client=client)

    assert not report.complete
    params = report.counts["params"]
    assert params.imported == params.source - 1
    assert report.problems == [
        f"run {mine.run_id}: param 'folds' is '10' in modelloop but '5' in MLflow (params "
        "cannot change)"
    ]
    assert client.get_run(mine.run_id).params == {"folds": "10", "model": "lgbm"}
    client.close()
