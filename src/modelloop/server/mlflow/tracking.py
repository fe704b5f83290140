"""MLflow's tracking API: experiments, runs, params, metrics, tags, search, inputs.

Each route reads MLflow's request (JSON for POST, query parameters for GET), calls the tracking
store and answers in MLflow's JSON; every rule (names, keys, immutable params, lifecycle, filters)
is the store's, so a run written here is a modelloop run like any other. What only MLflow has is
translated here: its experiment id ``"0"`` is modelloop's default experiment, its system tags
``mlflow.runName`` and ``mlflow.parentRunId`` are the run's name and parent, its batch limits
and view types, and opaque page tokens (an offset bound to the query that issued it). MLflow 3's
links between runs and logged models are :mod:`modelloop.tracking.logged_models`' facts: a metric
naming a model is the model's too, and a run answers with the models it took and output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request

from modelloop.auth import Principal
from modelloop.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from modelloop.server.mlflow.errors import NotSupported
from modelloop.server.mlflow.requests import Handler, Params, endpoint, page_offset, page_token
from modelloop.settings import Settings
from modelloop.tracking.client import DEFAULT_EXPERIMENT
from modelloop.tracking.entities import (
    DatasetInput,
    Experiment,
    Lifecycle,
    Metric,
    Run,
    RunSpec,
    RunStatus,
    check_key,
    check_metric,
    check_value,
)
from modelloop.tracking.logged_models import (
    LoggedModels,
    ModelMetric,
    RunModels,
    check_model_id,
)
from modelloop.tracking.sql import MAX_SEARCH_RESULTS, SqlTrackingStore

DEFAULT_EXPERIMENT_ID = "0"  # what MLflow clients send when no experiment is set
TAG_RUN_NAME = "mlflow.runName"
TAG_PARENT_RUN = "mlflow.parentRunId"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_SOURCE_NAME = "mlflow.source.name"

# MLflow's limits on one log-batch request, and on a param's value.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS_TAGS = 100
MAX_BATCH_ENTITIES = 1000
MAX_PARAM_VALUE = 6000
MAX_HISTORY_PAGE = 25_000  # metric points per get-history page unless asked for fewer

_VIEW_TYPES: dict[object, Lifecycle] = {
    "ACTIVE_ONLY": "active",
    "DELETED_ONLY": "deleted",
    "ALL": "all",
    1: "active",
    2: "deleted",
    3: "all",
}
_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def tracking_routes(store: SqlTrackingStore, settings: Settings) -> APIRouter:
    """MLflow's tracking endpoints over ``store`` (paths relative to ``/api/2.0/mlflow``)."""
    router = APIRouter()
    edge = _Edge(store)
    routes: list[tuple[str, str, Handler]] = [
        # What a training loop calls at every step first: routes are tried in order.
        ("POST", "/runs/log-metric", edge.log_metric),
        ("POST", "/runs/log-batch", edge.log_batch),
        ("POST", "/runs/log-parameter", edge.log_param),
        ("POST", "/runs/set-tag", edge.set_tag),
        ("GET", "/metrics/get-history", edge.metric_history),
        ("GET", "/runs/get", edge.get_run),
        ("POST", "/runs/search", edge.search_runs),
        ("POST", "/experiments/create", edge.create_experiment),
        ("GET", "/experiments/get", edge.get_experiment),
        ("GET", "/experiments/get-by-name", edge.get_experiment_by_name),
        ("POST", "/experiments/search", edge.search_experiments),
        ("GET", "/experiments/search", edge.search_experiments),
        ("POST", "/experiments/update", edge.rename_experiment),
        ("POST", "/experiments/delete", edge.delete_experiment),
        ("POST", "/experiments/restore", edge.restore_experiment),
        ("POST", "/experiments/set-experiment-tag", edge.set_experiment_tag),
        ("POST", "/experiments/delete-experiment-tag", edge.delete_experiment_tag),
        ("POST", "/runs/create", edge.create_run),
        ("POST", "/runs/update", edge.update_run),
        ("POST", "/runs/delete", edge.delete_run),
        ("POST", "/runs/restore", edge.restore_run),
        ("POST", "/runs/delete-tag", edge.delete_tag),
        ("POST", "/runs/log-inputs", edge.log_inputs),
        ("GET", "/metrics/get-history-bulk-interval", edge.metric_history_bulk_interval),
    ]
    # One short write each: on the event loop while no other writer holds the lock (SQLite).
    quick = {"/runs/log-metric", "/runs/log-parameter", "/runs/set-tag"}
    local = store.db if store.db.dialect == "sqlite" else None
    for method, path, handler in routes:
        made = endpoint(method, handler, quick_write=local if path in quick else None)
        router.add_route(path, made, methods=[method])
    return router


