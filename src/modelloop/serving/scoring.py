"""One request, answered: shape, routing, validation, scoring, the response body and the log.

A request body is one record (an object of field -> value), a list of records, or columns (an
object of field -> list of values); the response mirrors it:

    {"prediction_id": "0192...", "prediction": 0.031, "model": "fraud", "version": 3,
     "role": "champion"}                                        <- one record
    {"predictions": [{"prediction_id": ..., "prediction": ..., ...}, ...]}   <- records
    {"prediction_id": [...], "prediction": [...], "model": [...], "version": [...],
     "role": [...]}                                             <- columns

``role`` says who answered: ``champion``, or ``challenger`` for rows a canary sent to it. A shadow
challenger's scores are only logged (role ``shadow``, same ``prediction_id``), never returned, and
its failures never fail the request. With explanations (``/explain``) every row also carries
``contributions`` (feature -> contribution, in the model's raw score space), ``base_value``, and
``reason_codes``: up to k ``{feature, contribution, value}``, the features that raised the score
most, largest first (see :mod:`modelloop.explain`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelloop.clock import now_ms as wall_clock_ms
from modelloop.errors import InvalidInput, ModelloopError, PayloadTooLarge
from modelloop.serving.deployment import Mode
from modelloop.serving.prediction_log import PredictionBatch, PredictionLog, new_prediction_ids
from modelloop.serving.predictor import CHALLENGER, CHAMPION, SHADOW, ServedModel, Serving

log = logging.getLogger("modelloop.serving")

RECORD, RECORDS, COLUMNS = "record", "records", "columns"
MAX_ROWS = 10_000
_WARN_EVERY_S = 60.0
_warned: dict[int, float] = {}  # id(served model) -> when its shadow failure was last logged


@dataclass(slots=True)
class _Part:
    """Rows one model answered: ``rows`` None means all of them, in order."""

    role: str
    model: ServedModel
    rows: list[int] | None
    X: np.ndarray
    scores: np.ndarray


def answer(
    serving: Serving,
    payload: Any,
    *,
    started: float,
    prediction_log: PredictionLog | None,
    explain_k: int | None = None,
    on_shadow_error: Callable[[Exception], None] | None = None,
    now_ms: Callable[[], int] = wall_clock_ms,
) -> dict[str, Any]:
    """Score ``payload`` (parsed JSON) and return the response body; log every row at
    ``now_ms()`` (the wall clock; a simulation passes its own)."""
    shape, rows = _shape(payload)
    deployment = serving.deployment
    entities = {
        key: _take_keys(payload, shape, rows, key, serving, purpose)
        for key, purpose in _entity_keys(serving)
    }
    keys = entities.get(deployment.sticky_key or "") if serving.split is not None else None
    parts = _score(serving, payload, shape, rows, keys)
    ms = now_ms()
    ids = new_prediction_ids(rows, ms)
    explanations = _explain(parts, rows, explain_k) if explain_k is not None else None
    body = _body(shape, ids, parts, rows, explanations)
    if prediction_log is None or not deployment.log_predictions:
        return body
    latency_ms = (time.perf_counter() - started) * 1000
    for part in parts:
        chosen = part.rows
        part_keys = {
            key: values if chosen is None else [values[i] for i in chosen]
            for key, values in entities.items()
        }
        part_ids = ids if chosen is None else [ids[i] for i in chosen]
        prediction_log.append(
            _batch(part, part_ids, ms, deployment.name, latency_ms, part_keys or None)
        )
    if deployment.mode is Mode.shadow and serving.challenger is not None:
        _shadow(
            serving, payload, parts[0].X, ids, ms, prediction_log, on_shadow_error, entities or None
        )
    return body


def _shape(payload: Any) -> tuple[str, int]:
    if isinstance(payload, dict):
        if not payload:
            raise InvalidInput("empty input", [{"row": None, "field": None, "message": "no rows"}])
        if all(isinstance(v, list) for v in payload.values()):
            rows = max(len(v) for v in payload.values())
            return COLUMNS, _limit(rows)
        return RECORD, 1
    if isinstance(payload, list):
        return RECORDS, _limit(len(payload))
    raise InvalidInput(
        "expected a record (object), a list of records, or columns (object of lists)",
        [{"row": None, "field": None, "message": f"got {type(payload).__name__}"}],
    )


def _limit(rows: int) -> int:
    if rows > MAX_ROWS:
        raise PayloadTooLarge(f"{rows} rows is more than the limit of {MAX_ROWS} per request")
    return rows


def _entity_keys(serving: Serving) -> list[tuple[str, str]]:
    """The request fields logged with each prediction but not fed to the model, with why: the
    canary's sticky key and the deployment's ``log_keys`` (e.g. a card id for card precision)."""
    deployment = serving.deployment
    found = [(key, "logs") for key in deployment.log_keys]
    sticky = deployment.sticky_key
    if serving.split is not None and sticky is not None:
        found = [(sticky, "routes by")] + [(k, why) for k, why in found if k != sticky]
    return found


def _take_keys(
    payload: Any, shape: str, rows: int, key: str, serving: Serving, purpose: str = "routes by"
) -> list[Any]:
    """A key's value per row, removed from the payload unless it is also a feature."""
    label = "sticky key" if purpose == "routes by" else "logged key"
    keep = key in serving.champion.signature.names
    missing: list[dict[str, Any]] = []
    if shape == COLUMNS:
        values = payload.get(key) if keep else payload.pop(key, None)
        if values is None:
            missing.append({"row": None, "field": key, "message": f"missing {label} column"})
            values = []
        elif len(values) != rows:
            missing.append({"row": None, "field": key, "message": f"ragged {label} column"})
    else:
        records = [payload] if shape == RECORD else payload
        values = []
        for i, record in enumerate(records):
            value = None
            if isinstance(record, dict):
                value = record.get(key) if keep else record.pop(key, None)
            if value is None or isinstance(value, dict | list | bool):
                why = "missing" if value is None else f"not a key value ({type(value).__name__})"
                missing.append({"row": i, "field": key, "message": f"{label} {why}"})
            values.append(value)
    if missing:
        raise InvalidInput(
            f"this deployment {purpose} {key!r}: every row needs a string or number there",
            missing[:100],
        )
    return list(values)


