"""One contract for every DatasetStore: SQLite, PostgreSQL, and the HTTP client to a server.

The same calls give the same versions, frames, checks, lineage and errors (class and message)
on each. What only a server has (its upload route refusing bodies that are no Parquet file) is
checked at the end, on the raw HTTP API.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelloop import audit
from modelloop.artifacts import BlobStore
from modelloop.datasets import Check, Contract, ContractViolation, Expect, ValidationReport, content
from modelloop.datasets.content import content_digest, to_parquet
from modelloop.datasets.entities import Dataset
from modelloop.datasets.profile import compute_profile
from modelloop.datasets.store import DatasetStore, open_dataset_store
from modelloop.errors import InvalidArgument, NotFound
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import RunSpec
from tests.conftest import store_settings
from tests.live_server import live_server


@dataclass
class Env:
    store: DatasetStore
    settings: Settings  # of the database and blob store behind it (the server's, for http)
    url: str | None  # the server's, for http

    def run(self) -> str:
        tracking = open_store(self.settings)
        found = tracking.get_experiment_by_name("datasets")
        exp = found if found is not None else tracking.create_experiment("datasets")
        return tracking.create_run(RunSpec(experiment_id=exp.experiment_id)).run_id

    def events(self) -> list[audit.AuditEvent]:
        found = audit.events(open_database(self.settings.database_url))
        return [e for e in found if e.object_type == "dataset_version"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    backend = "sqlite" if request.param == "http" else request.param
    with store_settings(tmp_path, backend) as settings:
        if request.param != "http":
            yield Env(open_dataset_store(settings), settings, None)
            return
        with live_server(settings) as url:
            remote = open_dataset_store(dataclasses.replace(settings, tracking_uri=url))
            try:
                yield Env(remote, settings, url)
            finally:
                remote.close()


@pytest.fixture
def store(env: Env) -> DatasetStore:
    return env.store


def every_dtype() -> pd.DataFrame:
    """A column of each kind a dataset keeps exactly, with missing values where they exist."""
    return pd.DataFrame(
        {
            "i64": np.arange(5, dtype=np.int64),
            "u8": np.array([0, 1, 2, 254, 255], dtype=np.uint8),
            "f64": [1.5, np.nan, -0.0, np.inf, 1e100],
            "f32": np.array([0.5, 1.25, np.nan, 3.0, -2.0], dtype=np.float32),
            "nullable_int": pd.array([1, None, 3, -(2**62), 5], dtype="Int64"),
            "nullable_int8": pd.array([1, None, -3, 4, 127], dtype="Int8"),
            "nullable_bool": pd.array([True, None, False, True, None], dtype="boolean"),
            "flag": [True, False, True, True, False],
            "text": ["a", None, "ç", "", "e"],
            "legacy": pd.Series(["x", None, "z", "x", "é"], dtype=object),
            "string": pd.array(["s", None, "t", "u", "v"], dtype="string"),
            "category": pd.Categorical(
                ["b", "a", None, "b", "a"], categories=["b", "a", "unused"], ordered=True
            ),
            "int_category": pd.Categorical([3, 1, 3, None, 1], categories=[1, 2, 3]),
            "when": pd.to_datetime(
                [
                    "2024-01-01 00:00",
                    None,
                    "2024-02-29 12:30",
                    "1970-01-01 00:00",
                    "2038-01-19 03:14",
                ]
            ),
            "when_tz": pd.to_datetime(
                [
                    "2024-01-01 00:00",
                    "2024-06-01 08:00",
                    None,
                    "2024-12-31 23:59",
                    "2025-03-30 01:30",
                ]
            ).tz_localize("Europe/Paris"),
            "elapsed": pd.to_timedelta([1, 2, None, 4, 5], unit="s"),
        }
    )


# -- logging and reading back ----------------------------------------------------------------


def test_a_frame_round_trips_with_every_dtype(store: DatasetStore) -> None:
    original = every_dtype()
    version = store.log_version("train", original, actor="alice", description="first")
    assert (version.name, version.version, version.ref) == ("train", 1, "train@1")
    assert (version.num_rows, version.num_columns) == (5, original.shape[1])
    assert version.digest == content_digest(original)
    assert version.schema.columns == {n: str(d) for n, d in original.dtypes.items()}
    assert version.schema.categories["category"] == ["b", "a", "unused"]
    assert version.profile == compute_profile(original)
    assert (version.created_by, version.description, version.run_id) == ("alice", "first", None)
    loaded = store.load(version)
    pd.testing.assert_frame_equal(loaded, original, check_exact=True)
    assert loaded.dtypes.to_dict() == original.dtypes.to_dict()
    assert loaded["category"].cat.categories.tolist() == ["b", "a", "unused"]
    assert loaded["category"].cat.ordered
    assert loaded["legacy"].tolist() == ["x", None, "z", "x", "é"]  # object, None kept
    assert content_digest(loaded) == version.digest
    assert store.get_version("train", 1) == version
    assert store.get_version("train") == version


def test_the_same_content_is_the_same_version(store: DatasetStore) -> None:
    first = store.log_version("train", every_dtype(), actor="alice")
    rebuilt = every_dtype().set_axis(range(100, 105))  # the index is not content
    again = store.log_version("train", rebuilt, actor="bob")
    assert again == first
    assert again.created_by == "alice"
    assert [v.version for v in store.list_versions("train")] == [1]


def test_new_content_is_the_next_version(store: DatasetStore) -> None:
    base = every_dtype()
    changed = base.copy()
    changed.loc[0, "f64"] = 2.5
    retyped = base.astype({"i64": "float64"})
    reordered = base.iloc[::-1].reset_index(drop=True)
    versions = [store.log_version("train", f, actor="a") for f in (base, changed, retyped)]
    versions.append(store.log_version("train", reordered, actor="a"))
    assert [v.version for v in versions] == [1, 2, 3, 4]
    assert len({v.digest for v in versions}) == 4
    assert store.list_versions("train") == versions
    assert store.get_version("train") == versions[-1]
    assert store.get_version("train", 2) == versions[1]
    pd.testing.assert_frame_equal(store.load(versions[2]), retyped, check_exact=True)


def test_datasets_are_listed_with_their_latest_versions(store: DatasetStore) -> None:
    assert store.list_datasets() == []
    assert store.latest_versions() == []
    small = pd.DataFrame({"x": [1, 2, 3]})
    store.log_version("train", small, actor="a", description="the training data")
    newest = store.log_version("train", small.iloc[:2], actor="a", description="fewer")
    other = store.log_version("holdout", small, actor="a")
    listed = store.list_datasets()
    assert [d.name for d in listed] == ["holdout", "train"]
    train = listed[1]
    assert isinstance(train, Dataset)
    assert (train.description, train.latest_version, train.num_versions) == (
        "the training data",  # the dataset's: its first version's
        2,
        2,
    )
    assert train.created_at > 0
    assert store.latest_versions() == [other, newest]


def test_descriptions_are_kept_per_version(store: DatasetStore) -> None:
    data = pd.DataFrame({"x": [1.0, 2.0]})
    bare = store.log_version("d", data, actor="a")
    assert bare.description is None
    described = store.log_version("d", data, actor="a", description="now described")
    assert (described.version, described.description) == (1, "now described")
    kept = store.log_version("d", data, actor="a", description="another")
    assert kept.description == "now described"  # a description is given once
    with pytest.raises(InvalidArgument, match="description is 8001 characters long"):
        store.log_version("d", data, actor="a", description="x" * 8001)
    with pytest.raises(InvalidArgument, match="description contains a NUL"):
        store.log_version("d", data, actor="a", description="a\x00b")


def test_head_reads_the_first_rows_as_logged(store: DatasetStore) -> None:
    original = every_dtype()
    version = store.log_version("train", original, actor="a")
    pd.testing.assert_frame_equal(store.head(version, 2), original.head(2), check_exact=True)
    empty = store.head(version, 0)
    assert list(empty.columns) == list(original.columns)
    assert empty.dtypes.to_dict() == original.dtypes.to_dict()
    assert len(empty) == 0
    pd.testing.assert_frame_equal(store.head(version, 1000), original, check_exact=True)
    with pytest.raises(InvalidArgument, match="rows must be a non-negative integer, got -1"):
        store.head(version, -1)


def test_an_empty_frame_round_trips(store: DatasetStore) -> None:
    empty = pd.DataFrame({"a": pd.Series([], dtype="float64"), "b": pd.Series([], dtype="str")})
    version = store.log_version("empty", empty, actor="a")
    assert version.num_rows == 0
    pd.testing.assert_frame_equal(store.load(version), empty)


def test_the_stored_file_size_and_a_missing_file(env: Env, store: DatasetStore) -> None:
    version = store.log_version("train", every_dtype(), actor="a")
    blobs = BlobStore(env.settings.artifact_uri)
    size = store.data_size(version)
    assert size == blobs.size(version.artifact_digest) > 100
    local = blobs.local_path(version.artifact_digest)
    assert local is not None
    local.unlink()
    assert store.data_size(version) is None
    with pytest.raises(NotFound, match=f"no blob {version.artifact_digest}"):
        store.load(version)


# -- lookups -------------------------------------------------------------------------------------


def test_versions_are_found_by_content_digest(store: DatasetStore) -> None:
    data = pd.DataFrame({"x": [1, 2, 3]})
    first = store.log_version("train", data, actor="a")
    second = store.log_version("train", data.iloc[:1], actor="a")
    copy = store.log_version("copy", data, actor="a")  # the same content in another dataset
    assert first.digest == copy.digest
    found = store.versions_with_digests([first.digest, second.digest, "0" * 64, "x" * 100])
    assert found == [copy, first, second]  # by name, then version
    assert store.versions_with_digests([]) == []
    assert store.versions_with_digests(["nothing"]) == []
    many = [f"{i:064x}" for i in range(250)] + [second.digest]  # more than one request holds
    assert store.versions_with_digests(many) == [second]


# -- contract checks -----------------------------------------------------------------------------

CONTRACT = Contract(
    columns={
        "amount": Expect(dtype="float", min=0, nullable=False),
        "merchant": Expect(allowed={"travel", "grocery"}),
    },
    unique=["tx_id"],
    rows=(2, None),
    checks=[Check("small", lambda f: f["amount"] < 100)],
)


def transactions(amounts: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": np.arange(len(amounts), dtype=np.int64),
            "amount": amounts,
            "merchant": pd.Categorical(["grocery", "travel"] * (len(amounts) // 2)),
        }
    )


def test_logging_with_a_contract_keeps_its_passing_report(store: DatasetStore) -> None:
    version = store.log_version("tx", transactions([1.0, 2.0]), actor="alice", contract=CONTRACT)
    [kept] = store.validations(version)
    assert (kept.ref, kept.ok, kept.created_by, kept.checks) == ("tx@1", True, "alice", ["small"])
    assert kept.report == ValidationReport(2, [])
    assert kept.contract == CONTRACT.to_dict()
    assert store.latest_validations() == {"tx": kept}


def test_a_frame_that_breaks_its_contract_leaves_nothing(store: DatasetStore) -> None:
    with pytest.raises(ContractViolation, match="Contract violated: 2 rule"):
        store.log_version("tx", transactions([-1.0, 500.0]), actor="a", contract=CONTRACT)
    assert store.list_datasets() == []
    with pytest.raises(NotFound, match="No dataset 'tx': no dataset has been logged yet"):
        store.get_version("tx")


def test_checks_of_a_stored_version_are_kept_newest_first(store: DatasetStore) -> None:
    data = transactions([-1.0, 500.0])
    version = store.log_version("tx", data, actor="alice")
    failed = CONTRACT.validate(data)
    assert not failed.ok
    first = store.add_validation(version, CONTRACT, failed, actor="bob")
    assert (first.ok, first.created_by, first.ref) == (False, "bob", "tx@1")
    assert first.report == ValidationReport.from_dict(failed.to_dict())
    assert {v.rule for v in first.report.violations} == {"min", "check"}
    lenient = Contract(columns={"amount": Expect(dtype="float")})
    second = store.add_validation(version, lenient, lenient.validate(data), actor="carol")
    assert (second.ok, second.checks) == (True, [])
    assert second.validation_id > first.validation_id
    assert store.validations(version) == [second, first]
    assert store.validations(version, limit=1) == [second]
    assert store.latest_validations() == {"tx": second}
    newer = store.log_version("tx", transactions([1.0, 2.0]), actor="alice")
    assert store.validations(newer) == []
    assert store.latest_validations() == {}  # an older version's check does not speak for it
    with pytest.raises(InvalidArgument, match="limit must be a positive integer, got 0"):
        store.validations(version, limit=0)


def test_a_check_of_a_version_that_does_not_exist(store: DatasetStore) -> None:
    version = store.log_version("tx", transactions([1.0, 2.0]), actor="a")
    ghost = dataclasses.replace(version, version=7)
    report = CONTRACT.validate(transactions([1.0, 2.0]))
    with pytest.raises(NotFound, match="No version 7 of dataset 'tx'"):
        store.add_validation(ghost, CONTRACT, report, actor="a")


# -- lineage and audit ---------------------------------------------------------------------------


def test_the_runs_that_logged_and_read_a_version(env: Env, store: DatasetStore) -> None:
    logger, again, reader = env.run(), env.run(), env.run()
    data = pd.DataFrame({"x": [1.0, 2.0]})
    version = store.log_version("train", data, actor="a", run_id=logger)
    assert version.run_id == logger
    assert store.log_version("train", data, actor="a", run_id=again).run_id == logger
    store.record_read(version, reader)
    store.record_read(version, reader)  # read twice: one reader
    runs = store.version_runs(version)
    assert (runs.logged_by, runs.read_by) == ([logger, again], [reader])
    assert store.version_runs(version, limit=1).logged_by == [logger]
    missing = "f" * 32
    with pytest.raises(NotFound, match=f"Run '{missing}' does not exist"):
        store.record_read(version, missing)
    with pytest.raises(NotFound, match=f"Run '{missing}' does not exist"):
        store.log_version("other", data, actor="a", run_id=missing)
    assert [d.name for d in store.list_datasets()] == ["train"]  # nothing was stored
    with pytest.raises(InvalidArgument, match="run id"):
        store.log_version("train", data, actor="a", run_id="not-a-run")


def test_changes_are_audited(env: Env, store: DatasetStore) -> None:
    data = transactions([1.0, 2.0])
    version = store.log_version("tx", data, actor="alice", contract=CONTRACT)
    store.log_version("tx", data, actor="bob")  # the same content: no change
    store.log_version("tx", data, actor="bob", description="described")
    events = env.events()
    assert [(e.action, e.actor, e.object_id) for e in events] == [
        ("dataset_version.log", "alice", "tx@1"),
        ("dataset_version.validate", "alice", "tx@1"),
        ("dataset_version.describe", "bob", "tx@1"),
    ]
    assert events[0].after is not None
    assert events[0].after["digest"] == version.digest
    assert events[1].after == {
        "validation_id": store.validations(version)[0].validation_id,
        "ok": True,
        "violations": 0,
        "checks": ["small"],
    }
    assert audit.verify(open_database(env.settings.database_url)).ok


# -- refusals ------------------------------------------------------------------------------------


def test_unknown_datasets_and_versions_are_not_found(store: DatasetStore) -> None:
    with pytest.raises(NotFound, match="No dataset 'nope': no dataset has been logged yet"):
        store.get_version("nope")
    store.log_version("train", pd.DataFrame({"x": [1]}), actor="a")
    store.log_version("holdout", pd.DataFrame({"x": [2]}), actor="a")
    with pytest.raises(NotFound, match=r"^No dataset 'nope': the datasets are holdout, train$"):
        store.get_version("nope", 1)
    with pytest.raises(NotFound, match=r"^No dataset 'nope': the datasets are holdout, train$"):
        store.list_versions("nope")
    with pytest.raises(NotFound, match="No version 9 of dataset 'train': it has versions 1 to 1"):
        store.get_version("train", 9)


@pytest.mark.parametrize("name", ["", "a/b", "a@b", "-x", "x" * 257, "a b", "..", "é", "a\n"])
def test_dataset_names_are_checked(store: DatasetStore, name: str) -> None:
    message = "Invalid dataset name"
    with pytest.raises(InvalidArgument, match=message):
        store.log_version(name, pd.DataFrame({"x": [1]}), actor="a")
    with pytest.raises(InvalidArgument, match=message):
        store.get_version(name)
    with pytest.raises(InvalidArgument, match=message):
        store.list_versions(name)


@pytest.mark.parametrize("version", [0, -1, 2**31, True])
def test_version_numbers_are_checked(store: DatasetStore, version: int) -> None:
    with pytest.raises(InvalidArgument, match="Invalid dataset version"):
        store.get_version("train", version)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([1, 2], "Cannot log a list as a dataset: need a DataFrame"),
        (pd.DataFrame({"x": [[1], [2]]}), "Column 'x' holds Python objects"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "Duplicate column names"),
        (pd.DataFrame({0: [1]}), "Dataset column names must be strings"),
        (pd.DataFrame({"h": np.array([1], dtype=np.float16)}), "dtype float16"),
    ],
)
def test_frames_that_cannot_be_stored_are_refused(
    store: DatasetStore, bad: object, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        store.log_version("bad", bad, actor="a")  # type: ignore[arg-type]
    assert store.list_datasets() == []


# -- the upload route: what only a server receives ------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with store_settings(tmp_path, "sqlite") as settings, live_server(settings) as url:
        yield url


def _post(
    server: str, body: bytes, media: str = "application/vnd.apache.parquet", **query: str
) -> httpx.Response:
    return httpx.post(
        f"{server}/api/v1/datasets/train/versions",
        content=body,
        headers={"Content-Type": media},
        params=query,
        timeout=30,
    )


def _refused(response: httpx.Response, status: int, field: str, text: str) -> None:
    assert response.status_code == status, response.text
    payload = response.json()
    assert text in payload["message"], payload
    if field:
        assert [d["field"] for d in payload["details"]] == [field], payload


def _nested() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [[1, 2], [3]]}), buffer)
    return buffer.getvalue()


def test_bodies_that_are_no_parquet_file_are_refused(server: str) -> None:
    good = to_parquet(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    middle = len(good) // 2
    corrupt = (
        good[:middle] + bytes(b ^ 0xFF for b in good[middle : middle + 64]) + good[middle + 64 :]
    )
    _refused(_post(server, b""), 422, "body", "The body is empty")
    _refused(_post(server, b"x,y\n1,2\n"), 422, "body", "is not a Parquet file")
    _refused(_post(server, b"PAR1" + b"\x00" * 20 + b"PAR1"), 422, "body", "cannot be read")
    _refused(_post(server, good[:-12] + b"PAR1"), 422, "body", "cannot be read")
    _refused(_post(server, corrupt), 422, "body", "cannot be read")
    _refused(_post(server, _nested()), 422, "body", "Column 'x' holds Python objects")
    _refused(_post(server, good, "application/json"), 415, "", "Content-Type")
    _refused(_post(server, good, "text/csv"), 415, "", "not text/csv")
    _refused(
        _post(server, good, digest="0" * 64), 422, "query.digest", "The body holds the content"
    )
    _refused(_post(server, good, run_id="nope"), 422, "query.run_id", "")
    with httpx.Client(base_url=f"{server}/api/v1") as client:
        assert client.get("/datasets").json() == {"datasets": []}  # nothing was stored


def test_a_decompression_bomb_is_refused_before_it_is_decoded(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few KB that declare far more decoded bytes than 100x their size (past the floor, here
    lowered to 1 MiB so the test stays small) are refused from the footer: 413, nothing stored."""
    monkeypatch.setattr(content, "EXPANSION_FLOOR", 1024 * 1024)
    buffer = io.BytesIO()
    zeros = pa.table({"x": np.zeros(3_000_000, dtype=np.int64)})
    pq.write_table(zeros, buffer, compression="zstd", use_dictionary=False)
    bomb = buffer.getvalue()
    assert len(bomb) * 100 < 24_000_000
    _refused(_post(server, bomb), 413, "", "declares 24,0")
    with httpx.Client(base_url=f"{server}/api/v1") as client:
        assert client.get("/datasets").json() == {"datasets": []}
    honest = to_parquet(pd.DataFrame({"x": np.random.default_rng(0).random(200_000)}))
    assert _post(server, honest).status_code == 201  # 1.6 MB decoded, ~2x its size


