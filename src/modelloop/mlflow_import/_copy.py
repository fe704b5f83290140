"""The copy itself: experiments and runs, then registered models, versions and aliases, each
step safe to repeat (see the package docstring)."""

from __future__ import annotations

import math
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from inspect import signature
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelloop.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    ModelloopError,
    NotFound,
)
from modelloop.mlflow_import._report import TAG_IMPORTED_FROM, TAG_STAGE, ImportReport, Progress
from modelloop.mlflow_import._source import _pages
from modelloop.registry.entities import RequestStatus, check_model_name
from modelloop.registry.reference import NoDriftReference
from modelloop.tracking.client import DEFAULT_EXPERIMENT
from modelloop.tracking.entities import (
    DatasetInput,
    Experiment,
    RunSpec,
    RunStatus,
    check_metric,
)

if TYPE_CHECKING:
    from modelloop.client import Client
    from modelloop.registry.client import Registry
    from modelloop.registry.entities import ModelVersion

TAG_PARENT = "mlflow.parentRunId"
ALIAS_REASON = "imported from MLflow"
METRIC_BATCH = 5000  # points per log_batch: one transaction (or request) each
_PAGE = 1000
_COUNT_PAGES = 10  # pages read to count what is not copied (traces): "at least" beyond
_RESTORE = "deleted in MLflow (restored there, the next import copies them)"
_STATUS = {
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.KILLED,
}  # RUNNING and SCHEDULED stay RUNNING


