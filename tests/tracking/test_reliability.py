"""Concurrency and crash safety of the embedded store, with real processes.

(a) several processes log into one SQLite store at once: no "database is locked", no lost point;
(b) a process SIGKILLed while logging: every point whose ``flush()`` returned survives, and the
store opens cleanly afterwards.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelloop.settings import load_settings
from modelloop.tracking.client import Client

PROCESSES = 4
POINTS = 20_000

WRITER = """
import os, sys, time, modelloop as ml
worker, points, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ml.get_client().list_experiments()  # open (and maybe migrate) the store before the start line
while not os.path.exists(go):
    time.sleep(0.001)
with ml.start_run(experiment="concurrent", name=f"worker-{worker}") as run:
    for i in range(points):
        run.log_metric("x", worker * 1_000_000 + i, step=i)
        if i % 100 == 99:
            run.flush()  # hundreds of small transactions per process, interleaved
        if i % 5000 == 4999:
            run.set_tag("progress", i)
print("done", run.run_id)
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELLOOP_")}
    env["MODELLOOP_HOME"] = str(home)
    return env


@pytest.mark.slow
def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(w), str(POINTS), str(go)],
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    time.sleep(1.5)  # all four are importing and opening the store
    go.touch()
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "locked" not in err
        assert out.startswith("done")
    client = Client(settings=load_settings({"MODELLOOP_HOME": str(home)}))
    try:
        runs = client.find_runs("concurrent")
        assert len(runs) == PROCESSES
        for run in runs:
            worker = int(run.name.split("-")[1])
            history = client.metric_history(run.run_id, "x")
            assert history["step"].tolist() == list(range(POINTS))
            assert history["value"].tolist() == [worker * 1_000_000 + i for i in range(POINTS)]
            assert run.status.value == "FINISHED"
    finally:
        client.close()


KILLED = """
import sys, modelloop as ml
run = ml.start_run(experiment="crash")
print(run.run_id, flush=True)
batch = 0
while True:
    for i in range(1000):
        step = batch * 1000 + i
        run.log_metric("x", step * 0.5, step=step)
    run.flush()
    print(batch, flush=True)  # acknowledged: every point up to here is durable
    batch += 1
"""


@pytest.mark.slow
def test_points_acknowledged_by_flush_survive_sigkill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED], env=_env(home), stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    run_id = child.stdout.readline().strip()
    acknowledged = -1
    deadline = time.monotonic() + 120
    while acknowledged < 30 and time.monotonic() < deadline:
        acknowledged = int(child.stdout.readline())
    time.sleep(0.05)  # let it get into the middle of further writes
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    # A later acknowledgement may have been printed before the kill landed.
    for line in child.stdout.read().split():
        acknowledged = max(acknowledged, int(line))
    child.stdout.close()
    assert acknowledged >= 30

    database = home / "modelloop.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    client = Client(settings=load_settings({"MODELLOOP_HOME": str(home)}))
    try:
        history = client.metric_history(run_id, "x")
        durable = (acknowledged + 1) * 1000
        assert len(history) >= durable
        assert history["step"].tolist()[:durable] == list(range(durable))
        assert history["value"].tolist()[:durable] == [s * 0.5 for s in range(durable)]
        assert client.get_run(run_id).status.value == "RUNNING"  # it never ended
        client.log_batch(run_id, [("after", 1.0, 0, 1)])  # and the store is still writable
        assert client.get_run(run_id).metrics["after"] == 1.0
    finally:
        client.close()
