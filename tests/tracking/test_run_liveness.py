"""Runs whose process died are found and marked KILLED; live and ended runs never are.

Real processes: a child starts a run with ``ml.start_run`` and is killed with SIGKILL. Then the
sweep (the function, the CLI, a server through HTTP, and ``modelloop server`` by itself) must
mark it KILLED, by the pid on this host or, seen from another host, by its stale heartbeat.
Heartbeats are made fast (``MODELLOOP_HEARTBEAT_SECONDS=0.2``) so no test waits long.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

import modelloop as ml
from modelloop.clock import now_ms
from modelloop.errors import Conflict, InvalidArgument
from modelloop.settings import Settings, load_settings
from modelloop.tracking.client import Client
from modelloop.tracking.entities import RunStatus
from modelloop.tracking.liveness import (
    ENV_PROCESS,
    TAG_HEARTBEAT,
    Process,
    process_gone,
    this_process,
)
from modelloop.tracking.store import TrackingStore
from modelloop.tracking.sweep import NO_HEARTBEAT, PROCESS_GONE, TAG_SWEPT, UNTRACKED, sweep_runs
from tests.cli_helpers import invoke
from tests.live_server import live_server

FAST = "0.2"  # seconds between heartbeats: a run is stale after 5 of them, 1 s
ELSEWHERE = Process(host="another-host.example", pid=1)  # a sweeper that cannot check our pids
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

OWNER = """
import sys, time, modelloop as ml
run = ml.start_run(experiment="liveness", name=sys.argv[1])
print(run.run_id, flush=True)
time.sleep(600)
"""
ENDS = """
import modelloop as ml
with ml.start_run(experiment="liveness", name="finished") as run:
    print(run.run_id, flush=True)
try:
    with ml.start_run(experiment="liveness", name="failed") as failed:
        print(failed.run_id, flush=True)
        raise ValueError("bad data")
except ValueError:
    pass