class _Importer:
    def __init__(
        self,
        source: Any,
        uri: str,
        client: Client,
        report: ImportReport,
        dry_run: bool,
        progress: Progress | None,
    ) -> None:
        self.source = source
        self.uri = uri
        self.client = client
        self.store = client.store
        self.report = report
        self.dry_run = dry_run
        self.progress = progress or (lambda stage, done, total: None)
        self.count = report.counts
        self.runs: dict[str, str] = {}  # MLflow run id -> modelloop run id
        self.model_inputs = 0  # MLflow 3 logged models runs took as inputs: not copied

    def run(self, names: Sequence[str] | None) -> None:
        from mlflow.entities import ViewType

        found = list(_pages(self.source.search_experiments, view_type=ViewType.ACTIVE_ONLY))
        if names:
            by_name = {e.name: e for e in found}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise NotFound(
                    f"No experiment {', '.join(map(repr, missing))} in the MLflow store "
                    f"{self.report.source}; it has {', '.join(sorted(by_name)) or 'none'}"
                )
            found = [by_name[n] for n in dict.fromkeys(names)]
        runs: list[tuple[Any, str | None]] = []  # (MLflow run, modelloop experiment id)
        for experiment in found:
            experiment_id = self._experiment(experiment)
            for run in _pages(
                self.source.search_runs,
                experiment_ids=[experiment.experiment_id],
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=_PAGE,
            ):
                runs.append((run, experiment_id))
            if experiment_id is not None:
                self.runs.update(self._imported_runs(experiment_id))
        logged = self._logged_models([e.experiment_id for e in found])
        ordered = _parents_first(runs)
        self.count["runs"].source = len(ordered)
        for done, (run, experiment_id) in enumerate(ordered):
            self.progress("runs", done, len(ordered))
            self._run(run, experiment_id, logged.get(run.info.run_id, []))
        self.progress("runs", len(ordered), len(ordered))
        self._models(only_runs=None if not names else {r.info.run_id for r, _ in ordered})
        self._left_out([e.experiment_id for e in found], everything=not names)

    def _left_out(self, experiment_ids: list[str], *, everything: bool) -> None:
        """Say what the source holds that no import copies, counted where that is cheap:
        deleted experiments (only when importing all) and runs, traces (up to a few pages),
        prompts, and the logged models runs took as inputs."""
        from mlflow.entities import ViewType
        from mlflow.exceptions import MlflowException

        def say(count: int, what: str, why: str, *, at_least: bool = False) -> None:
            if count:
                self.report.not_copied.append(f"{'at least ' * at_least}{count} {what}: {why}")

        if everything:
            deleted = _pages(self.source.search_experiments, view_type=ViewType.DELETED_ONLY)
            say(sum(1 for _ in deleted), "deleted experiment(s) and their runs", _RESTORE)
        if experiment_ids:
            runs = _pages(
                self.source.search_runs,
                experiment_ids=experiment_ids,
                run_view_type=ViewType.DELETED_ONLY,
                max_results=_PAGE,
            )
            say(sum(1 for _ in runs), "deleted run(s)", _RESTORE)
            try:
                search = self.source.search_traces  # newer clients call experiment_ids locations
                scope = (
                    "locations" if "locations" in signature(search).parameters else "experiment_ids"
                )
                query = {scope: experiment_ids, "include_spans": False, "max_results": 500}
                traces, more = _count(search, **query)
            except (MlflowException, NotImplementedError, AttributeError):
                traces, more = 0, False  # MLflow 2 stores and servers: no traces
            say(traces, "trace(s)", "GenAI tracing is not part of modelloop", at_least=more)
        say(
            self.model_inputs,
            "logged model input(s) of runs",
            "logged models are copied as files of the run that logged them, not as models a run "
            "can take as input",
        )
        if everything:
            try:
                prompts, more = _count(self.source.search_prompts, max_results=_PAGE)
            except (MlflowException, NotImplementedError, AttributeError):
                prompts, more = 0, False  # MLflow 2 stores and servers: no prompt registry
            say(
                prompts,
                "prompt(s)",
                "MLflow's prompt registry is not part of modelloop's",
                at_least=more,
            )

    # -- experiments and runs --------------------------------------------------------------------

    def _experiment(self, experiment: Any) -> str | None:
        """The modelloop experiment of this name (created unless dry), or None (dry, missing),
        with the MLflow experiment's tags. MLflow's default experiment ("Default", id 0) is
        modelloop's ("default"), as on modelloop's MLflow API."""
        count = self.count["experiments"]
        count.source += 1
        name = experiment.name
        if experiment.experiment_id == "0" and name == "Default":
            name = DEFAULT_EXPERIMENT
        tags = dict(experiment.tags or {})
        self.count["experiment_tags"].source += len(tags)
        existing = self.store.get_experiment_by_name(name)
        if existing is None:
            count.new += 1
            if self.dry_run:
                self.count["experiment_tags"].new += len(tags)
                return None
            description = tags.get("mlflow.note.content") or None
            existing = self.store.create_experiment(name, description)
        count.imported += 1
        self._experiment_tags(existing, tags)
        return existing.experiment_id

    def _experiment_tags(self, experiment: Experiment, tags: dict[str, str]) -> None:
        count = self.count["experiment_tags"]
        current = experiment.tags
        stale = {k: v for k, v in tags.items() if current.get(k) != v}
        count.new += len(stale)
        if stale and not self.dry_run:
            self.store.set_experiment_tags(experiment.experiment_id, stale)
            current = self.store.get_experiment(experiment.experiment_id).tags
        count.imported += sum(current.get(k) == v for k, v in tags.items())

    def _imported_runs(self, experiment_id: str) -> dict[str, str]:
        """MLflow run id -> modelloop run id of the runs an earlier import made."""
        found: dict[str, str] = {}
        query = f"tags.{TAG_IMPORTED_FROM} LIKE 'mlflow:%'"
        offset = 0
        while True:
            page = self.store.search_runs([experiment_id], query, (), _PAGE, offset)
            for run in page:
                found[run.tags[TAG_IMPORTED_FROM].removeprefix("mlflow:")] = run.run_id
            if len(page) < _PAGE:
                return found
            offset += len(page)

    def _logged_models(self, experiment_ids: list[str]) -> dict[str, list[Any]]:
        """MLflow run id -> the models (MLflow 3) it logged, whose files live outside the run's
        artifacts; a store or server without logged models has none."""
        from mlflow.exceptions import MlflowException

        by_run: dict[str, list[Any]] = {}
        try:
            for model in _pages(
                self.source.search_logged_models, experiment_ids=experiment_ids, max_results=100
            ):
                if model.source_run_id:
                    by_run.setdefault(model.source_run_id, []).append(model)
        except (MlflowException, NotImplementedError, AttributeError):
            return {}  # MLflow 2 stores and servers: models are run artifacts
        return by_run

    def _run(self, run: Any, experiment_id: str | None, logged: list[Any]) -> None:
        mlflow_id = run.info.run_id
        inputs = self.source.get_run(mlflow_id).inputs  # a search leaves models out (SQL store)
        datasets = _dataset_inputs(inputs)
        self.model_inputs += len(getattr(inputs, "model_inputs", None) or [])
        params = dict(run.data.params)
        tags = dict(run.data.tags)
        self.count["params"].source += len(params)
        self.count["tags"].source += len(tags)
        target_id = self.runs.get(mlflow_id)
        if target_id is None:
            if self.dry_run or experiment_id is None:
                self.count["runs"].new += 1
                self._count_source_only(run, logged, len(datasets))
                return
            try:
                target_id = self._create_run(run, experiment_id, params, tags)
            except (InvalidArgument, NotFound, Conflict) as exc:
                self.report.problems.append(f"run {mlflow_id}: not copied: {exc.message}")
                self._count_source_only(run, logged, len(datasets))
                return
            self.count["runs"].new += 1
            self.runs[mlflow_id] = target_id
        self.count["runs"].imported += 1
        self._params_and_tags(target_id, params, tags)
        self._inputs(mlflow_id, target_id, datasets)
        for key in sorted(run.data.metrics):
            self._metric(mlflow_id, target_id, key)
        present = {a.path: a.size for a in self.store.list_artifacts(target_id)}
        for path, size in self._artifact_files(mlflow_id, ""):
            self._artifact(target_id, present, path, size, _RunFile(self.source, mlflow_id, path))
        for model in logged:
            for path, size in self._artifact_files(None, "", model_id=model.model_id):
                target = f"models/{model.model_id}/{path}"
                fetch = _ModelFile(model.artifact_location, path, self.uri)
                self._artifact(target_id, present, target, size, fetch)
        self._end(run, target_id)

    def _create_run(
        self, run: Any, experiment_id: str, params: dict[str, str], tags: dict[str, str]
    ) -> str:
        info = run.info
        parent = tags.get(TAG_PARENT)
        created = self.store.create_run(
            RunSpec(
                experiment_id=experiment_id,
                name=info.run_name or None,
                parent_run_id=self.runs.get(parent) if parent else None,
                user=info.user_id or "unknown",
                params=params,
                tags={**tags, TAG_IMPORTED_FROM: f"mlflow:{info.run_id}"},
                start_time=info.start_time,
            )
        )
        self.count["params"].new += len(params)
        self.count["tags"].new += len(tags)
        return created.run_id

    def _params_and_tags(
        self, target_id: str, params: dict[str, str], tags: dict[str, str]
    ) -> None:
        """Count what the destination holds of them, completing what an earlier import lacks
        (a tag changed in MLflow since is brought up to date; params are immutable)."""
        current = self.store.get_run(target_id)
        missing_params = {k: v for k, v in params.items() if k not in current.params}
        stale_tags = {k: v for k, v in tags.items() if current.tags.get(k) != v}
        if (missing_params or stale_tags) and not self.dry_run:
            self.store.log_batch(target_id, params=missing_params, tags=stale_tags)
            current = self.store.get_run(target_id)
            self.count["params"].new += len(missing_params)
            self.count["tags"].new += len(stale_tags)
        elif self.dry_run:
            self.count["params"].new += len(missing_params)
            self.count["tags"].new += len(stale_tags)
        self.count["params"].imported += sum(current.params.get(k) == v for k, v in params.items())
        for key, value in params.items():
            if key in current.params and current.params[key] != value:
                self.report.problems.append(
                    f"run {target_id}: param {key!r} is {current.params[key]!r} in modelloop "
                    f"but {value!r} in MLflow (params cannot change)"
                )
        self.count["tags"].imported += sum(current.tags.get(k) == v for k, v in tags.items())

    def _inputs(self, mlflow_id: str, target_id: str, inputs: list[DatasetInput]) -> None:
        """Log the datasets (``mlflow.log_input``) the destination run lacks, through the store
        call modelloop's MLflow API (``runs/log-inputs``) uses; a dataset is one per run by
        (name, digest) there as in MLflow, so one already logged is not logged again."""
        count = self.count["dataset_inputs"]
        count.source += len(inputs)
        held = {(i.name, i.digest) for i in self.store.run_inputs(target_id)}
        missing = [i for i in inputs if (i.name, i.digest) not in held]
        count.new += len(missing)
        if missing and not self.dry_run:
            try:
                self.store.log_inputs(target_id, missing)
            except (InvalidArgument, Conflict) as exc:
                count.new -= len(missing)
                self.report.problems.append(
                    f"run {mlflow_id}: dataset inputs not copied: {exc.message}"
                )
            held = {(i.name, i.digest) for i in self.store.run_inputs(target_id)}
        count.imported += sum((i.name, i.digest) in held for i in inputs)

    def _metric(self, mlflow_id: str, target_id: str, key: str) -> None:
        """Copy the points of one history the destination lacks: compared as a multiset of
        (step, timestamp, value), so a resumed import neither repeats nor skips a point, in
        whatever order either side lists them."""
        history = self.source.get_metric_history(mlflow_id, key)
        count = self.count["metric_points"]
        count.source += len(history)
        try:
            points = [check_metric(m.key, m.value, m.step, m.timestamp) for m in history]
        except InvalidArgument as exc:
            self.report.problems.append(
                f"run {mlflow_id}: metric {key!r} not copied: {exc.message}"
            )
            return
        wanted = Counter(_identity(p.step, p.timestamp, p.value) for p in points)
        held = self._held(target_id, key)
        missing = wanted - held
        todo = []
        for point in points:
            identity = _identity(point.step, point.timestamp, point.value)
            if missing[identity] > 0:
                missing[identity] -= 1
                todo.append(point)
        count.new += len(todo)
        if not self.dry_run and todo:
            for start in range(0, len(todo), METRIC_BATCH):
                self.store.log_batch(target_id, metrics=todo[start : start + METRIC_BATCH])
            held = self._held(target_id, key)
        count.imported += sum((wanted & held).values())

    def _held(self, target_id: str, key: str) -> Counter[tuple[int, int, float | str]]:
        series = self.store.metric_history(target_id, key)
        return Counter(
            _identity(int(s), int(t), float(v))
            for s, t, v in zip(series.steps, series.timestamps, series.values, strict=True)
        )

    def _count_source_only(self, run: Any, logged: list[Any], datasets: int) -> None:
        """A run that is not (or cannot be) in the destination: count what the source holds."""
        self.count["params"].new += len(run.data.params) if self.dry_run else 0
        self.count["tags"].new += len(run.data.tags) if self.dry_run else 0
        self.count["dataset_inputs"].source += datasets
        self.count["dataset_inputs"].new += datasets if self.dry_run else 0
        for key in run.data.metrics:
            points = len(self.source.get_metric_history(run.info.run_id, key))
            self.count["metric_points"].source += points
            self.count["metric_points"].new += points if self.dry_run else 0
        files = list(self._artifact_files(run.info.run_id, ""))
        for model in logged:
            files += self._artifact_files(None, "", model_id=model.model_id)
        for _, size in files:
            self._add_artifact(size, imported=False, new=self.dry_run)

    def _artifact_files(
        self, run_id: str | None, path: str, *, model_id: str | None = None
    ) -> list[tuple[str, int]]:
        """(path, size) of every file under ``path`` of a run's or a logged model's artifacts."""
        if model_id is not None:
            listed = self.source.list_logged_model_artifacts(model_id, path or None)
        else:
            listed = self.source.list_artifacts(run_id, path or None)
        files: list[tuple[str, int]] = []
        for info in listed:
            if info.is_dir:
                files += self._artifact_files(run_id, info.path, model_id=model_id)
            else:
                files.append((info.path, int(info.file_size or 0)))
        return files

    def _artifact(
        self,
        target_id: str,
        present: dict[str, int],
        path: str,
        size: int,
        fetch: Callable[[str], str],
    ) -> None:
        if path in present and present[path] == size:
            self._add_artifact(size, imported=True, new=False)
            return
        if self.dry_run:
            self._add_artifact(size, imported=False, new=True)
            return
        with tempfile.TemporaryDirectory(prefix="modelloop-mlflow-") as tmp:
            local = Path(fetch(tmp))
            try:
                info = self.store.put_artifact(target_id, path, local)
            except (InvalidArgument, Conflict) as exc:
                self.report.problems.append(f"artifact {path!r}: not copied: {exc.message}")
                self._add_artifact(size, imported=False, new=False)
                return
        present[path] = info.size
        self._add_artifact(info.size, imported=info.size == size, new=True, source=size)

    def _add_artifact(
        self, size: int, *, imported: bool, new: bool, source: int | None = None
    ) -> None:
        files, data = self.count["artifact_files"], self.count["artifact_bytes"]
        files.source += 1
        data.source += size if source is None else source
        if imported:
            files.imported += 1
            data.imported += size
        if new:
            files.new += 1
            data.new += size

    def _end(self, run: Any, target_id: str) -> None:
        status = _STATUS.get(run.info.status)
        if status is None or self.dry_run:
            return
        current = self.store.get_run(target_id)
        if current.status is RunStatus.RUNNING:
            self.store.end_run(target_id, status, end_time=run.info.end_time)

    # -- registry ------------------------------------------------------------------------------

    def _models(self, only_runs: set[str] | None) -> None:
        """Registered models whose versions came from the imported runs (all of them when no
        experiment was named), their versions and aliases."""
        models = list(_pages(self.source.search_registered_models, max_results=_PAGE))
        chosen: list[tuple[Any, list[Any]]] = []
        for model in models:
            escaped = model.name.replace("'", "\\'")
            versions = list(
                _pages(
                    self.source.search_model_versions,
                    filter_string=f"name='{escaped}'",
                    max_results=_PAGE,
                )
            )
            versions.sort(key=lambda v: int(v.version))
            if only_runs is not None and not any(v.run_id in only_runs for v in versions):
                continue
            chosen.append((model, versions))
        total = sum(len(v) for _, v in chosen)
        done = 0
        registry = self.client.registry
        for model, versions in chosen:
            self.progress("versions", done, total)
            self._model(registry, model, versions)
            done += len(versions)
        self.progress("versions", total, total)

    def _model(self, registry: Registry, model: Any, versions: list[Any]) -> None:
        count = self.count["models"]
        count.source += 1
        self.count["versions"].source += len(versions)
        aliases = {str(a): int(v) for a, v in (model.aliases or {}).items()}
        self.count["aliases"].source += len(aliases)
        try:
            name = check_model_name(model.name)
        except InvalidArgument as exc:
            self.report.problems.append(f"model {model.name!r}: not copied: {exc.message}")
            return
        try:
            existing = registry.get_model(name)
        except NotFound:
            existing = None
        count.new += existing is None
        if existing is None and self.dry_run:
            self.count["versions"].new += len(versions)
            self.count["aliases"].new += len(aliases)
            return
        tags = dict(model.tags or {})
        if existing is None:
            registry.store.create_registered_model(
                name, actor=registry.actor, description=model.description or None, tags=tags
            )
        elif not self.dry_run and {k: existing.tags.get(k) for k in tags} != tags:
            registry.store.update_registered_model(name, actor=registry.actor, tags=tags)
        count.imported += 1
        mapped = self._versions(registry, name, versions)
        self._aliases(registry, name, aliases, mapped)

    def _versions(self, registry: Registry, name: str, versions: list[Any]) -> dict[int, int]:
        """MLflow version -> modelloop version, importing the ones missing; a version's MLflow
        stage is kept as its tag ``mlflow.stage`` (modelloop has no stages)."""
        count = self.count["versions"]
        mapped: dict[int, int] = {}
        earlier: dict[int, ModelVersion] = {}
        for existing in registry.list_versions(name):
            origin = existing.tags.get(TAG_IMPORTED_FROM, "")
            prefix = f"mlflow:{name}/"
            if origin.startswith(prefix) and origin[len(prefix) :].isdigit():
                mapped[int(origin[len(prefix) :])] = existing.version
                earlier[int(origin[len(prefix) :])] = existing
        staged = {int(v.version): _stage(v) for v in versions if _stage(v)}
        if staged:
            listed = ", ".join(f"{number} {stage}" for number, stage in staged.items())
            self.report.notes.append(
                f"{name}: MLflow stages (deprecated in MLflow 3; modelloop has none) are kept as "
                f"the version tag {TAG_STAGE}, with no other effect: MLflow version {listed}"
            )
        for version in versions:
            number = int(version.version)
            if number in mapped:
                count.imported += 1
                self._restage(registry, earlier[number], _stage(version))
                continue
            where = self._version_package(version)
            if isinstance(where, str):
                self.report.problems.append(f"{name} version {number}: not copied: {where}")
                continue
            count.new += 1
            if self.dry_run:
                continue
            run_id, artifact_path = where
            tags = dict(version.tags or {})
            tags[TAG_IMPORTED_FROM] = f"mlflow:{name}/{number}"
            if number in staged:
                tags[TAG_STAGE] = staged[number]
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", NoDriftReference)
                    created = registry.register_model(
                        run_id,
                        name,
                        artifact_path=artifact_path,
                        description=version.description or None,
                        tags=tags,
                    )
                self._pass_on(caught)
            except (InvalidArgument, NotFound, Conflict) as exc:
                count.new -= 1
                self.report.problems.append(f"{name} version {number}: not copied: {exc.message}")
                continue
            mapped[number] = created.version
            count.imported += 1
        return mapped

    def _restage(self, registry: Registry, ours: ModelVersion, stage: str | None) -> None:
        """The stage tag of a version imported earlier, brought up to date with MLflow's."""
        if ours.tags.get(TAG_STAGE) == stage or self.dry_run:
            return
        registry.store.update_model_version(
            ours.name,
            ours.version,
            actor=registry.actor,
            tags={TAG_STAGE: stage} if stage else None,
            delete_tags=() if stage else (TAG_STAGE,),
        )

    def _pass_on(self, caught: list[warnings.WarningMessage]) -> None:
        """A version without a drift reference is a note of the report (MLflow keeps no
        training data profile to make one from); other warnings go on as they came."""
        for warning in caught:
            if issubclass(warning.category, NoDriftReference):
                self.report.notes.append(str(warning.message))
            else:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )

    def _version_package(self, version: Any) -> tuple[str, str] | str:
        """(modelloop run id, artifact path) of a version's files, or why there are none."""
        source = str(version.source or "")
        run_id = version.run_id or None
        path: str | None = None
        if source.startswith("runs:/"):
            run_id, _, path = source.removeprefix("runs:/").partition("/")
        elif source.startswith("models:/m-"):
            model_id = source.removeprefix("models:/").split("/")[0]
            from mlflow.exceptions import MlflowException

            try:
                logged = self.source.get_logged_model(model_id)
            except MlflowException:
                return f"its source {source} is a logged model the MLflow store does not hold"
            run_id, path = logged.source_run_id, f"models/{model_id}"
        elif run_id and f"/{run_id}/artifacts/" in source:
            path = source.split(f"/{run_id}/artifacts/", 1)[1]
        if not run_id:
            return f"its source {source!r} names no run"
        target = self.runs.get(run_id)
        if target is None:
            return f"its run {run_id} was not imported (deleted, or in an experiment not chosen)"
        if not path:
            return f"its source {source!r} names no artifact path inside run {run_id}"
        return target, path.strip("/")

    def _aliases(
        self, registry: Registry, name: str, aliases: dict[str, int], mapped: dict[int, int]
    ) -> None:
        count = self.count["aliases"]
        current = registry.get_model(name).aliases
        pending = {
            (r.alias, r.version): r.request_id
            for r in registry.list_requests(name, RequestStatus.PENDING)
        }
        for alias, mlflow_version in sorted(aliases.items()):
            version = mapped.get(mlflow_version)
            if version is None:
                self.report.problems.append(
                    f"alias {name}@{alias}: not set: its version {mlflow_version} was not copied"
                )
                continue
            if current.get(alias) == version:
                count.imported += 1
                continue
            if (alias, version) in pending:
                self._awaits(name, alias, version, pending[(alias, version)])
                continue
            count.new += 1
            if self.dry_run:
                continue
            try:
                registry.set_alias(name, alias, version, reason=ALIAS_REASON)
            except Forbidden:  # protected: four eyes are not bypassed by an import
                count.new -= 1
                try:
                    request = registry.request_alias(name, alias, version, ALIAS_REASON)
                except ModelloopError as exc:
                    self.report.problems.append(f"alias {name}@{alias}: not set: {exc.message}")
                    continue
                self._awaits(name, alias, version, request.request_id)
                continue
            except (InvalidArgument, Conflict, NotFound) as exc:
                count.new -= 1
                self.report.problems.append(f"alias {name}@{alias}: not set: {exc.message}")
                continue
            count.imported += 1

    def _awaits(self, name: str, alias: str, version: int, request_id: str) -> None:
        self.report.problems.append(
            f"alias {name}@{alias} is protected: requested for version {version}, awaiting "
            f"approval by another user (modelloop models approve {request_id})"
        )


