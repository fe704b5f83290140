"""Hot swap: when the served alias moves, the new version is loaded in the background and
swapped in atomically: under concurrent load not one request fails, and every answer after the
swap comes from the new version."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from tests.serving.conftest import Registry, record, serving

THREADS = 8


def test_moving_the_alias_under_load_fails_no_request(registry: Registry) -> None:
    with serving(registry.settings, poll_interval=0.1) as live:
        base = str(live.client.base_url)
        stop = threading.Event()
        seen: list[tuple[float, int]] = []  # (time answered, version)
        failures: list[str] = []

        def load() -> None:
            with httpx.Client(base_url=base, timeout=30.0) as client:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        response = client.post("/predict", json=record(i % 50))
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text}")
                        continue
                    seen.append((time.monotonic(), response.json()["version"]))

        workers = [threading.Thread(target=load) for _ in range(THREADS)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(1.0)
            registry.alias("champion", 2)
            moved_at = time.monotonic()
            deadline = moved_at + 30
            while live.service.predictor.current.champion.version != 2:
                assert time.monotonic() < deadline, "the new version was never swapped in"
                time.sleep(0.01)
            swapped_at = time.monotonic()
            time.sleep(1.0)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        ready = live.get("/ready").json()
        metrics = live.get("/metrics").text

    assert failures == []
    versions = Counter(version for _, version in seen)
    assert versions[1] > 50
    assert versions[2] > 50
    # Answered after the swap completed (plus a request's worth of slack): only v2.
    assert {v for t, v in seen if t > swapped_at + 0.5} == {2}
    assert {v for t, v in seen if t < moved_at} == {1}
    assert ready["models"][0]["version"] == 2
    assert 'modelloop_model_version{alias="fraud@champion",role="champion"} 2.0' in metrics
    assert "modelloop_model_swaps_total 1.0" in metrics


def test_a_version_that_fails_to_load_keeps_the_old_one(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(registry.settings, poll_interval=0.1) as live:
        source = live.service.predictor._source
        real_load = source.load

        def broken(ref: object, version: int) -> object:
            if version == 2:
                raise RuntimeError("corrupt package")
            return real_load(ref, version)

        monkeypatch.setattr(source, "load", broken)
        registry.alias("champion", 2)
        deadline = time.monotonic() + 30
        while live.service.predictor.load_failures == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        answer = live.post("/predict", record(0))
        metrics = live.get("/metrics").text
        # Fixed and moved again: the failed version gets a new try.
        monkeypatch.setattr(source, "load", real_load)
        registry.alias("champion", 1)
        time.sleep(0.5)
        registry.alias("champion", 2)
        while live.service.predictor.current.champion.version != 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)

    assert answer.status_code == 200
    assert answer.json()["version"] == 1
    assert "modelloop_model_load_failures_total 1.0" in metrics


def test_a_pinned_version_never_moves(registry: Registry) -> None:
    """The pinned champion stays while the watcher demonstrably runs: the aliased challenger
    beside it follows its alias."""
    deployment = {
        "name": "pinned",
        "model": "fraud/1",
        "challenger": "fraud@challenger",
        "mode": "shadow",
    }
    with serving(registry.settings, deployment, poll_interval=0.1) as live:
        assert live.service.predictor.current.challenger.version == 2
        registry.alias("champion", 2)
        registry.alias("challenger", 1)
        deadline = time.monotonic() + 30
        while live.service.predictor.current.challenger.version != 1:
            assert time.monotonic() < deadline, "the watcher never ran"
            time.sleep(0.02)
        body = live.post("/predict", record(0)).json()
        assert live.service.predictor.current.champion.version == 1
    assert body["version"] == 1