def test_any_parquet_file_is_a_version_and_the_same_content_the_same_one(server: str) -> None:
    written_elsewhere = io.BytesIO()
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_parquet(written_elsewhere, compression="snappy")
    created = _post(server, written_elsewhere.getvalue(), "application/octet-stream")
    assert created.status_code == 201, created.text
    ours = to_parquet(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    digest = content_digest(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    again = _post(server, ours, digest=digest)
    assert again.status_code == 200, again.text  # not created: the version that holds it
    assert again.json() == created.json()
    assert (created.json()["version"], created.json()["digest"]) == (1, digest)
    data = httpx.get(f"{server}/api/v1/datasets/train/versions/1/data", timeout=30)
    assert data.headers["content-type"] == "application/vnd.apache.parquet"
    pd.testing.assert_frame_equal(
        pd.read_parquet(io.BytesIO(data.content)), pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    )


def test_uploads_are_bounded_by_the_upload_limit_not_the_json_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x": rng.random(4_500_000)})  # random floats: Parquet keeps ~36 MB
    body = to_parquet(frame)
    assert len(body) > 33 * 1024 * 1024  # past the 32 MiB a JSON body may be
    with store_settings(tmp_path, "sqlite") as settings:
        with live_server(settings) as url:
            created = _post(url, body, digest=content_digest(frame))
            assert created.status_code == 201, created.text[:300]
            assert created.json()["num_rows"] == 4_500_000
        tight = dataclasses.replace(settings, max_upload_bytes=1024 * 1024)
        with live_server(tight) as url:
            refused = _post(url, body)
            assert refused.status_code == 413, refused.text[:300]
            assert refused.json()["error_code"] == "PAYLOAD_TOO_LARGE"


def test_a_server_with_users_records_the_token_s_user_and_checks_roles(tmp_path: Path) -> None:
    from modelloop.auth import Role, Users
    from modelloop.datasets.http import HttpDatasetStore
    from modelloop.errors import Forbidden

    with store_settings(tmp_path, "sqlite") as settings:
        users = Users(open_database(settings.database_url))
        _, editor_token = users.add("eddie", Role.editor, actor="admin")
        _, viewer_token = users.add("vera", Role.viewer, actor="admin")
        reader = Env(open_dataset_store(settings), settings, None).run()
        with live_server(settings) as url:
            editor = HttpDatasetStore(url, token=editor_token)
            viewer = HttpDatasetStore(url, token=viewer_token)
            try:
                data = transactions([1.0, 2.0])
                version = editor.log_version("tx", data, actor="mallory", contract=CONTRACT)
                assert version.created_by == "eddie"  # the token says who, not the caller
                assert editor.validations(version)[0].created_by == "eddie"
                assert viewer.list_datasets()[0].name == "tx"
                pd.testing.assert_frame_equal(viewer.load(version), data)
                with pytest.raises(Forbidden, match="'vera' has the viewer role"):
                    viewer.log_version("tx", transactions([3.0, 4.0]), actor="vera")
                with pytest.raises(Forbidden, match="'vera' has the viewer role"):
                    viewer.add_validation(version, CONTRACT, CONTRACT.validate(data), actor="v")
                with pytest.raises(Forbidden, match="'vera' has the viewer role"):
                    viewer.record_read(version, reader)
                assert [v.version for v in viewer.list_versions("tx")] == [1]
            finally:
                editor.close()
                viewer.close()
        events = Env(editor, settings, None).events()
        assert {e.actor for e in events} == {"eddie"}