@dataclass(frozen=True)
class _RunFile:
    """Downloads one file of an MLflow run's artifacts into a directory, answering its path."""

    source: Any
    run_id: str
    path: str

    def __call__(self, directory: str) -> str:
        return str(self.source.download_artifacts(self.run_id, self.path, directory))


@dataclass(frozen=True)
class _ModelFile:
    """Downloads one file of an MLflow 3 logged model (stored beside the run, not in it)."""

    location: str
    path: str
    tracking_uri: str

    def __call__(self, directory: str) -> str:
        from mlflow.artifacts import download_artifacts

        uri = f"{self.location.rstrip('/')}/{self.path}"
        return download_artifacts(
            artifact_uri=uri, dst_path=directory, tracking_uri=self.tracking_uri
        )


def _stage(version: Any) -> str | None:
    """An MLflow version's stage: Staging, Production or Archived; None without one."""
    stage = str(getattr(version, "current_stage", None) or "None")
    return None if stage == "None" else stage


def _dataset_inputs(inputs: Any) -> list[DatasetInput]:
    """The datasets of an MLflow run's inputs (``mlflow.log_input``), as modelloop records
    them, one per (name, digest); the input's tags say how (``mlflow.data.context``). A store
    older than MLflow 2.4 has none."""
    found: dict[tuple[str, str], DatasetInput] = {}
    for item in getattr(inputs, "dataset_inputs", None) or []:
        data = item.dataset
        found.setdefault(
            (data.name, data.digest),
            DatasetInput(
                data.name,
                data.digest,
                data.source_type,
                data.source,
                data.schema or None,
                data.profile or None,
                {tag.key: tag.value for tag in item.tags or []},
            ),
        )
    return list(found.values())