def _score(
    serving: Serving, payload: Any, shape: str, rows: int, keys: list[Any] | None
) -> list[_Part]:
    champion = serving.champion
    if serving.split is None or serving.challenger is None:
        X = champion.signature.to_matrix(payload, max_rows=MAX_ROWS)
        return [_Part(CHAMPION, champion, None, X, champion.model.predict_matrix(X))]
    challenger = serving.challenger
    to_challenger = serving.split.route(keys, rows)
    chosen = [i for i, flag in enumerate(to_challenger) if flag]
    if not chosen or len(chosen) == rows:
        role, model = (CHALLENGER, challenger) if chosen else (CHAMPION, champion)
        X = model.signature.to_matrix(payload, max_rows=MAX_ROWS)
        return [_Part(role, model, None, X, model.model.predict_matrix(X))]
    others = [i for i, flag in enumerate(to_challenger) if not flag]
    if serving.same_inputs:
        X = champion.signature.to_matrix(payload, max_rows=MAX_ROWS)
        X_champion, X_challenger = X[others], X[chosen]
    else:  # each model checks its own rows, against its own signature
        X_champion = _matrix_of_rows(champion, payload, shape, others)
        X_challenger = _matrix_of_rows(challenger, payload, shape, chosen)
    scores_champion = champion.model.predict_matrix(X_champion)
    scores_challenger = challenger.model.predict_matrix(X_challenger)
    return [
        _Part(CHAMPION, champion, others, X_champion, scores_champion),
        _Part(CHALLENGER, challenger, chosen, X_challenger, scores_challenger),
    ]


def _matrix_of_rows(model: ServedModel, payload: Any, shape: str, rows: list[int]) -> np.ndarray:
    subset = (
        {k: [v[i] for i in rows] for k, v in payload.items()}
        if shape == COLUMNS
        else [payload[i] for i in rows]
    )
    try:
        X: np.ndarray = model.signature.to_matrix(subset, max_rows=MAX_ROWS)
    except InvalidInput as exc:  # report rows as the client numbered them
        for detail in exc.details or ():
            if detail.get("row") is not None:
                detail["row"] = rows[detail["row"]]
        raise
    return X


