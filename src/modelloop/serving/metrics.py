"""``/metrics``: what one serving process did, in Prometheus text.

Each app has its own registry (nothing lands in prometheus-client's global one, so tests and
several apps in one process stay apart). With ``--workers N`` every worker answers for itself:
scrape each, or sum by instance. Counters the request path does not touch (the prediction log's
rows and errors, model loads) are read when scraped instead of being counted as they happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from modelloop.serving.predictor import version_labels

if TYPE_CHECKING:
    from modelloop.serving.prediction_log import PredictionLog
    from modelloop.serving.predictor import Predictor

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class ServingMetrics:
    def __init__(self, predictor: Predictor, prediction_log: PredictionLog | None) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "modelloop_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "modelloop_request_latency_seconds",
            "Time from the request reaching its route to the response being ready.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._errors = Counter(
            "modelloop_errors",
            "Requests answered with an error, by route and error code.",
            ["route", "error_code"],
            registry=self.registry,
        )
        self._shadow_errors = Counter(
            "modelloop_shadow_errors",
            "Requests the shadow challenger could not score (the champion still answered).",
            registry=self.registry,
        )
        self._feedback = Counter(
            "modelloop_feedback",
            "Feedback labels received, by outcome (stored, duplicate, unknown).",
            ["status"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(predictor, prediction_log))

    def requests(self, route: str, status: int) -> Counter:
        return self._requests.labels(route, str(status))

    def latency(self, route: str) -> Callable[[float], None]:
        return self._latency.labels(route).observe

    def error(self, route: str, error_code: str) -> None:
        self._errors.labels(route, error_code).inc()

    def shadow_failed(self, exc: Exception) -> None:
        self._shadow_errors.inc()

    def feedback(self, statuses: list[dict[str, str]]) -> None:
        for entry in statuses:
            self._feedback.labels(entry["status"]).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector(Collector):
    """Gauges and counters read from the predictor and the log at scrape time."""

    def __init__(self, predictor: Predictor, prediction_log: PredictionLog | None) -> None:
        self._predictor = predictor
        self._log = prediction_log

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        versions = GaugeMetricFamily(
            "modelloop_model_version",
            "The version each served alias resolves to, by role.",
            labels=["alias", "role"],
        )
        if self._predictor.ready:
            for (alias, role), version in version_labels(self._predictor.current).items():
                versions.add_metric([alias, role], version)
        yield versions
        yield CounterMetricFamily(
            "modelloop_model_swaps",
            "Hot swaps to a newly aliased version.",
            value=self._predictor.swaps,
        )
        yield CounterMetricFamily(
            "modelloop_model_load_failures",
            "Versions that failed to load (the previous one kept serving).",
            value=self._predictor.load_failures,
        )
        log = self._log
        yield GaugeMetricFamily(
            "modelloop_prediction_log_queue_rows",
            "Predictions answered but not yet written to the log.",
            value=log.pending_rows if log is not None else 0,
        )
        for name, help_text, value in (
            ("written_rows", "Prediction rows written to Parquet.", "rows_written"),
            ("dropped_rows", "Prediction rows dropped (queue full or shut down).", "rows_dropped"),
            ("write_errors", "Failed writes of the prediction log (retried).", "write_errors"),
        ):
            yield CounterMetricFamily(
                f"modelloop_prediction_log_{name}",
                help_text,
                value=getattr(log, value) if log is not None else 0,
            )

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return iter(())
