"""The write discipline's opt-out of waiting: ``first_write_without_waiting`` makes the first
write refuse (nothing written) while another writer holds the lock, and later writes wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from modelloop.store import Database, WouldWait, first_write_without_waiting
from tests.conftest import store_settings
from tests.live_server import live_server


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with database.write() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
    try:
        yield database
    finally:
        database.dispose()


def _count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())


@contextmanager
def _holding(db: Database, seconds: float) -> Iterator[None]:
    """Another thread holds the write lock for ``seconds`` from entry."""
    held = threading.Event()

    def hold() -> None:
        with db.write():
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    try:
        yield
    finally:
        thread.join()


def test_the_first_write_refuses_to_wait_and_writes_nothing(db: Database) -> None:
    with _holding(db, 0.5):
        with pytest.raises(WouldWait), first_write_without_waiting(), db.write() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _count(db) == 0
    with first_write_without_waiting(), db.write() as conn:  # free: it writes
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert _count(db) == 1


def test_only_the_first_write_of_the_block_refuses(db: Database) -> None:
    with first_write_without_waiting():
        with db.write() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with _holding(db, 0.3):
            started = time.monotonic()
            with db.write() as conn:  # the second write waits for the holder
                conn.execute(text("INSERT INTO t VALUES (2)"))
            assert time.monotonic() - started > 0.2
    assert _count(db) == 2
    with db.write() as conn:  # outside the block, writes wait as always
        conn.execute(text("INSERT INTO t VALUES (3)"))
    assert _count(db) == 3


@contextmanager
def _held_until_released(db: Database) -> Iterator[threading.Event]:
    """Another thread holds the write lock until the yielded event is set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write():
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    try:
        yield release
    finally:
        release.set()
        thread.join()


def test_a_log_metric_waiting_for_the_lock_leaves_the_server_answering(
    tmp_path: Path,
) -> None:
    """The MLflow edge writes a metric on the event loop only when it need not wait; while
    another writer holds the lock the request waits in a thread, and the server keeps
    answering others meanwhile: the lock is released only after another request is answered,
    which could never happen if the waiting write held the event loop."""
    from modelloop.store import open_database

    with store_settings(tmp_path, "sqlite") as settings, live_server(settings) as url:
        api = f"{url}/api/2.0/mlflow"
        experiment = httpx.post(f"{api}/experiments/create", json={"name": "w"}).json()
        run = httpx.post(f"{api}/runs/create", json=experiment).json()["run"]["info"]["run_id"]
        point = {"run_id": run, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
        db = open_database(settings.database_url)  # the server's own Database object
        answers: list[httpx.Response] = []
        with _held_until_released(db) as release:
            writer = threading.Thread(
                target=lambda: answers.append(
                    httpx.post(f"{api}/runs/log-metric", json=point, timeout=60)
                )
            )
            writer.start()
            time.sleep(0.5)  # for the request to reach the server and wait for the lock
            other = httpx.get(f"{api}/runs/get", params={"run_id": run}, timeout=10)
            assert other.status_code == 200
            assert not answers  # the metric is still waiting for the lock
            release.set()
            writer.join()
        assert answers[0].status_code == 200
        history = httpx.get(
            f"{api}/metrics/get-history", params={"run_id": run, "metric_key": "loss"}
        )
        assert [m["value"] for m in history.json()["metrics"]] == [0.5]
