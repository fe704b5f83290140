"""One contract for every TrackingStore: SQLite, PostgreSQL, and the HTTP client to a server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelloop.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    InvalidFilter,
    NotFound,
    UnsafePath,
)
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import Metric, RunSpec, RunStatus
from modelloop.tracking.store import TrackingStore
from tests.conftest import store_settings


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        "http",
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrackingStore]:
    backend = "sqlite" if request.param == "http" else request.param
    with store_settings(tmp_path, backend) as settings:
        if request.param != "http":
            yield open_store(settings)
            return
        from modelloop.tracking.http import HttpTrackingStore
        from tests.live_server import live_server

        with live_server(settings) as url:
            remote = HttpTrackingStore(url)
            try:
                yield remote
            finally:
                remote.close()


def _run(store: TrackingStore, experiment: str = "exp", **spec: object) -> str:
    found = store.get_experiment_by_name(experiment)
    exp = found if found is not None else store.create_experiment(experiment)
    return store.create_run(RunSpec(experiment_id=exp.experiment_id, **spec)).run_id  # type: ignore[arg-type]


# -- experiments -----------------------------------------------------------------------------


def test_experiments_round_trip(store: TrackingStore) -> None:
    created = store.create_experiment("fraud", "card fraud")
    assert store.get_experiment(created.experiment_id) == created
    assert store.get_experiment_by_name("fraud") == created
    assert store.get_experiment_by_name("nope") is None
    store.create_experiment("churn")
    assert [e.name for e in store.list_experiments()] == ["churn", "fraud"]


def test_experiment_name_is_unique(store: TrackingStore) -> None:
    store.create_experiment("fraud")
    with pytest.raises(AlreadyExists, match="fraud"):
        store.create_experiment("fraud")


@pytest.mark.parametrize("name", ["", "   ", "x" * 257, "a\nb"])
def test_experiment_name_is_checked(store: TrackingStore, name: str) -> None:
    with pytest.raises(InvalidArgument):
        store.create_experiment(name)


# "invoice\u202efdp.exe" displays as "invoiceexe.pdf": a name that reads as another.
@pytest.mark.parametrize("char", ["\u202e", "\u202a", "\u2066", "\u2069", "\u200f", "\u061c"])
def test_names_refuse_bidirectional_controls(store: TrackingStore, char: str) -> None:
    name = f"invoice{char}fdp.exe"
    with pytest.raises(InvalidArgument, match=f"U\\+{ord(char):04X}") as caught:
        store.create_experiment(name)
    assert caught.value.details is not None
    assert caught.value.details[0]["field"] == "name"
    assert store.get_experiment_by_name(name) is None
    exp = store.create_experiment("fraud")
    with pytest.raises(InvalidArgument, match="bidirectional") as caught:
        store.create_run(RunSpec(exp.experiment_id, name=name))
    assert caught.value.details is not None
    assert caught.value.details[0]["field"] == "name"
    with pytest.raises(InvalidArgument, match="bidirectional") as caught:
        store.create_run(RunSpec(exp.experiment_id, user=name))
    assert caught.value.details is not None
    assert caught.value.details[0]["field"] == "user"
    assert store.search_runs([exp.experiment_id], "", [], 100) == []


def test_unknown_experiment(store: TrackingStore) -> None:
    with pytest.raises(NotFound):
        store.get_experiment("0" * 32)
    with pytest.raises(NotFound):
        store.create_run(RunSpec(experiment_id="0" * 32))


# -- runs ------------------------------------------------------------------------------------


def test_run_records_everything_it_was_given(store: TrackingStore) -> None:
    exp = store.create_experiment("fraud")
    run = store.create_run(
        RunSpec(
            experiment_id=exp.experiment_id,
            name="lgbm-1",
            user="alice",
            params={"lr": "0.1", "model": "lgbm"},
            tags={"team": "risk"},
            source={"git_commit": "abc", "git_dirty": True, "git_diff_sha256": "f" * 64},
            environment={"python": "3.11.7", "packages": {"numpy": "2.0"}},
        )
    )
    assert run.status is RunStatus.RUNNING
    assert run.end_time is None
    assert (run.name, run.user, run.experiment_id) == ("lgbm-1", "alice", exp.experiment_id)
    assert run.params == {"lr": "0.1", "model": "lgbm"}
    assert run.tags == {"team": "risk"}
    assert run.source["git_dirty"] is True
    assert run.environment["packages"] == {"numpy": "2.0"}
    assert store.get_run(run.run_id) == run


def test_child_runs_point_at_their_parent(store: TrackingStore) -> None:
    parent = _run(store)
    child = _run(store, parent_run_id=parent)
    assert store.get_run(child).parent_run_id == parent
    with pytest.raises(NotFound):
        _run(store, parent_run_id="0" * 32)


def test_end_run(store: TrackingStore) -> None:
    run_id = _run(store)
    ended = store.end_run(run_id, RunStatus.FAILED, "ValueError: boom")
    assert ended.status is RunStatus.FAILED
    assert ended.error == "ValueError: boom"
    assert ended.end_time is not None
    assert ended.end_time >= ended.start_time
    assert store.end_run(run_id, RunStatus.FAILED).status is RunStatus.FAILED  # idempotent
    with pytest.raises(Conflict, match="FAILED"):
        store.end_run(run_id, RunStatus.FINISHED)
    with pytest.raises(InvalidArgument):
        store.end_run(_run(store), RunStatus.RUNNING)


def test_start_and_end_times_given_by_the_caller_are_kept(store: TrackingStore) -> None:
    exp = store.create_experiment("imported")
    run = store.create_run(RunSpec(exp.experiment_id, name="old", start_time=1_600_000_000_123))
    assert run.start_time == 1_600_000_000_123
    ended = store.end_run(run.run_id, RunStatus.FINISHED, end_time=1_600_000_360_456)
    assert (ended.start_time, ended.end_time) == (1_600_000_000_123, 1_600_000_360_456)
    assert store.get_run(run.run_id).end_time == 1_600_000_360_456
    (found,) = store.search_runs([exp.experiment_id], "start_time < 1600000001000")
    assert found.run_id == run.run_id


@pytest.mark.parametrize("when", [-1, 2**63])
def test_times_are_checked(store: TrackingStore, when: int) -> None:
    exp = store.create_experiment("imported")
    with pytest.raises(InvalidArgument):
        store.create_run(RunSpec(exp.experiment_id, start_time=when))
    run_id = _run(store, "imported")
    with pytest.raises(InvalidArgument):
        store.end_run(run_id, RunStatus.FINISHED, end_time=when)
    assert store.get_run(run_id).status is RunStatus.RUNNING


@pytest.mark.parametrize("run_id", ["0" * 32, "ABC", "../../etc", "1" * 33])
def test_unknown_or_malformed_run_id(store: TrackingStore, run_id: str) -> None:
    with pytest.raises((NotFound, InvalidArgument)):
        store.get_run(run_id)
    with pytest.raises((NotFound, InvalidArgument)):
        store.log_batch(run_id, [Metric("m", 1.0, 0, 1)])


# -- params, tags, metrics -------------------------------------------------------------------


def test_params_are_immutable(store: TrackingStore) -> None:
    run_id = _run(store, params={"lr": "0.1"})
    store.log_batch(run_id, params={"lr": "0.1", "depth": "6"})  # same value again is fine
    with pytest.raises(Conflict, match="lr"):
        store.log_batch(run_id, [Metric("m", 1.0, 0, 1)], params={"lr": "0.2"})
    run = store.get_run(run_id)
    assert run.params == {"lr": "0.1", "depth": "6"}
    assert run.metrics == {}, "a rejected batch writes nothing"


def test_tags_are_overwritten(store: TrackingStore) -> None:
    run_id = _run(store, tags={"stage": "dev"})
    store.log_batch(run_id, tags={"stage": "prod", "owner": "bob"})
    assert store.get_run(run_id).tags == {"stage": "prod", "owner": "bob"}


@pytest.mark.parametrize("key", ["", " lead", "a" * 251, "semi;colon", "new\nline", "é\x00"])
def test_keys_are_checked(store: TrackingStore, key: str) -> None:
    run_id = _run(store)
    with pytest.raises(InvalidArgument):
        store.log_batch(run_id, [Metric(key, 1.0, 0, 1)])
    with pytest.raises(InvalidArgument):
        store.log_batch(run_id, params={key: "1"})


@pytest.mark.parametrize("key", ["précision", "損失/valid", "val loss:2", "a" * 250])
def test_keys_of_any_script_are_taken_as_mlflow_takes_them(store: TrackingStore, key: str) -> None:
    run_id = _run(store)
    store.log_batch(run_id, [Metric(key, 1.0, 0, 1)], params={key: "1"}, tags={key: "x"})
    run = store.get_run(run_id)
    assert (run.metrics[key], run.params[key], run.tags[key]) == (1.0, "1", "x")


def test_metric_history_is_complete_and_ordered(store: TrackingStore) -> None:
    run_id = _run(store)
    store.log_batch(run_id, [Metric("loss", 1.0 / (s + 1), s, 1000 + s) for s in range(5, 10)])
    store.log_batch(run_id, [Metric("loss", 1.0 / (s + 1), s, 2000 + s) for s in range(5)])
    store.log_batch(
        run_id, [Metric("loss", math.nan, 10, 3000), Metric("loss", math.inf, 11, 3001)]
    )
    series = store.metric_history(run_id, "loss")
    assert list(series.steps) == list(range(12))
    assert list(series.values[:10]) == [1.0 / (s + 1) for s in range(10)]
    assert math.isnan(series.values[10])
    assert series.values[11] == math.inf
    assert list(series.timestamps[:5]) == [2000 + s for s in range(5)]
    assert len(store.metric_history(run_id, "other")) == 0


def test_latest_metric_is_the_highest_step_not_the_last_written(store: TrackingStore) -> None:
    run_id = _run(store)
    store.log_batch(run_id, [Metric("auc", 0.9, 10, 1)])
    store.log_batch(run_id, [Metric("auc", 0.5, 3, 2)])
    store.log_batch(run_id, [Metric("acc", 0.7, 0, 5), Metric("acc", 0.8, 0, 6)])
    assert store.get_run(run_id).metrics == {"auc": 0.9, "acc": 0.8}


# -- search ----------------------------------------------------------------------------------


@pytest.fixture
def runs(store: TrackingStore) -> dict[str, str]:
    """Five runs in 'fraud' and one in 'churn' with metrics, params and tags to search on."""
    ids = {}
    for i, (model, auc) in enumerate(
        [("lgbm", 0.91), ("lgbm", 0.95), ("xgb", 0.93), ("logreg", 0.80), ("xgb", None)]
    ):
        run_id = _run(store, "fraud", name=f"r{i}", params={"model": model}, tags={"i": str(i)})
        if auc is not None:
            store.log_batch(run_id, [Metric("auc", auc, 0, 1)])
        ids[f"r{i}"] = run_id
    ids["other"] = _run(store, "churn", params={"model": "lgbm"})
    store.log_batch(ids["other"], [Metric("auc", 0.99, 0, 1)])
    store.end_run(ids["r1"], RunStatus.FINISHED)
    return ids


def _names(store: TrackingStore, filter: str | None = None, order_by: list[str] | None = None,
           max_results: int = 1000, offset: int = 0) -> list[str]:  # fmt: skip
    fraud = store.get_experiment_by_name("fraud")
    assert fraud is not None
    found = store.search_runs([fraud.experiment_id], filter, order_by or [], max_results, offset)
    return [r.name for r in found]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("metrics.auc > 0.9", {"r0", "r1", "r2"}),
        ("metrics.auc > 0.9 and params.model = 'lgbm'", {"r0", "r1"}),
        ("params.model = 'xgb' or metrics.auc < 0.85", {"r2", "r3", "r4"}),
        ("params.model != 'lgbm'", {"r2", "r3", "r4"}),
        ("params.model LIKE 'l%'", {"r0", "r1", "r3"}),
        ("params.model ILIKE 'LG%'", {"r0", "r1"}),
        ("params.model IN ('xgb', 'logreg')", {"r2", "r3", "r4"}),
        ("params.model NOT IN ('xgb', 'logreg')", {"r0", "r1"}),
        ("tags.i = '3'", {"r3"}),
        ("status = 'FINISHED'", {"r1"}),
        ("attributes.status != 'FINISHED' and metrics.auc >= 0.93", {"r2"}),
        ("name = 'r4'", {"r4"}),
        ("metrics.missing > 0", set()),
        ("(params.model = 'xgb' or params.model = 'lgbm') and metrics.auc < 0.92", {"r0"}),
    ],
)
def test_search_filters(
    store: TrackingStore, runs: dict[str, str], filter: str, expected: set[str]
) -> None:
    assert set(_names(store, filter)) == expected


def test_search_orders_and_limits(store: TrackingStore, runs: dict[str, str]) -> None:
    assert _names(store, order_by=["metrics.auc DESC"]) == ["r1", "r2", "r0", "r3", "r4"]
    assert _names(store, order_by=["metrics.auc"]) == ["r3", "r0", "r2", "r1", "r4"]
    assert _names(store, order_by=["params.model", "metrics.auc DESC"])[:3] == ["r1", "r0", "r3"]
    assert _names(store, order_by=["metrics.auc DESC"], max_results=2) == ["r1", "r2"]
    page_2 = _names(store, order_by=["metrics.auc DESC"], max_results=2, offset=2)
    assert page_2 == ["r0", "r3"]  # the next page, in the same order
    assert _names(store) == ["r4", "r3", "r2", "r1", "r0"]  # newest first


def test_search_returns_params_tags_and_latest_metrics(
    store: TrackingStore, runs: dict[str, str]
) -> None:
    fraud = store.get_experiment_by_name("fraud")
    churn = store.get_experiment_by_name("churn")
    assert fraud is not None
    assert churn is not None
    (found,) = store.search_runs([fraud.experiment_id], "name = 'r2'")
    assert found.params == {"model": "xgb"}
    assert found.tags == {"i": "2"}
    assert found.metrics == {"auc": 0.93}
    both = store.search_runs([fraud.experiment_id, churn.experiment_id], "metrics.auc > 0.96")
    assert [r.run_id for r in both] == [runs["other"]]


@pytest.mark.parametrize("filter", ["metrics.auc >", "metrcs.auc > 1", "params.model > 3"])
def test_search_rejects_bad_filters(
    store: TrackingStore, runs: dict[str, str], filter: str
) -> None:
    with pytest.raises(InvalidFilter, match="position"):
        _names(store, filter)


def test_search_rejects_bad_limits(store: TrackingStore, runs: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        _names(store, max_results=0)


# -- artifacts -------------------------------------------------------------------------------


def test_artifacts_round_trip(store: TrackingStore, tmp_path: Path) -> None:
    run_id = _run(store)
    file = tmp_path / "model.txt"
    file.write_bytes(b"tree\n" * 1000)
    info = store.put_artifact(run_id, "model/model.txt", file)
    assert (info.path, info.size) == ("model/model.txt", 5000)
    store.put_artifact(run_id, "./model//notes.md", b"# notes")
    store.put_artifact(run_id, "modelling.csv", b"a,b")
    assert [a.path for a in store.list_artifacts(run_id)] == [
        "model/model.txt",
        "model/notes.md",
        "modelling.csv",
    ]
    assert [a.path for a in store.list_artifacts(run_id, "model")] == [
        "model/model.txt",
        "model/notes.md",
    ]
    with store.open_artifact(run_id, "model/model.txt") as stream:
        assert stream.read() == file.read_bytes()


def test_artifacts_are_immutable_and_idempotent(store: TrackingStore) -> None:
    run_id = _run(store)
    first = store.put_artifact(run_id, "a.txt", b"one")
    assert store.put_artifact(run_id, "a.txt", b"one") == first
    with pytest.raises(Conflict, match=r"a\.txt"):
        store.put_artifact(run_id, "a.txt", b"two")


def test_artifact_errors(store: TrackingStore) -> None:
    run_id = _run(store)
    with pytest.raises(UnsafePath):
        store.put_artifact(run_id, "../escape.txt", b"x")
    with pytest.raises(UnsafePath):
        store.list_artifacts(run_id, "%2e%2e")
    with pytest.raises(NotFound):
        store.open_artifact(run_id, "missing.txt")
    with pytest.raises(NotFound):
        store.put_artifact("0" * 32, "a.txt", b"x")


# -- lifecycle: rename, delete, restore; experiment tags; inputs ------------------------------


def test_experiment_rename_and_tags(store: TrackingStore) -> None:
    exp = store.create_experiment("fraud")
    store.create_experiment("churn")
    assert exp.updated_at == exp.created_at
    renamed = store.rename_experiment(exp.experiment_id, "card-fraud")
    assert renamed.name == "card-fraud"
    assert renamed.updated_at is not None
    assert renamed.updated_at >= exp.created_at
    assert store.get_experiment_by_name("fraud") is None
    with pytest.raises(AlreadyExists, match="churn"):
        store.rename_experiment(exp.experiment_id, "churn")
    with pytest.raises(NotFound):
        store.rename_experiment("0" * 32, "x")
    store.set_experiment_tags(exp.experiment_id, {"team": "risk", "stage": "dev"})
    store.set_experiment_tags(exp.experiment_id, {"stage": "prod"})
    assert store.get_experiment(exp.experiment_id).tags == {"team": "risk", "stage": "prod"}
    store.delete_experiment_tag(exp.experiment_id, "team")
    assert store.get_experiment(exp.experiment_id).tags == {"stage": "prod"}
    with pytest.raises(NotFound, match="team"):
        store.delete_experiment_tag(exp.experiment_id, "team")
    with pytest.raises(InvalidArgument):
        store.set_experiment_tags(exp.experiment_id, {"bad\nkey": "x"})


def test_experiment_search(store: TrackingStore) -> None:
    for name, team in [("fraud-a", "risk"), ("fraud-b", "risk"), ("churn", "growth")]:
        exp = store.create_experiment(name)
        store.set_experiment_tags(exp.experiment_id, {"team": team})

    def names(filter: str | None = None, **kw: object) -> list[str]:
        return [e.name for e in store.search_experiments(filter, **kw)]  # type: ignore[arg-type]

    assert names() == ["churn", "fraud-a", "fraud-b"]
    assert names("name LIKE 'fraud%'") == ["fraud-a", "fraud-b"]
    assert names("tags.team = 'growth'") == ["churn"]
    assert names("tags.team = 'risk' and name != 'fraud-a'") == ["fraud-b"]
    assert names(order_by=["name DESC"]) == ["fraud-b", "fraud-a", "churn"]
    assert names(order_by=["created_at DESC"], max_results=2) == ["churn", "fraud-b"]
    assert names(order_by=["name"], max_results=2, offset=2) == ["fraud-b"]
    churn = store.get_experiment_by_name("churn")
    assert churn is not None
    store.set_experiment_tags(churn.experiment_id, {"team": "growth"})  # changes it last
    assert names(order_by=["updated_at DESC"])[0] == "churn"
    assert churn.updated_at is not None
    assert names(f"updated_at > {churn.updated_at}") == ["churn"]
    with pytest.raises(InvalidFilter, match="metrics"):
        names("metrics.auc > 1")


def test_deleted_experiment_hides_its_runs_until_restored(store: TrackingStore) -> None:
    earlier = _run(store, "fraud", name="deleted-before")
    store.delete_run(earlier)
    kept = _run(store, "fraud", name="kept")
    exp = store.get_experiment_by_name("fraud")
    assert exp is not None
    deleted = store.delete_experiment(exp.experiment_id)
    assert deleted.deleted_at is not None
    assert store.get_experiment(exp.experiment_id).deleted_at is not None  # still found
    assert [e.name for e in store.list_experiments()] == []
    assert [e.name for e in store.list_experiments("deleted")] == ["fraud"]
    assert store.search_runs([exp.experiment_id]) == []
    with pytest.raises(Conflict, match="deleted"):
        store.create_run(RunSpec(exp.experiment_id))
    with pytest.raises(AlreadyExists, match="deleted"):
        store.create_experiment("fraud")  # the name stays taken
    restored = store.restore_experiment(exp.experiment_id)
    assert restored.deleted_at is None
    assert [r.run_id for r in store.search_runs([exp.experiment_id])] == [kept]
    assert [r.run_id for r in store.search_runs([exp.experiment_id], lifecycle="deleted")] == [
        earlier
    ]


def test_deleted_run_is_hidden_and_read_only_until_restored(store: TrackingStore) -> None:
    run_id = _run(store, "fraud", name="r", tags={"a": "1"})
    other = _run(store, "fraud", name="other")
    exp = store.get_experiment_by_name("fraud")
    assert exp is not None
    assert store.delete_run(run_id).deleted_at is not None
    assert store.get_run(run_id).deleted_at is not None
    assert [r.run_id for r in store.search_runs([exp.experiment_id])] == [other]
    assert [r.run_id for r in store.search_runs([exp.experiment_id], lifecycle="deleted")] == [
        run_id
    ]
    assert {r.run_id for r in store.search_runs([exp.experiment_id], lifecycle="all")} == {
        run_id,
        other,
    }
    with pytest.raises(Conflict, match="deleted"):
        store.log_batch(run_id, [Metric("m", 1.0, 0, 1)])
    with pytest.raises(Conflict, match="deleted"):
        store.end_run(run_id, RunStatus.FINISHED)
    with pytest.raises(InvalidArgument):
        store.search_runs([exp.experiment_id], lifecycle="gone")  # type: ignore[arg-type]
    assert store.restore_run(run_id).deleted_at is None
    store.log_batch(run_id, [Metric("m", 1.0, 0, 1)])
    assert store.get_run(run_id).metrics == {"m": 1.0}


def test_resume_run(store: TrackingStore) -> None:
    run_id = _run(store)
    store.end_run(run_id, RunStatus.FAILED, "boom")
    resumed = store.resume_run(run_id)
    assert (resumed.status, resumed.end_time, resumed.error) == (RunStatus.RUNNING, None, None)
    assert store.resume_run(run_id).status is RunStatus.RUNNING  # already running: no-op
    assert store.end_run(run_id, RunStatus.FINISHED).status is RunStatus.FINISHED
    store.delete_run(run_id)
    with pytest.raises(Conflict, match="deleted"):
        store.resume_run(run_id)


def test_rename_run_and_delete_tag(store: TrackingStore) -> None:
    run_id = _run(store, name="first", tags={"a": "1", "b": "2"})
    assert store.rename_run(run_id, "second").name == "second"
    with pytest.raises(InvalidArgument):
        store.rename_run(run_id, "a\nb")
    store.delete_tag(run_id, "a")
    assert store.get_run(run_id).tags == {"b": "2"}
    with pytest.raises(NotFound, match="'a'"):
        store.delete_tag(run_id, "a")
    with pytest.raises(NotFound):
        store.rename_run("0" * 32, "x")


def test_run_inputs(store: TrackingStore) -> None:
    from modelloop.tracking.entities import DatasetInput

    run_id = _run(store)
    train = DatasetInput(
        "cards",
        "abc123",
        "local",
        '{"uri": "/data/cards.parquet"}',
        '{"cols": []}',
        None,
        {"mlflow.data.context": "train"},
    )
    evaluation = DatasetInput("cards-eval", "def456", "http", '{"url": "https://x"}')
    store.log_inputs(run_id, [train, evaluation])
    store.log_inputs(run_id, [DatasetInput("cards", "abc123", "local", "{}", tags={"x": "y"})])
    assert store.run_inputs(run_id) == [train, evaluation]  # logged once, as first logged
    with pytest.raises(InvalidArgument):
        store.log_inputs(run_id, [DatasetInput("", "d", "local", "{}")])
    other = _run(store)
    store.log_inputs(other, [DatasetInput("cards", "zzz999", "local", "{}")])
    exp = store.get_run(run_id).experiment_id

    def found(filter: str) -> set[str]:
        return {r.run_id for r in store.search_runs([exp], filter)}

    assert found("datasets.name = 'cards'") == {run_id, other}
    assert found("datasets.digest = 'abc123'") == {run_id}
    assert found("datasets.context = 'train'") == {run_id}
    assert found("datasets.name = 'cards-eval' and datasets.context IN ('train')") == {run_id}
    assert found("datasets.name LIKE 'cards%' and datasets.digest != 'abc123'") == {
        run_id,
        other,
    }  # the other input of the first run matches
    assert found("datasets.context = 'test'") == set()
    with pytest.raises(NotFound):
        store.log_inputs("0" * 32, [evaluation])