def _count(search: Callable[..., Any], **query: Any) -> tuple[int, bool]:
    """How many results a paged search has, reading at most ``_COUNT_PAGES`` pages, and
    whether there are more."""
    token, total = None, 0
    for _ in range(_COUNT_PAGES):
        page = search(**query, page_token=token)
        total += len(page)
        token = page.token
        if not token:
            return total, False
    return total, True


def _identity(step: int, timestamp: int, value: float) -> tuple[int, int, float | str]:
    """A metric point as a multiset element (NaN equals NaN here)."""
    return step, timestamp, "nan" if math.isnan(value) else value


def _parents_first(runs: list[tuple[Any, str | None]]) -> list[tuple[Any, str | None]]:
    """Runs in start order, each after its parent (a child is created pointing at it)."""
    by_id = {run.info.run_id: (run, exp) for run, exp in runs}
    ordered: list[tuple[Any, str | None]] = []
    placed: set[str] = set()

    def place(run_id: str, seen: set[str]) -> None:
        if run_id in placed or run_id in seen:
            return
        run, exp = by_id[run_id]
        parent = run.data.tags.get(TAG_PARENT)
        if parent in by_id:
            place(parent, seen | {run_id})
        placed.add(run_id)
        ordered.append((run, exp))

    for run, _ in sorted(runs, key=lambda r: (r[0].info.start_time or 0, r[0].info.run_id)):
        place(run.info.run_id, set())
    return ordered
