"""The background metric writer's contract: batching, the flush barrier, and what it retries."""

from __future__ import annotations

import threading

import pytest

from modelloop.errors import ConnectionLost, NotFound, ServerUnavailable
from modelloop.tracking._writer import MetricWriter
from modelloop.tracking.entities import Metric


class FlakySink:
    """Records batches; fails the first ``failures`` calls with ``error``."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.batches: list[tuple[str, list[Metric]]] = []
        self.lock = threading.Lock()

    def log_batch(self, run_id: str, metrics: list[Metric]) -> None:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                assert self.error is not None
                raise self.error
            self.batches.append((run_id, list(metrics)))

    def points(self) -> list[Metric]:
        return [m for _, batch in self.batches for m in batch]


def _points(n: int) -> list[Metric]:
    return [Metric("x", float(i), i, i) for i in range(n)]


def test_flush_returns_once_everything_submitted_is_written() -> None:
    sink = FlakySink()
    writer = MetricWriter(sink, interval=10.0)  # flush must not wait for the interval
    for point in _points(5000):
        writer.submit("r", point)
    writer.flush()
    assert sink.points() == _points(5000)
    assert len(sink.batches) < 50, "points are written in batches, not one by one"
    writer.close()


def test_points_of_several_runs_go_to_their_own_run() -> None:
    sink = FlakySink()
    writer = MetricWriter(sink)
    for i, point in enumerate(_points(100)):
        writer.submit("a" if i % 2 else "b", point)
    writer.flush()
    by_run = {run: [m.step for m in batch] for run, batch in sink.batches}
    assert by_run == {"b": list(range(0, 100, 2)), "a": list(range(1, 100, 2))}
    writer.close()


def test_an_unreachable_server_is_retried() -> None:
    sink = FlakySink(failures=2, error=ServerUnavailable("down"))
    writer = MetricWriter(sink)
    writer.submit("r", Metric("x", 1.0, 0, 0))
    writer.flush()
    assert sink.points() == [Metric("x", 1.0, 0, 0)]
    assert sink.calls == 3
    writer.close()


@pytest.mark.parametrize(
    "error", [ConnectionLost("maybe applied"), NotFound("no such run")], ids=["lost", "notfound"]
)
def test_errors_that_a_retry_could_worsen_are_reported_not_retried(error: Exception) -> None:
    sink = FlakySink(failures=1, error=error)
    writer = MetricWriter(sink)
    writer.submit("r", Metric("x", 1.0, 0, 0))
    with pytest.raises(type(error)):
        writer.flush()
    assert sink.calls == 1, "a batch the server may have applied must not be sent twice"
    writer.submit("r", Metric("x", 2.0, 1, 0))
    writer.flush()  # the writer carries on after reporting
    assert sink.points() == [Metric("x", 2.0, 1, 0)]
    writer.close()
