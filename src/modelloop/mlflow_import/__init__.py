"""Copy an MLflow tracking store into modelloop: ``modelloop import mlflow SOURCE``.

The source is read with MLflow's own client (``mlflow.MlflowClient``, imported only here, so
modelloop imports without it) and written through :class:`modelloop.Client` and its registry,
so the destination is whatever the settings name: a local store or a modelloop server::

    MLflow                         modelloop
    experiment                 ->  the experiment of the same name (reused if it exists),
                                   with its tags; MLflow's "Default" is modelloop's "default"
    run                        ->  a run tagged modelloop.imported_from = "mlflow:<run id>":
                                   name, user, status, start and end time, params, tags,
                                   every metric point (step, timestamp, value), artifacts,
                                   and the files of its logged models under models/<model id>/
    dataset inputs (log_input) ->  the run's inputs (name, digest, source, schema, profile, and
                                   tags such as mlflow.data.context), as runs/log-inputs records
    mlflow.parentRunId         ->  the parent run
    registered model           ->  the model of the same name: description, tags
    model version              ->  the next version, tagged "mlflow:<name>/<version>", on the
                                   imported run and artifact path (runs:/ sources, and
                                   models:/m-... logged models), with description and tags;
                                   a model MLflow's sklearn, xgboost or lightgbm flavor wrote
                                   is a modelloop model (the registry reads its MLmodel)
    stage (Staging, Production,->  the version tag mlflow.stage, and a note in the report:
      Archived; deprecated)        modelloop has no stages, so the tag has no effect (an
                                   Archived version stays usable, as MLflow's "latest" is)
    alias                      ->  set; a protected alias is *requested* (another user approves)

Every step can be repeated: a run, version or alias already imported is found by its tag and
not copied again, a metric history gets the points the destination lacks (compared as a
multiset of (step, timestamp, value); each batch is written whole or not at all), and
artifacts already present are skipped. So an import killed half-way loses nothing committed,
and running it again completes it.

Not copied, by design, and listed with counts in the report's ``not_copied``: deleted
experiments and runs, traces (GenAI tracing is not part of modelloop), prompts, and runs'
logged-model inputs (a logged model is copied as files of the run that logged it).

The report counts each kind on both sides (what the source holds, what the destination holds of
it afterwards, and what this import added); anything it could not copy is listed with why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelloop.errors import ModelloopError
from modelloop.mlflow_import._copy import _Importer
from modelloop.mlflow_import._report import (
    KINDS,
    TAG_IMPORTED_FROM,
    TAG_STAGE,
    Count,
    ImportReport,
    Progress,
)
from modelloop.mlflow_import._source import _hide_password, _open_source, _reading_mlflow

if TYPE_CHECKING:
    from modelloop.client import Client

__all__ = [
    "KINDS",
    "TAG_IMPORTED_FROM",
    "TAG_STAGE",
    "Count",
    "ImportReport",
    "Progress",
    "import_mlflow",
]


def import_mlflow(
    source: str,
    *,
    client: Client | None = None,
    experiments: Sequence[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the MLflow store at ``source`` (a tracking URI: ``./mlruns``, ``file:///...``,
    ``sqlite:///mlflow.db``, ``postgresql://...``, ``http://host:5000``) into ``client``'s store
    (default: the current settings'); only the experiments named in ``experiments`` when given.
    ``dry_run`` reads both sides and writes nothing: the report's ``new`` is what an import
    would add."""
    from modelloop.client import Client as SdkClient

    with _reading_mlflow():
        mlflow_client, mlflow_errors = _open_source(source)
        owned = client is None
        target = SdkClient() if client is None else client
        report = ImportReport(_hide_password(source), dry_run)
        try:
            _Importer(mlflow_client, source, target, report, dry_run, progress).run(experiments)
        except mlflow_errors as exc:
            message = getattr(exc, "message", None) or str(exc).splitlines()[0]
            raise ModelloopError(
                f"Reading the MLflow store {report.source} failed: {message}"
            ) from None
        finally:
            if owned:
                target.close()
    return report
