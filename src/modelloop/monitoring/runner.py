"""Running a monitor: which windows are due, checking them, and storing what was found.

Windows are ``[start, end)`` in UTC, aligned on the epoch (so a 1d window is a UTC day), or the
last N predictions. A drift window is due once it closed and ``grace`` passed (time for the
prediction log to flush); a performance window once its labels matured too (``label_delay``
after it closed). "Now" is the store's clock (:func:`modelloop.store_clock.store_clock`): the
wall clock, or the instant a simulation reached, so a simulated store never gets windows past
its simulated now. Due windows are computed oldest first, at most ``max_windows_per_run`` per
kind per run, from the monitor's ``since``, but no further back than its ``catch_up``: windows
that became due longer ago and were never stored (a server down for weeks) are a
:class:`Backlog`, reported and left alone; ``window=...`` still checks any one of them.

Each window is checked for the deployment as a whole (``model_version`` 0: the predictions it
answered with, shadow answers left out) and for every model version in it (shadow included), so
a canary or shadow challenger has its own drift and performance. Drift compares with the
reference stored with the version at registration; the deployment as a whole is compared with
the reference of the version that answered most of its predictions.

A window's results (every scope, every value) and the alert changes they cause are written in
one transaction: a crash leaves the window uncomputed, to be done again, never half-written.
Writing a window that is already stored is a no-op, so runs are idempotent and two schedulers
on one database do no harm.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelloop.clock import DAY_MS, duration_ms, from_ms, iso, to_ms
from modelloop.errors import InvalidArgument, NotFound
from modelloop.monitoring.monitor import Monitor
from modelloop.monitoring.sql import SqlMonitorStore
from modelloop.monitoring.windows import (
    DRIFT,
    PERFORMANCE,
    WHOLE,
    Backlog,
    ScopeResult,
    Window,
    WindowResult,
)
from modelloop.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.datasets.reference import ColumnReference

log = logging.getLogger("modelloop.monitoring")

_RESERVED = frozenset(
    (
        "prediction_id",
        "timestamp",
        "deployment",
        "model_name",
        "model_version",
        "role",
        "latency_ms",
        "score",
        "model",
        "date",
        "label",
        "label_text",
        "labelled_at",
    )
)


def check_windows(
    monitor: str | Monitor,
    *,
    window: datetime | str | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
    notify: bool = True,
    on_backlog: Callable[[Backlog], None] | None = None,
) -> list[WindowResult]:
    """Check every due window of a stored monitor, or only the one containing ``window``, and
    store what was found (in the metadata database the settings name).

    ``now`` (default: the store's clock) decides what is due. Returns one result per window and
    kind looked at, including windows found already stored. Windows older than the monitor's
    ``catch_up`` that were never stored go to ``on_backlog`` (default: a warning in the log).
    Alert transitions are logged and sent to the monitor's webhooks after the window is
    committed (``notify=False`` leaves them pending for the scheduler)."""
    from modelloop.monitoring import notify as _notify
    from modelloop.store_clock import read_clock

    settings = settings or load_settings()
    store = SqlMonitorStore.local(settings)
    name = monitor if isinstance(monitor, str) else monitor.name
    config = store.get(name).monitor
    now_ms = to_ms(now) if now is not None else read_clock(store.db).now_ms
    checker = _Checker(config, settings, now_ms)
    results: list[WindowResult] = []
    for kind in _kinds(config):
        if window is not None:
            due = [_window_containing(config, window, kind, now_ms)]
        else:
            stored = store.stored_windows(name, kind)
            due, backlog = _due_windows(config, kind, now_ms, stored, checker)
            if backlog is not None:
                (on_backlog or _warn)(backlog)
        for win in due:
            scopes = checker.check(kind, win)
            result = store.record_window(config, kind, win, scopes, now_ms)
            results.append(result)
            if result.stored:
                log.info("%s %s %s: %s", name, kind, win, _summary(result))
    _notify.log_transitions(results)
    if notify:
        _notify.notify_pending(config, store, store.allowed_networks)
    return results


def _kinds(config: Monitor) -> list[str]:
    return [k for k, s in ((DRIFT, config.drift), (PERFORMANCE, config.performance)) if s.enabled]


def _warn(backlog: Backlog) -> None:
    log.warning("%s", backlog)


def _ready_at(config: Monitor, kind: str, end: int) -> int:
    """When a window ending at ``end`` may be computed."""
    return end + _wait(config, kind)


def _wait(config: Monitor, kind: str) -> int:
    """How long after it closes a window of ``kind`` becomes due (ms)."""
    wait = config.grace
    if kind == PERFORMANCE:
        wait += config.performance.label_delay
    return duration_ms(wait)


def _due_windows(
    config: Monitor, kind: str, now: int, stored: set[tuple[int, int]], checker: _Checker
) -> tuple[list[Window], Backlog | None]:
    """The windows to compute now, oldest first, and the backlog left behind (if any)."""
    period = config.period
    if period is None:
        last = checker.last_window(kind)
        return ([] if last is None or (last.start, last.end) in stored else [last]), None
    step = duration_ms(period)
    first = (to_ms(config.since) if config.since else now) // step * step
    # The oldest window to catch up on became due at most catch_up ago:
    # start + step + wait >= now - catch_up, for the first aligned start.
    catch_up = duration_ms(config.catch_up)
    oldest = now - catch_up - _wait(config, kind) - step
    start = max(first, -(-oldest // step) * step)
    backlog = _backlog(config, kind, first, start, step, stored) if start > first else None
    due: list[Window] = []
    while _ready_at(config, kind, start + step) <= now and len(due) < config.max_windows_per_run:
        if (start, start + step) not in stored:
            due.append(Window(start, start + step))
        start += step
    return due, backlog


def _backlog(
    config: Monitor, kind: str, first: int, start: int, step: int, stored: set[tuple[int, int]]
) -> Backlog | None:
    """The windows in ``[first, start)`` never stored, from the first to the last of them
    (stable while time passes: the windows computed since are stored)."""
    done = {a for a, b in stored if first <= a < start and b - a == step}
    missed = (start - first) // step - len(done)
    if missed <= 0:
        return None
    low, high = first, start - step
    while low in done:
        low += step
    while high in done:
        high -= step
    return Backlog(config.name, kind, missed, low, high + step, duration_ms(config.catch_up))


def _window_containing(config: Monitor, moment: datetime | str, kind: str, now: int) -> Window:
    """The periodic window containing ``moment``; refused while it is not due yet."""
    period = config.period
    if period is None:
        raise InvalidArgument(
            f"Monitor {config.name!r} watches the last {config.last} predictions: it has no "
            "window to choose, run it without --window"
        )
    at = to_ms(_instant(moment))
    step = duration_ms(period)
    win = Window(at // step * step, at // step * step + step)
    ready = _ready_at(config, kind, win.end)
    if ready > now:
        why = "its labels mature" if kind == PERFORMANCE else "it closes (plus grace)"
        raise InvalidArgument(
            f"The {kind} window {win} of monitor {config.name!r} is not due yet: {why} at "
            f"{iso(ready)}"
        )
    return win


class _Checker:
    """Reads a window's predictions and computes drift or performance for each scope."""

    def __init__(self, config: Monitor, settings: Settings, now: int) -> None:
        self.config = config
        self.settings = settings
        self.now = now
        self.model = config.model or _deployed_model(config.deployment, settings)
        self._references: dict[int, dict[str, ColumnReference]] = {}
        self._missing: dict[int, str] = {}  # version -> why it has no reference

    def frame(self, win: Window, *, labels: bool) -> pd.DataFrame:
        from modelloop.serving.predictions import load_predictions

        return load_predictions(
            self.model,
            from_ms(win.start),
            from_ms(win.end),
            deployment=self.config.deployment,
            with_labels=labels,
            settings=self.settings,
        )

    def last_window(self, kind: str) -> Window | None:
        """The last N answered predictions (matured ones, for performance), read a logged day
        at a time, newest first, until N are found or ``since`` is reached."""
        import pandas as pd

        from modelloop.serving.predictions import logged_dates

        n = self.config.last or 0
        end = self.now
        if kind == PERFORMANCE:
            end -= duration_ms(self.config.performance.label_delay)
        floor = to_ms(self.config.since) if self.config.since else 0
        found: list[pd.Series[Any]] = []
        count = 0
        for text in reversed(logged_dates(self.model, self.settings)):
            day = to_ms(datetime.fromisoformat(text))
            if count >= n or day + DAY_MS <= floor:
                break
            if day >= end:
                continue
            frame = self.frame(Window(max(day, floor), min(day + DAY_MS, end)), labels=False)
            frame = frame[frame["role"] != "shadow"]
            found.insert(0, frame["timestamp"])
            count += len(frame)
        if count == 0:
            return None
        times = pd.concat(found).sort_values().iloc[-n:]
        return Window(to_ms(times.iloc[0]), to_ms(times.iloc[-1]) + 1)

    def check(self, kind: str, win: Window) -> list[ScopeResult]:
        frame = self.frame(win, labels=kind == PERFORMANCE)
        if self.config.last is not None and len(frame):
            # A batch shares its timestamp: keep the last N answers by id (ids sort by time),
            # with the shadow rows of the same predictions.
            kept = frame.loc[frame["role"] != "shadow", "prediction_id"].iloc[-self.config.last :]
            frame = frame[frame["prediction_id"] >= kept.iloc[0]] if len(kept) else frame
        answered = frame[frame["role"] != "shadow"]
        scopes = [(WHOLE, answered)]
        versions = sorted(int(v) for v in frame["model_version"].dropna().unique())
        scopes += [(v, frame[frame["model_version"] == v]) for v in versions]
        if kind == DRIFT:
            primary = int(answered["model_version"].mode().iloc[0]) if len(answered) else None
            return [self._drift(v, part, primary if v == WHOLE else v) for v, part in scopes]
        return [self._performance(v, part) for v, part in scopes]

    def reference(self, version: int) -> dict[str, ColumnReference]:
        if version not in self._references:
            from modelloop.registry.client import Registry
            from modelloop.tracking.client import Client

            registry = Registry(Client(settings=self.settings))
            try:
                uri = f"models:/{self.model}/{version}"
                self._references[version] = registry.reference_profile(uri)
            except NotFound as exc:  # the window says so (status no_reference)
                self._references[version] = {}
                self._missing[version] = exc.message
            finally:
                registry.close()
                registry.client.close()
        return self._references[version]

    def _drift(self, scope: int, frame: pd.DataFrame, version: int | None) -> ScopeResult:
        import pandas as pd

        from modelloop.monitoring.drift import check_drift

        n = len(frame)
        settings = self.config.drift
        result = ScopeResult(scope, "ok", n, {"predictions": float(n)})
        if n == 0 or version is None:
            result.status = "no_data"
            return result
        if n < settings.min_predictions:
            result.status = "insufficient_data"
            return result
        reference = self.reference(version)
        result.report["reference_version"] = version
        inputs = {
            k: r
            for k, r in reference.items()
            if k != "score" and (settings.columns is None or k in settings.columns)
        }
        if not inputs:
            result.status = "no_reference"
            result.report["notes"] = [
                self._missing.get(version)
                or f"version {version} of {self.model} has no reference for the monitored columns"
            ]
            return result
        current = pd.DataFrame({k: logged_column(frame, k) for k in inputs}, index=frame.index)
        report = check_drift(
            inputs,
            current,
            methods=settings.methods,
            thresholds=settings.thresholds,
            share_threshold=settings.share_threshold,
        )
        result.values["drift.share"] = report.share_drifted
        result.values["drift.dataset"] = float(report.dataset_drifted)
        for column, r in report.results.items():
            if r.status == "ok" and math.isfinite(r.value):
                result.values[f"drift.column.{column}"] = r.value
        result.report.update(
            share_drifted=report.share_drifted,
            dataset_drifted=report.dataset_drifted,
            drifted_columns=list(report.drifted_columns),
            columns={c: _drift_result(r) for c, r in report.results.items()},
        )
        if settings.score and "score" in reference:
            own = frame[frame["model_version"] == version]  # scores of other versions differ
            score = check_drift(
                {"score": reference["score"]},
                own[["score"]],
                methods={k: v for k, v in settings.methods.items() if k == "score"},
                thresholds={k: v for k, v in settings.thresholds.items() if k == "score"},
            ).results["score"]
            result.report["score"] = _drift_result(score)
            if score.status == "ok" and math.isfinite(score.value):
                result.values["drift.score"] = score.value
                result.values["drift.score_drifted"] = float(score.drifted)
        if not report.results or len(report.no_data) == len(report.results):
            result.status = "no_data"
        return result

    def _performance(self, scope: int, frame: pd.DataFrame) -> ScopeResult:
        from modelloop.monitoring.performance import performance

        settings = self.config.performance
        entity = settings.entity
        notes = []
        if entity is not None and entity not in frame.columns:
            notes.append(f"no {entity!r} column in the prediction log: card precision@k skipped")
            entity = None
        report = performance(
            frame,
            threshold=settings.threshold,
            k=settings.k,
            entity=entity,
            min_labels=settings.min_labels,
            min_coverage=settings.min_coverage,
            label_delay=settings.label_delay,
            as_of=from_ms(self.now),
        )
        data = report.to_dict()
        data["notes"] = notes + list(data["notes"])
        values = {"predictions": float(len(frame))}
        for name in (
            "label_coverage",
            "n_labelled",
            "n_positive",
            "auc_roc",
            "average_precision",
            "precision",
            "recall",
            "precision_at_k",
            "card_precision_at_k",
            "expected_calibration_error",
        ):
            value = data.get(name)
            if isinstance(value, int | float) and math.isfinite(value):
                values[f"performance.{name}"] = float(value)
        return ScopeResult(scope, report.status, len(frame), values, data)


def logged_column(frame: pd.DataFrame, feature: str) -> Any:
    """The log prefixes inputs named like its own columns with ``input_``."""
    import pandas as pd

    name = feature
    while name in _RESERVED:
        name = f"input_{name}"
    return frame[name] if name in frame.columns else pd.Series(index=frame.index, dtype=object)


def _drift_result(r: Any) -> dict[str, Any]:
    return {
        "method": r.method,
        "column_type": r.column_type,  # numeric or categorical: what the test was chosen for
        "value": r.value if math.isfinite(r.value) else None,
        "p_value": r.p_value,
        "threshold": r.threshold,
        "drifted": r.drifted,
        "status": r.status,
    }


def _deployed_model(deployment: str, settings: Settings) -> str:
    from modelloop.serving.fluent import get_deployment

    try:
        return get_deployment(deployment, settings=settings).deployment.model.name
    except NotFound:
        raise InvalidArgument(
            f"Monitor watches deployment {deployment!r}, which is not stored: set 'model' in "
            "the monitor, or store the deployment with 'modelloop deployments apply'"
        ) from None


def _summary(result: WindowResult) -> str:
    whole = result.whole
    if whole is None:
        return "no scopes"
    if whole.status != "ok":  # with why, e.g. how to give a no_reference window a reference
        return "; ".join([whole.status, *map(str, whole.report.get("notes") or [])])
    shown = {k: round(v, 4) for k, v in whole.values.items() if "column." not in k}
    return json.dumps(shown)


def _instant(value: datetime | str) -> datetime:
    from modelloop.serving.predictions import parse_instant

    moment = parse_instant(value, "window")
    assert moment is not None
    return moment