class _Edge:
    def __init__(self, store: SqlTrackingStore) -> None:
        self.store = store
        self.models = LoggedModels(store)

    # -- experiments ---------------------------------------------------------------------------

    def experiment_id(self, given: str) -> str:
        """MLflow's default experiment "0" is modelloop's default experiment (made on first
        use, as ``ml.start_run`` makes it)."""
        if given != DEFAULT_EXPERIMENT_ID:
            return given
        found = self.store.get_experiment_by_name(DEFAULT_EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return self.store.create_experiment(DEFAULT_EXPERIMENT).experiment_id
        except AlreadyExists:  # made by another request in between
            found = self.store.get_experiment_by_name(DEFAULT_EXPERIMENT)
            assert found is not None
            return found.experiment_id

    def create_experiment(self, p: Params, request: Request) -> dict[str, Any]:
        name = p.required("name")
        if p.text("artifact_location"):
            raise NotSupported(
                "experiments/create with an artifact_location: modelloop stores every run's "
                "artifacts itself (served as mlflow-artifacts:/<experiment_id>); leave it empty"
            )
        tags = _pairs(p.objects("tags"), "tags")
        for key, value in tags.items():  # before the experiment exists: all or nothing
            check_value(value, "tag", check_key(key, "tag"))
        created = self.store.create_experiment(name)
        if tags:
            self.store.set_experiment_tags(created.experiment_id, tags)
        return {"experiment_id": created.experiment_id}

    def get_experiment(self, p: Params, request: Request) -> dict[str, Any]:
        experiment_id = self.experiment_id(p.required("experiment_id"))
        return {"experiment": _experiment(self.store.get_experiment(experiment_id))}

    def get_experiment_by_name(self, p: Params, request: Request) -> dict[str, Any]:
        name = p.required("experiment_name")
        found = self.store.get_experiment_by_name(name)
        if found is None:
            raise NotFound(f"Could not find experiment with name '{name}'")
        return {"experiment": _experiment(found)}

    def search_experiments(self, p: Params, request: Request) -> dict[str, Any]:
        lifecycle = _view_type(p, "view_type")
        max_results = _max_results(p, 1000)
        filter, order_by = p.text("filter"), p.strings("order_by")
        query = ("experiments", filter, order_by, lifecycle)
        offset = page_offset(p.text("page_token"), query)
        fetch = min(max_results + 1, MAX_SEARCH_RESULTS)
        found = self.store.search_experiments(filter, order_by, fetch, offset, lifecycle)
        answer: dict[str, Any] = {"experiments": [_experiment(e) for e in found[:max_results]]}
        if len(found) > max_results:
            answer["next_page_token"] = page_token(offset + max_results, query)
        return answer

    def rename_experiment(self, p: Params, request: Request) -> dict[str, Any]:
        experiment_id = self.experiment_id(p.required("experiment_id"))
        self.store.rename_experiment(experiment_id, p.required("new_name"))
        return {}

    def delete_experiment(self, p: Params, request: Request) -> dict[str, Any]:
        given = p.required("experiment_id")
        if given == DEFAULT_EXPERIMENT_ID:
            raise InvalidArgument("The default experiment (id '0') cannot be deleted")
        self.store.delete_experiment(given)
        return {}

    def restore_experiment(self, p: Params, request: Request) -> dict[str, Any]:
        self.store.restore_experiment(self.experiment_id(p.required("experiment_id")))
        return {}

    def set_experiment_tag(self, p: Params, request: Request) -> dict[str, Any]:
        experiment_id = self.experiment_id(p.required("experiment_id"))
        tag = {p.required("key"): p.text("value", default="") or ""}
        self.store.set_experiment_tags(experiment_id, tag)
        return {}

    def delete_experiment_tag(self, p: Params, request: Request) -> dict[str, Any]:
        experiment_id = self.experiment_id(p.required("experiment_id"))
        self.store.delete_experiment_tag(experiment_id, p.required("key"))
        return {}

    # -- runs ----------------------------------------------------------------------------------

    def create_run(self, p: Params, request: Request) -> dict[str, Any]:
        tags = _pairs(p.objects("tags"), "tags")
        name = p.text("run_name") or tags.pop(TAG_RUN_NAME, None) or None
        tags.pop(TAG_RUN_NAME, None)  # the name is the run's own field
        user = _principal(request) or p.text("user_id") or "unknown"
        source = {
            k: v
            for k, v in (
                ("git_commit", tags.get(TAG_GIT_COMMIT)),
                ("entry_point", tags.get(TAG_SOURCE_NAME)),
            )
            if v
        }
        spec = RunSpec(
            experiment_id=self.experiment_id(p.text("experiment_id") or DEFAULT_EXPERIMENT_ID),
            name=name,
            parent_run_id=tags.get(TAG_PARENT_RUN),
            user=user,
            tags=tags,
            source=source,
            start_time=p.integer("start_time"),
        )
        return {"run": self.run(self.store.create_run(spec))}

    def update_run(self, p: Params, request: Request) -> dict[str, Any]:
        run_id = p.run_id()
        run = self.store.get_run(run_id)
        name = p.text("run_name")
        if name:
            run = self.store.rename_run(run_id, name)
        status = p.values.get("status")
        if status is not None:
            if not isinstance(status, str) or status not in _STATUSES:
                raise p.wrong("status", "one of " + ", ".join(sorted(_STATUSES)))
            if status == "SCHEDULED":
                raise NotSupported(
                    "runs/update to SCHEDULED: modelloop runs are RUNNING until they end"
                )
            if status == "RUNNING":
                if run.status is not RunStatus.RUNNING:  # mlflow.start_run(run_id=...) resumes
                    run = self.store.resume_run(run_id)
            else:
                run = self.store.end_run(run_id, RunStatus(status), end_time=p.integer("end_time"))
        return {"run_info": self.run(run)["info"]}

    def get_run(self, p: Params, request: Request) -> dict[str, Any]:
        return {"run": self.run(self.store.get_run(p.run_id()))}

    def delete_run(self, p: Params, request: Request) -> dict[str, Any]:
        self.store.delete_run(p.run_id())
        return {}

    def restore_run(self, p: Params, request: Request) -> dict[str, Any]:
        self.store.restore_run(p.run_id())
        return {}

    def search_runs(self, p: Params, request: Request) -> dict[str, Any]:
        experiment_ids = [self.experiment_id(e) for e in p.strings("experiment_ids")]
        lifecycle = _view_type(p, "run_view_type")
        max_results = _max_results(p, 1000)
        filter, order_by = p.text("filter"), p.strings("order_by")
        query = ("runs", sorted(experiment_ids), filter, order_by, lifecycle)
        offset = page_offset(p.text("page_token"), query)
        fetch = min(max_results + 1, MAX_SEARCH_RESULTS)
        found = self.store.search_runs(experiment_ids, filter, order_by, fetch, offset, lifecycle)
        page = found[:max_results]
        answer: dict[str, Any] = {"runs": self.runs(page)}
        if len(found) > max_results:
            answer["next_page_token"] = page_token(offset + max_results, query)
        return answer

    # -- params, metrics, tags -----------------------------------------------------------------

    def log_metric(self, p: Params, request: Request) -> dict[str, Any]:
        point, run_id = _metric(p.values), p.run_id()
        linked = [_model_metric(run_id, p.values, point)] if p.values.get("model_id") else []
        self._log(run_id, metrics=[point], linked=linked)
        return {}

    def log_param(self, p: Params, request: Request) -> dict[str, Any]:
        key = p.required("key")
        self._log(p.run_id(), params={key: _param_value(key, p.text("value", default=""))})
        return {}

    def set_tag(self, p: Params, request: Request) -> dict[str, Any]:
        run_id, key, value = p.run_id(), p.required("key"), p.text("value", default="") or ""
        if key == TAG_RUN_NAME:
            self.store.rename_run(run_id, value)
        else:
            self._log(run_id, tags={key: value})
        return {}

    def delete_tag(self, p: Params, request: Request) -> dict[str, Any]:
        self.store.delete_tag(p.run_id(), p.required("key"))
        return {}

    def log_batch(self, p: Params, request: Request) -> dict[str, Any]:
        metrics, params, tags = p.objects("metrics"), p.objects("params"), p.objects("tags")
        for what, items, limit in (
            ("metrics", metrics, MAX_BATCH_METRICS),
            ("params", params, MAX_BATCH_PARAMS_TAGS),
            ("tags", tags, MAX_BATCH_PARAMS_TAGS),
        ):
            if len(items) > limit:
                raise InvalidArgument(
                    f"A batch logging request can have at most {limit} {what}; "
                    f"got {len(items)}: split it into smaller batches"
                )
        if len(metrics) + len(params) + len(tags) > MAX_BATCH_ENTITIES:
            raise InvalidArgument(
                f"A batch logging request can have at most {MAX_BATCH_ENTITIES} metrics, params "
                f"and tags in total; got {len(metrics) + len(params) + len(tags)}"
            )
        run_id = p.run_id()
        points = [_metric(m) for m in metrics]
        linked = [
            _model_metric(run_id, m, point)
            for m, point in zip(metrics, points, strict=True)
            if m.get("model_id")
        ]
        values: dict[str, str] = {}
        for param in params:
            ((key, value),) = _pairs([param], "params").items()
            if values.get(key, value) != value:
                raise InvalidArgument(
                    f"Param {key!r} is given twice with different values in one batch"
                )
            values[key] = _param_value(key, value)
        tag_values = _pairs(tags, "tags")
        name = tag_values.pop(TAG_RUN_NAME, None)
        self._log(run_id, points, values, tag_values, linked)
        if name:
            self.store.rename_run(run_id, name)
        return {}

    def _log(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        linked: Sequence[ModelMetric] = (),
    ) -> None:
        """MLflow answers INVALID_PARAMETER_VALUE where modelloop says Conflict (a param given
        another value, a deleted or ended run's params). Points naming a logged model go to
        the run and to the model: its models are checked first, so a missing one fails the
        request before the run has it; points without one cost nothing more."""
        if linked:
            self.models.require_live({m.model_id for m in linked})
        try:
            self.store.log_batch(run_id, metrics, params, tags)
        except Conflict as e:
            raise InvalidArgument(e.message) from None
        if linked:
            self.models.log_metrics(linked)

    def log_inputs(self, p: Params, request: Request) -> dict[str, Any]:
        run_id = p.run_id()
        model_ids = []
        for item in p.objects("models"):
            if not isinstance(item, dict) or not item.get("model_id"):
                raise InvalidArgument("Each model input needs a 'model_id'")
            model_ids.append(check_model_id(item["model_id"]))
        self.models.require_live(model_ids)
        inputs = []
        for item in p.objects("datasets"):
            dataset = item.get("dataset")
            if not isinstance(dataset, dict):
                raise InvalidArgument("Each dataset input needs a 'dataset' object")
            fields = {k: dataset.get(k) for k in ("name", "digest", "source_type", "source")}
            for key, value in fields.items():
                if not isinstance(value, str) or not value:
                    raise InvalidArgument(f"Dataset input field '{key}' is required (a string)")
            optional = {k: dataset.get(k) for k in ("schema", "profile")}
            for key, value in optional.items():
                if value is not None and not isinstance(value, str):
                    raise InvalidArgument(f"Dataset input field '{key}' must be a string")
            inputs.append(
                DatasetInput(
                    **fields,  # type: ignore[arg-type]
                    schema=optional["schema"],
                    profile=optional["profile"],
                    tags=_pairs(item.get("tags") or [], "tags"),
                )
            )
        self.store.log_inputs(run_id, inputs)  # checks that the run is active, as MLflow does
        for model_id in model_ids:
            self.models.record_input(run_id, model_id)
        return {}

    def metric_history(self, p: Params, request: Request) -> dict[str, Any]:
        run_id, key = p.run_id(), p.required("metric_key")
        max_results = _max_results(p, MAX_HISTORY_PAGE, limit=MAX_SEARCH_RESULTS)
        query = ("history", run_id, key)
        offset = page_offset(p.text("page_token"), query)
        series = self.store.metric_history(run_id, key)
        end = min(offset + max_results, len(series))
        answer: dict[str, Any] = {
            "metrics": [
                {
                    "key": key,
                    "value": json_number(float(series.values[i])),
                    "timestamp": int(series.timestamps[i]),
                    "step": int(series.steps[i]),
                }
                for i in range(offset, end)
            ]
        }
        if end < len(series):
            answer["next_page_token"] = page_token(end, query)
        return answer

    def metric_history_bulk_interval(self, p: Params, request: Request) -> dict[str, Any]:
        """Up to ``max_results`` points per run, evenly spread over the steps in range (always
        the first and last), as the charts of MLflow's UI ask for them."""
        run_ids, key = p.strings("run_ids"), p.required("metric_key")
        if not run_ids or len(run_ids) > 100:
            raise InvalidArgument("run_ids must name 1 to 100 runs")
        max_results = _max_results(p, 320, limit=1000)
        start, end = p.integer("start_step"), p.integer("end_step")
        if (start is None) != (end is None):
            raise InvalidArgument("start_step and end_step go together: give both or neither")
        if start is not None and end is not None and start > end:
            raise InvalidArgument(f"start_step ({start}) is after end_step ({end})")
        points: list[dict[str, Any]] = []
        for run_id in run_ids:
            series = self.store.metric_history(run_id, key)
            steps = sorted({int(s) for s in series.steps})
            if start is not None:
                steps = [s for s in steps if start <= s <= (end if end is not None else s)]
            chosen = set(_spread(steps, max_results))
            for i in range(len(series)):
                if int(series.steps[i]) in chosen:
                    points.append(
                        {
                            "key": key,
                            "value": json_number(float(series.values[i])),
                            "timestamp": int(series.timestamps[i]),
                            "step": int(series.steps[i]),
                            "run_id": run_id,
                        }
                    )
        return {"metrics": points}

    # -- answers -------------------------------------------------------------------------------

    def run(self, run: Run) -> dict[str, Any]:
        return self.runs([run])[0]

    def runs(self, runs: Sequence[Run]) -> list[dict[str, Any]]:
        ids = [r.run_id for r in runs]
        latest, inputs = self.store.latest_metrics(ids), self.store.inputs_of_runs(ids)
        models = self.models.models_of_runs(ids)
        return [_run(r, latest[r.run_id], inputs[r.run_id], models[r.run_id]) for r in runs]


def _principal(request: Request) -> str | None:
    principal = request.scope.get("state", {}).get("principal")
    if isinstance(principal, Principal) and principal.verified:
        return principal.name  # a token says who, not a body
    return None


def _pairs(items: Sequence[Any], what: str) -> dict[str, str]:
    """MLflow's ``[{"key", "value"}]`` lists as a mapping (the last value of a key wins)."""
    pairs = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise InvalidArgument(f"Each of {what} must be an object with a string 'key'")
        value = item.get("value", "")
        pairs[item["key"]] = value if isinstance(value, str) else str(value)
    return pairs


def _param_value(key: str, value: str | None) -> str:
    value = value or ""
    if len(value) > MAX_PARAM_VALUE:
        raise InvalidArgument(
            f"Param {key!r} is {len(value)} characters long; MLflow's limit is {MAX_PARAM_VALUE}"
        )
    return value


def _metric(item: Mapping[str, Any]) -> Metric:
    value = item.get("value")
    if isinstance(value, str):
        if value not in _NON_FINITE:
            try:
                value = float(value)
            except ValueError:
                raise InvalidArgument(f"Metric value must be a number, got {value!r}") from None
        else:
            value = _NON_FINITE[value]
    if value is None:
        raise InvalidArgument(f"Metric {item.get('key')!r}: missing value")
    step = _int_field(item.get("step", 0), "step")
    if "timestamp" not in item or item["timestamp"] in (None, ""):
        raise InvalidArgument(f"Metric {item.get('key')!r}: missing timestamp")
    timestamp = _int_field(item["timestamp"], "timestamp")
    return check_metric(item.get("key"), value, step, timestamp)


def _model_metric(run_id: str, item: Mapping[str, Any], point: Metric) -> ModelMetric:
    """A point's link to a logged model (MLflow 3's ``model_id``, ``dataset_name`` and
    ``dataset_digest`` on a metric)."""
    texts = {k: item.get(k) or None for k in ("dataset_name", "dataset_digest")}
    for key, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"Metric {point.key!r}: {key} must be a string")
    return ModelMetric(
        check_model_id(item.get("model_id")),
        *point,
        run_id=run_id,
        dataset_name=texts["dataset_name"],
        dataset_digest=texts["dataset_digest"],
    )