def _explain(parts: list[_Part], rows: int, k: int) -> list[dict[str, Any]]:
    """Per row: every feature's contribution, the base value and the top-k reason codes."""
    from modelloop.explain import reason_codes

    out: list[dict[str, Any]] = [{}] * rows
    for part in parts:
        found = part.model.contributions(part.X)
        names = found.feature_names
        explained = [
            {
                "contributions": dict(zip(names, values, strict=True)),
                "base_value": base,
                "reason_codes": codes,  # dataclasses: orjson renders them as objects
            }
            for values, base, codes in zip(
                found.values.tolist(),
                found.base_values.tolist(),
                reason_codes(found, k),
                strict=True,
            )
        ]
        if part.rows is None:
            out = explained
        else:
            for i, row in zip(part.rows, explained, strict=True):
                out[i] = row
    return out


def _body(
    shape: str,
    ids: list[str],
    parts: list[_Part],
    rows: int,
    explanations: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    if len(parts) == 1:
        part = parts[0]
        scores = part.scores.tolist()
        models = [part.model.name] * rows
        versions = [part.model.version] * rows
        roles = [part.role] * rows
    else:
        full: list[Any] = [None] * rows
        models, versions, roles = [""] * rows, [0] * rows, [""] * rows
        for part in parts:
            for i, score in zip(part.rows or (), part.scores.tolist(), strict=True):
                full[i] = score
                models[i], versions[i], roles[i] = part.model.name, part.model.version, part.role
        scores = full
    if shape == COLUMNS:
        body = {
            "prediction_id": ids,
            "prediction": scores,
            "model": models,
            "version": versions,
            "role": roles,
        }
        if explanations is not None:
            for key in ("contributions", "base_value", "reason_codes"):
                body[key] = [e[key] for e in explanations]
        return body
    records = [
        {
            "prediction_id": ids[i],
            "prediction": scores[i],
            "model": models[i],
            "version": versions[i],
            "role": roles[i],
            **(explanations[i] if explanations is not None else {}),
        }
        for i in range(rows)
    ]
    return records[0] if shape == RECORD else {"predictions": records}


def _shadow(
    serving: Serving,
    payload: Any,
    X: np.ndarray,
    ids: Sequence[str],
    ms: int,
    prediction_log: PredictionLog,
    on_error: Callable[[Exception], None] | None,
    keys: dict[str, list[Any]] | None = None,
) -> None:
    """Score every row with the challenger too; log it, and swallow (but count) its failures."""
    challenger = serving.challenger
    assert challenger is not None
    started = time.perf_counter()
    try:
        X_shadow = X if serving.same_inputs else challenger.signature.to_matrix(payload)
        scores = challenger.model.predict_matrix(X_shadow)
    except Exception as exc:
        if on_error is not None:
            on_error(exc)
        now = time.monotonic()
        if now - _warned.get(id(challenger), -math.inf) > _WARN_EVERY_S:  # not once per request
            _warned[id(challenger)] = now
            reason = exc.message if isinstance(exc, ModelloopError) else repr(exc)
            log.warning("Shadow %s v%s failed: %s", challenger.name, challenger.version, reason)
        return
    latency_ms = (time.perf_counter() - started) * 1000
    part = _Part(SHADOW, challenger, None, X_shadow, scores)
    prediction_log.append(_batch(part, list(ids), ms, serving.deployment.name, latency_ms, keys))


def _batch(
    part: _Part,
    ids: list[str],
    ms: int,
    deployment: str,
    latency_ms: float,
    keys: dict[str, list[Any]] | None,
) -> PredictionBatch:
    return PredictionBatch(
        prediction_ids=ids,
        timestamp_ms=ms,
        deployment=deployment,
        model_name=part.model.name,
        model_version=part.model.version,
        role=part.role,
        latency_ms=latency_ms,
        scores=part.scores,
        inputs=part.X,
        decoder=part.model,
        keys=keys,
    )