"""


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELLOOP_")}
    env["MODELLOOP_HOME"] = str(settings.home)
    env["MODELLOOP_DATABASE_URL"] = settings.database_url
    return {**env, **extra}


@contextlib.contextmanager
def owner(env: dict[str, str], name: str = "owned") -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A child process that started a run and keeps it open; killed (and reaped) afterwards."""
    child = subprocess.Popen(
        [sys.executable, "-c", OWNER, name],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        assert run_id, child.communicate(timeout=30)[1]
        yield child, run_id
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


def wait_for(what: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    client = Client(settings=settings)
    yield client
    client.close()


def test_a_run_killed_with_sigkill_is_marked_killed_at_once(
    settings: Settings, client: Client
) -> None:
    with owner(_env(settings)) as (child, run_id):
        running = client.get_run(run_id)
        assert running.status is RunStatus.RUNNING
        recorded = running.environment[ENV_PROCESS]
        assert (recorded["pid"], recorded["host"]) == (child.pid, socket.gethostname())
        assert recorded["heartbeat_seconds"] == 30.0
        assert sweep_runs(client.store).killed == ()  # alive: nothing to do
        kill(child)
        assert client.get_run(run_id).status is RunStatus.RUNNING  # nobody ended it

        sweep = sweep_runs(client.store)  # no heartbeat is due yet: the pid says it

    assert [(r.run_id, r.cause) for r in sweep.killed] == [(run_id, PROCESS_GONE)]
    killed = client.get_run(run_id)
    assert killed.status is RunStatus.KILLED
    assert killed.error is not None
    assert f"process {child.pid} on host {socket.gethostname()} is gone" in killed.error
    assert killed.tags[TAG_SWEPT] == PROCESS_GONE
    assert killed.end_time == running.start_time  # its last sign of life: it never beat
    again = sweep_runs(client.store)
    assert (again.killed, again.alive, again.untracked) == ((), 0, 0)
    assert client.get_run(run_id).end_time == killed.end_time


@LINUX
def test_a_killed_process_not_yet_reaped_is_gone(sqlite_settings: Settings) -> None:
    client = Client(settings=sqlite_settings)
    try:
        with owner(_env(sqlite_settings)) as (child, run_id):
            child.send_signal(signal.SIGKILL)
            wait_for(lambda: _state(child.pid) == "Z")  # dead, but its parent has not waited
            sweep = sweep_runs(client.store)
            assert [r.run_id for r in sweep.killed] == [run_id]
            assert "zombie" in (client.get_run(run_id).error or "")
    finally:
        client.close()


def _state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()[0]


def test_a_silent_run_is_marked_killed_from_another_host_after_missed_heartbeats(
    settings: Settings, client: Client
) -> None:
    with owner(_env(settings, MODELLOOP_HEARTBEAT_SECONDS=FAST)) as (child, run_id):
        beats = []
        wait_for(lambda: _beat(client, run_id) is not None)
        beats.append(_beat(client, run_id))
        wait_for(lambda: _beat(client, run_id) != beats[0])  # it beats again and again
        assert client.get_run(run_id).environment[ENV_PROCESS]["heartbeat_seconds"] == 0.2
        kill(child)
        last = _beat(client, run_id)
        assert last is not None
        # Another host cannot look at our pids: while the heartbeat is fresh, the run may live.
        assert sweep_runs(client.store, here=ELSEWHERE).alive == 1
        wait_for(lambda: now_ms() - last > 1_100)  # 5 missed beats and a margin
        # A server that just started does not count the silence from before it started.
        assert sweep_runs(client.store, here=ELSEWHERE, quiet_before=now_ms()).killed == ()

        sweep = sweep_runs(client.store, here=ELSEWHERE)

    assert [(r.run_id, r.cause) for r in sweep.killed] == [(run_id, NO_HEARTBEAT)]
    killed = client.get_run(run_id)
    assert killed.status is RunStatus.KILLED
    assert (killed.error or "").startswith("no heartbeat since ")
    assert killed.end_time == last  # dated at its last heartbeat
    assert killed.tags[TAG_SWEPT] == NO_HEARTBEAT


def _beat(client: Client, run_id: str) -> int | None:
    value = client.get_run(run_id).tags.get(TAG_HEARTBEAT)
    return None if value is None else int(value)


def test_a_live_run_is_never_swept(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with owner(_env(load_settings())) as (_, elsewhere):  # alive in another process
        assert sweep_runs(ml.get_client().store).alive == 1
        monkeypatch.setenv("MODELLOOP_HEARTBEAT_SECONDS", FAST)
        with ml.start_run(experiment="live") as run:
            time.sleep(1.5)  # longer than 5 beats: only its heartbeat keeps it fresh
            for here in (None, ELSEWHERE):
                sweep = sweep_runs(ml.get_client().store, here=here)
                assert (sweep.killed, sweep.alive) == ((), 2)
            short = sweep_runs(ml.get_client().store, here=ELSEWHERE, stale_after=timedelta(0))
            assert short.killed == ()  # never shorter than 2 beats, whatever is asked
        assert ml.get_client().get_run(elsewhere).status is RunStatus.RUNNING
    assert run.info.status is RunStatus.FINISHED
    ended_at = run.info.tags[TAG_HEARTBEAT]
    time.sleep(0.6)
    assert run.info.tags[TAG_HEARTBEAT] == ended_at  # an ended run beats no more


def test_ended_runs_are_left_as_they_ended(settings: Settings, client: Client) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ENDS], env=_env(settings), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    finished, failed = done.stdout.split()
    before = [client.get_run(finished), client.get_run(failed)]
    assert [r.status for r in before] == [RunStatus.FINISHED, RunStatus.FAILED]

    sweep = sweep_runs(client.store, untracked_older_than=timedelta(milliseconds=1))

    assert sweep.killed == ()
    assert [client.get_run(finished), client.get_run(failed)] == before


def test_runs_that_record_no_process_are_swept_only_when_asked(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ml.get_client()
    legacy = client.create_run("old")  # like a run from before heartbeats: no process recorded
    monkeypatch.setenv("MODELLOOP_HEARTBEAT_SECONDS", "0")  # heartbeats off: nothing recorded
    untracked = ml.start_run(experiment="old")
    assert ENV_PROCESS not in untracked.info.environment
    time.sleep(0.01)

    sweep = sweep_runs(client.store, here=ELSEWHERE, stale_after=timedelta(seconds=1))
    assert (sweep.killed, sweep.untracked) == ((), 2)
    day = sweep_runs(client.store, untracked_older_than=timedelta(days=1))
    assert (day.killed, day.untracked) == ((), 2)

    swept = sweep_runs(client.store, untracked_older_than=timedelta(milliseconds=5))

    assert {(r.run_id, r.cause) for r in swept.killed} == {
        (legacy.run_id, UNTRACKED),
        (untracked.run_id, UNTRACKED),
    }
    assert client.get_run(legacy.run_id).status is RunStatus.KILLED
    with pytest.raises(Conflict, match="already ended as KILLED"):
        untracked.end()


def test_dry_run_changes_nothing(sqlite_settings: Settings) -> None:
    client = Client(settings=sqlite_settings)
    try:
        with owner(_env(sqlite_settings)) as (child, run_id):
            kill(child)
            dry = sweep_runs(client.store, dry_run=True)
            assert [r.run_id for r in dry.killed] == [run_id]
            assert client.get_run(run_id).status is RunStatus.RUNNING
    finally:
        client.close()


@LINUX
def test_a_reused_pid_is_told_apart_by_its_start_time() -> None:
    here = this_process()
    assert here.start is not None
    assert here.namespace is not None
    assert process_gone(here, here) is None
    reused = Process(here.host, here.pid, start="1", namespace=here.namespace)
    assert "now belongs to another process" in (process_gone(reused, here) or "")
    # Another pid namespace (a container on this host) or host: the pid means nothing here.
    assert process_gone(Process(here.host, 2**22 + 1, None, "other:[1]"), here) is None
    assert process_gone(Process("elsewhere", 2**22 + 1, None, here.namespace), here) is None
    assert "is gone" in (
        process_gone(Process(here.host, 2**22 + 1, None, here.namespace), here) or ""
    )


def test_a_run_killed_while_logging_through_a_server_is_swept_by_the_cli_host(
    sqlite_settings: Settings,
) -> None:
    with live_server(sqlite_settings) as url:
        env = _env(sqlite_settings, MODELLOOP_TRACKING_URI=url)
        client = Client(tracking_uri=url, settings=sqlite_settings)
        try:
            with owner(env) as (child, run_id):
                kill(child)
                sweep = sweep_runs(client.store)  # the HTTP store: the sweeper runs here
            assert [r.run_id for r in sweep.killed] == [run_id]
            killed = client.get_run(run_id)
            assert killed.status is RunStatus.KILLED
            assert killed.tags[TAG_SWEPT] == PROCESS_GONE
            assert killed.end_time is not None
            assert killed.end_time >= killed.start_time
        finally:
            client.close()


def test_modelloop_server_sweeps_at_start_and_then_periodically(sqlite_settings: Settings) -> None:
    env = _env(sqlite_settings, MODELLOOP_HEARTBEAT_SECONDS=FAST)
    client = Client(settings=sqlite_settings)
    with owner(env, "before") as (child, before):
        kill(child)  # dies while no server runs
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelloop",
            "server",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url, server), timeout=60)
        wait_for(lambda: client.get_run(before).status is RunStatus.KILLED)
        with owner({**env, "MODELLOOP_TRACKING_URI": url}, "during") as (child, during):
            wait_for(lambda: _beat(client, during) is not None)
            assert client.get_run(during).status is RunStatus.RUNNING
            kill(child)
            wait_for(lambda: client.get_run(during).status is RunStatus.KILLED)
        assert client.get_run(during).tags[TAG_SWEPT] == PROCESS_GONE
    finally:
        client.close()
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    assert "marked KILLED" in err  # the server says what it did


class _Between:
    """The real store, with ``between`` called after the first of the sweep's two writes."""

    def __init__(self, store: TrackingStore, between: Callable[[], object]) -> None:
        self._store, self._between, self._writes = store, between, 0

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name not in ("end_run", "log_batch"):
            return found

        def write(*args: Any, **kwargs: Any) -> Any:
            self._writes += 1
            if self._writes == 2:
                self._between()
            return found(*args, **kwargs)

        return write


def test_a_swept_run_is_never_killed_without_its_tag(client: Client) -> None:
    """The sweep tags a run, then ends it: a reader that sees it KILLED sees why (the server
    test above read the status, then the tag), a sweep cut off between the two writes leaves it
    RUNNING for the next sweep to mark (not KILLED for good, untagged), and a run that ended
    by itself in between keeps no tag."""
    every = timedelta(0)
    cut = client.create_run("cut")  # untracked: swept when asked, no process to start
    time.sleep(0.005)

    def die() -> None:
        raise ConnectionError("the sweeper died here")

    with pytest.raises(ConnectionError):
        sweep_runs(cast(TrackingStore, _Between(client.store, die)), untracked_older_than=every)
    assert client.get_run(cut.run_id).status is RunStatus.RUNNING
    assert [r.run_id for r in sweep_runs(client.store, untracked_older_than=every).killed] == [
        cut.run_id
    ]
    swept = client.get_run(cut.run_id)
    assert (swept.status, swept.tags[TAG_SWEPT]) == (RunStatus.KILLED, UNTRACKED)

    ends = client.create_run("ends")
    time.sleep(0.005)

    def finish() -> None:
        client.store.end_run(ends.run_id, RunStatus.FINISHED)

    sweep = sweep_runs(
        cast(TrackingStore, _Between(client.store, finish)), untracked_older_than=every
    )
    assert sweep.killed == ()
    ended = client.get_run(ends.run_id)
    assert ended.status is RunStatus.FINISHED
    assert TAG_SWEPT not in ended.tags


def _healthy(url: str, server: subprocess.Popen[str]) -> bool:
    assert server.poll() is None, server.communicate()[1]
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_cli_says_what_it_would_do_and_does_it(home: Path) -> None:
    settings = load_settings()
    with owner(_env(settings), "crashed") as (child, run_id):
        kill(child)
    with ml.start_run(experiment="liveness", name="finished"):
        pass
    ml.get_client().create_run("liveness", name="legacy")

    dry = invoke("runs", "sweep", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Would mark 1 run KILLED (dry run: nothing changed):" in dry.stdout
    assert f"{run_id}  liveness/crashed: process {child.pid} on host" in dry.stdout
    assert "Left alone: 1 RUNNING run records no process" in dry.stdout
    assert ml.get_client().get_run(run_id).status is RunStatus.RUNNING

    done = invoke("runs", "sweep", "--output", "json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["dry_run"] is False
    assert [(r["run_id"], r["cause"]) for r in report["killed"]] == [(run_id, PROCESS_GONE)]
    assert (report["alive"], report["untracked"]) == (0, 1)
    assert ml.get_client().get_run(run_id).status is RunStatus.KILLED

    again = invoke("runs", "sweep")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("Marked 0 runs KILLED\n")


def test_the_cli_refuses_a_bad_duration_and_its_help_teaches(home: Path) -> None:
    bad = invoke("runs", "sweep", "--stale-after", "soon")
    assert bad.exit_code == 2
    assert bad.output.startswith("Error: --stale-after: 'soon' is not a duration")
    helped = invoke("runs", "sweep", "--help")
    assert helped.exit_code == 0
    for words in ("MODELLOOP_HEARTBEAT_SECONDS", "5 heartbeats", "--dry-run", "Examples"):
        assert words in helped.stdout


def test_a_bad_heartbeat_setting_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="MODELLOOP_HEARTBEAT_SECONDS='often'"):
        load_settings({"MODELLOOP_HEARTBEAT_SECONDS": "often"})
    assert load_settings({"MODELLOOP_HEARTBEAT_SECONDS": "0.5"}).heartbeat_seconds == 0.5
    assert load_settings({}).heartbeat_seconds == 30.0