def _int_field(value: object, what: str) -> object:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value if value is not None else 0


def json_number(value: float) -> float | str:
    """Non-finite values as proto3 JSON writes them (JSON has no NaN)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _view_type(p: Params, name: str) -> Lifecycle:
    value = p.values.get(name)
    if value is None or value == "":
        return "active"
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int) or value not in _VIEW_TYPES:
        raise p.wrong(name, "ACTIVE_ONLY, DELETED_ONLY or ALL")
    return _VIEW_TYPES[value]


def _max_results(p: Params, default: int, *, limit: int = MAX_SEARCH_RESULTS) -> int:
    value = p.integer("max_results", default=default)
    assert value is not None
    if not 1 <= value <= limit:
        raise InvalidArgument(f"Invalid value {value} for parameter 'max_results': 1 to {limit}")
    return value


def _spread(steps: Sequence[int], count: int) -> list[int]:
    if len(steps) <= count:
        return list(steps)
    if count == 1:
        return [steps[-1]]
    last = len(steps) - 1
    return sorted({steps[round(i * last / (count - 1))] for i in range(count)})


def _experiment(exp: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": exp.experiment_id,
        "name": exp.name,
        "artifact_location": f"mlflow-artifacts:/{exp.experiment_id}",
        "lifecycle_stage": "active" if exp.deleted_at is None else "deleted",
        "creation_time": exp.created_at,
        "last_update_time": exp.updated_at if exp.updated_at is not None else exp.created_at,
        "tags": [{"key": k, "value": v} for k, v in exp.tags.items()],
    }


def _run(
    run: Run, latest: Sequence[Metric], inputs: Sequence[DatasetInput], models: RunModels
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.run_id,
        "run_uuid": run.run_id,
        "run_name": run.name,
        "experiment_id": run.experiment_id,
        "user_id": run.user,
        "status": run.status.value,
        "start_time": run.start_time,
        "artifact_uri": f"mlflow-artifacts:/{run.experiment_id}/{run.run_id}/artifacts",
        "lifecycle_stage": "active" if run.deleted_at is None else "deleted",
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    tags = {**run.tags, TAG_RUN_NAME: run.name}
    if run.parent_run_id is not None:
        tags.setdefault(TAG_PARENT_RUN, run.parent_run_id)
    return {
        "info": info,
        "data": {
            "metrics": [
                {
                    "key": m.key,
                    "value": json_number(m.value),
                    "timestamp": m.timestamp,
                    "step": m.step,
                }
                for m in latest
            ],
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
        "inputs": {
            "dataset_inputs": [
                {
                    "tags": [{"key": k, "value": v} for k, v in i.tags.items()],
                    "dataset": {
                        "name": i.name,
                        "digest": i.digest,
                        "source_type": i.source_type,
                        "source": i.source,
                        **({"schema": i.schema} if i.schema is not None else {}),
                        **({"profile": i.profile} if i.profile is not None else {}),
                    },
                }
                for i in inputs
            ],
            "model_inputs": [{"model_id": model_id} for model_id in models.inputs],
        },
        "outputs": {
            "model_outputs": [
                {"model_id": model_id, "step": step} for model_id, step in models.outputs
            ]
        },
    }
