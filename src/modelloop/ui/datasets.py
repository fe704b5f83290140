"""The Datasets section: every dataset, one dataset's versions, and one version's schema,
profile, lineage, first rows and contract check.

Pages read through the :class:`~modelloop.datasets.store.DatasetStore` protocol (here the
server's own SQL store, which ``ml.log_dataset`` writes locally or through this server); the runs
that logged and read a version come from its lineage edges (``ml.log_dataset`` /
``ml.load_dataset`` inside a run record them), what it was made from from
the lineage SDK, and the models trained from it from the registry and lineage: the versions
that name its content digest among their ``dataset_digests``, or whose lineage (the graph
``modelloop lineage models:/NAME/V`` walks) reaches it (the relation is shown, so a guess never
passes for a declaration).

The profile shown is the one computed over every row when the version was logged; the
distribution chart draws its stored histogram (numbers: 20 bins of about 5% of the values each,
drawn as a density) or top values, with the Plotly of the other charts. A numeric column that
drift tests as categorical (few values: a 0/1 flag, a -1/0/1 code) is drawn per value from the
profile's value counts, and its kind says so; a profile stored before value counts were kept
falls back to bins, and the chart's note says why. The preview reads the
first :data:`PREVIEW_ROWS` rows of the version's own Parquet file, never a path or a format a
request names.

Contract checks are stored with the version they checked (``ml.log_dataset(df, name,
contract=...)`` keeps the passing report of the version it logs, ``modelloop datasets validate
NAME@VERSION`` keeps each result): the list shows whether each dataset's newest version passed,
failed or was never checked, and a version page lists its stored checks, newest first, each
expectation with pass or fail, how many rows broke it and examples. Below them a contract can be
checked on demand: paste one in the YAML that ``modelloop datasets validate`` reads; that check
only reads, so it is not stored (and viewers may run it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from modelloop.datasets.entities import (
    Dataset,
    DatasetValidation,
    DatasetVersion,
    check_dataset_name,
)
from modelloop.datasets.profile import (
    DISCRETE_VALUES,
    DISCRETE_WHOLE_VALUES,
    QUANTILES,
    ColumnProfile,
    categorical_for_drift,
    number_label,
)
from modelloop.datasets.sql import SqlDatasetStore
from modelloop.datasets.store import DatasetStore
from modelloop.errors import Forbidden, InvalidArgument, ModelloopError, NotFound
from modelloop.tracking.entities import Run
from modelloop.ui.app import Pages
from modelloop.ui.forms import read_form, same_origin
from modelloop.ui.lineage import lineage_rows

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.datasets.contracts import Contract, ValidationReport
    from modelloop.registry.entities import ModelVersion
    from modelloop.registry.sql import SqlRegistryStore
    from modelloop.tracking.client import Client

PREVIEW_ROWS = 20
RUNS_SHOWN = 100  # of the runs that logged, and that read, a version
TOP_SHOWN = 5  # top values per column in the profile table (the chart shows all stored)
CELL_CHARS = 80
CONTRACT_CHARS = 64_000
CHECKS_SHOWN = 20  # stored contract checks on a version page, newest first
_SHOWN_QUANTILES = tuple(str(q) for q in QUANTILES[1:-1])  # min and max have their own columns


def register(router: APIRouter, pages: Pages) -> None:
    """``/ui/datasets``, ``/ui/datasets/{name}`` and ``/ui/datasets/{name}/versions/{n}``."""
    from modelloop.registry.sql import SqlRegistryStore
    from modelloop.tracking.client import Client

    datasets: DatasetStore = SqlDatasetStore(pages.store.db, pages.store.blobs)
    registry = SqlRegistryStore(pages.store.db, protected_aliases=pages.settings.protected_aliases)
    client = Client(settings=pages.settings, store=pages.store)  # for the lineage SDK
    view = _Views(pages, datasets, registry, client)

    @router.get("/ui/datasets")
    def datasets_page() -> HTMLResponse:
        return pages.guarded(view.list_page)

    @router.get("/ui/datasets/{name}")
    def dataset_page(name: str) -> HTMLResponse:
        return pages.guarded(lambda: view.dataset_page(name))

    @router.get("/ui/datasets/{name}/versions/{version}")
    def version_page(name: str, version: str) -> HTMLResponse:
        return pages.guarded(lambda: view.version_page(name, version))

    @router.post("/ui/datasets/{name}/versions/{version}/validate")
    async def validate(request: Request, name: str, version: str) -> HTMLResponse:
        """Check the version against a pasted contract: a read (viewers may), nothing is
        stored."""
        if not same_origin(request):
            return pages.guarded(_refused)
        text = read_form(await request.body()).get("contract", "")
        return pages.guarded(lambda: view.version_page(name, version, contract_text=text))


def _refused() -> HTMLResponse:
    raise Forbidden("The contract form was posted from another site")


# -- what the pages show -----------------------------------------------------------------------


@dataclass(frozen=True)
class VersionChange:
    """What a version changed against the one before it."""

    rows: int  # difference in row count
    added: list[str]
    removed: list[str]
    retyped: list[tuple[str, str, str]]  # column, dtype before, dtype now


@dataclass(frozen=True)
class ColumnRow:
    profile: ColumnProfile
    kind: str  # the profile's kind; for numbers, how drift tests them when that differs
    summary: str  # range, or top values, in one line
    quantiles: list[float | None]  # at _SHOWN_QUANTILES, numbers only
    top: list[tuple[str, float]]
    categories: list[str]  # a categorical's categories, in order


@dataclass(frozen=True)
class TrainedModel:
    version: ModelVersion
    via: str  # how it is tied to the dataset version


@dataclass(frozen=True)
class Expectation:
    """One rule of a pasted contract, as checked on the version."""

    rule: str
    column: str | None
    expected: str
    status: str  # passed | failed | not checked
    failed: int = 0
    total: int = 0
    message: str = ""
    examples: str = ""


@dataclass
class ContractCheck:
    text: str
    error: str | None = None
    summary: str = ""
    ok: bool = False
    expectations: list[Expectation] = field(default_factory=list)


@dataclass(frozen=True)
class ContractStatus:
    """How the newest version of a dataset fared against a contract: passed, failed or not
    checked (its newest stored check; an older version's does not speak for it)."""

    status: str
    summary: str = ""
    checked: DatasetValidation | None = None


def _status(checked: DatasetValidation | None) -> ContractStatus:
    if checked is None:
        return ContractStatus("not checked")
    summary = checked.report.summary().splitlines()[0]
    return ContractStatus("passed" if checked.ok else "failed", summary, checked)


@dataclass(frozen=True)
class StoredCheck:
    """A stored check of the version, as the page lists it."""

    validation: DatasetValidation
    summary: str
    contract: str  # the contract's settings that differ from the defaults, as YAML
    expectations: list[Expectation]


@dataclass(frozen=True)
class _Views:
    pages: Pages
    datasets: DatasetStore
    registry: SqlRegistryStore
    client: Any

    def list_page(self) -> HTMLResponse:
        latest = {v.name: v for v in self.datasets.latest_versions()}
        checked = self.datasets.latest_validations()
        found = self.datasets.list_datasets()
        return self.pages.render(
            "datasets.html",
            section="datasets",
            title="Datasets",
            rows=[(d, latest.get(d.name), _status(checked.get(d.name))) for d in found],
        )

    def dataset_page(self, name: str) -> HTMLResponse:
        dataset = self._dataset(name)
        versions = self.datasets.list_versions(dataset.name)
        changes = [None, *(_change(a, b) for a, b in itertools.pairwise(versions))]
        runs = _runs(self.pages, [v.run_id for v in versions if v.run_id])
        return self.pages.render(
            "datasets_dataset.html",
            section="datasets",
            title=f"Dataset {dataset.name}",
            dataset=dataset,
            versions=list(reversed(list(zip(versions, changes, strict=True)))),
            runs=runs,
        )

    def version_page(
        self, name: str, version_text: str, contract_text: str | None = None
    ) -> HTMLResponse:
        dataset = self._dataset(name)
        version = self.datasets.get_version(dataset.name, _version_number(version_text))
        check = _check(self.datasets, version, contract_text) if contract_text is not None else None
        stored = [
            _stored(v, version) for v in self.datasets.validations(version, limit=CHECKS_SHOWN)
        ]
        used = self.datasets.version_runs(version, limit=RUNS_SHOWN)
        runs = _runs(self.pages, [*used.logged_by, *used.read_by])
        preview, preview_note = _preview(self.datasets, version)
        return self.pages.render(
            "datasets_version.html",
            400 if check is not None and check.error else 200,
            section="datasets",
            title=f"Dataset {version.ref}",
            dataset=dataset,
            version=version,
            previous=version.version - 1 if version.version > 1 else None,
            following=(
                version.version + 1
                if dataset.latest_version and version.version < dataset.latest_version
                else None
            ),
            size=self.datasets.data_size(version),
            columns=[_column_row(version, c) for c in version.profile.columns.values()],
            shown_quantiles=[_percent_label(q) for q in _SHOWN_QUANTILES],
            chart={c.name: _chart(c) for c in version.profile.columns.values()},
            lineage=lineage_rows(self.client, f"dataset:{version.ref}"),
            logged_by=[(i, runs.get(i)) for i in used.logged_by],
            read_by=[(i, runs.get(i)) for i in used.read_by],
            runs_shown=RUNS_SHOWN,
            models=_trained(self.registry, self.client, version),
            preview=preview,
            preview_note=preview_note,
            check=check,
            stored=stored,
            checks_shown=CHECKS_SHOWN,
        )

    def _dataset(self, name: str) -> Dataset:
        name = check_dataset_name(name)
        for dataset in self.datasets.list_datasets():
            if dataset.name == name:
                return dataset
        raise NotFound(f"No dataset {name!r}")


def _version_number(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) < 2**31:
        raise InvalidArgument(f"Invalid dataset version {text!r}: versions are integers from 1")
    return int(text)


def _change(before: DatasetVersion, after: DatasetVersion) -> VersionChange:
    old, new = before.schema.columns, after.schema.columns
    return VersionChange(
        rows=after.num_rows - before.num_rows,
        added=[c for c in new if c not in old],
        removed=[c for c in old if c not in new],
        retyped=[(c, old[c], new[c]) for c in new if c in old and old[c] != new[c]],
    )


def _runs(pages: Pages, ids: Iterable[str]) -> dict[str, Run | None]:
    """Each run by id (None when it no longer exists), for its name next to its link."""
    found: dict[str, Run | None] = {}
    for run_id in dict.fromkeys(ids):
        try:
            found[run_id] = pages.store.get_run(run_id)
        except ModelloopError:
            found[run_id] = None
    return found


_REACHED = {  # how models_from found a version, as the page says it
    "read": "its lineage: registered from a run that read it",
    "upstream": "its lineage: registered from a run downstream of one that read it",
    "reference": "its drift reference was fitted on it",
}


def _trained(
    registry: SqlRegistryStore, client: Client, version: DatasetVersion
) -> list[TrainedModel]:
    """Model versions that declare this content as their data, or whose lineage (what
    ``modelloop lineage models:/NAME/V`` walks) reaches this version."""
    from modelloop.pipelines.lineage import models_from

    reached = models_from(version.ref, client)
    found = []
    for model in registry.list_registered_models():
        for candidate in registry.list_model_versions(model.name):
            roles = sorted(r for r, d in candidate.dataset_digests.items() if d == version.digest)
            how = reached.get(f"{candidate.name}/{candidate.version}")
            if roles:
                found.append(TrainedModel(candidate, f"declares it as {', '.join(roles)} data"))
            elif how is not None:
                found.append(TrainedModel(candidate, _REACHED[how]))
    return found


# -- the profile -------------------------------------------------------------------------------


def _column_row(version: DatasetVersion, column: ColumnProfile) -> ColumnRow:
    top = list((column.top or {}).items())
    quantiles = column.quantiles or {}
    return ColumnRow(
        profile=column,
        kind=_kind(column),
        summary=_summary(column, top),
        quantiles=[quantiles.get(q) for q in _SHOWN_QUANTILES] if quantiles else [],
        top=top[:TOP_SHOWN],
        categories=version.schema.categories.get(column.name, []),
    )


def _tested_per_value(column: ColumnProfile) -> bool | None:
    """Whether drift tests this numeric column as categories (``categorical_for_drift``, as a
    reference fitted on this data types it); None when the profile cannot tell: stored before
    value counts were kept, with more values than are categorical whatever they are."""
    if column.kind != "numeric" or column.histogram is None:  # no finite value
        return False
    if column.value_counts is not None:
        return categorical_for_drift([float(v) for v in column.value_counts])
    if column.distinct <= DISCRETE_VALUES:
        return True
    return None if column.distinct <= DISCRETE_WHOLE_VALUES else False


def _kind(column: ColumnProfile) -> str:
    tested = _tested_per_value(column)
    values = f"{len(column.value_counts or ()) or column.distinct:,} values"
    if tested:
        return f"numeric, tested as categorical ({values})"
    if tested is None:
        return f"numeric ({values}: tested as categorical if whole numbers)"
    return column.kind


def _summary(column: ColumnProfile, top: Sequence[tuple[str, float]]) -> str:
    if column.kind == "numeric" and isinstance(column.min, float | int):
        assert isinstance(column.max, float | int)
        return f"{column.min:.6g} to {column.max:.6g}, mean {_number(column.mean)}"
    if column.kind == "datetime" and column.min is not None:
        return f"{column.min} to {column.max}"
    if top:
        shown = ", ".join(f"{_clip(k, 30)} {v:.1%}" for k, v in top[:3])
        return shown + (f" (+{column.distinct - 3} more)" if column.distinct > 3 else "")
    return ""


def _chart(column: ColumnProfile) -> dict[str, Any]:
    """What the distribution chart draws for one column, from the stored profile."""
    histogram = column.histogram
    tested = _tested_per_value(column)
    if tested and column.value_counts:  # drift compares its values: one bar each
        total = sum(column.value_counts.values())
        return {
            "kind": "values",
            "labels": [number_label(float(v)) for v in column.value_counts],
            "share": [c / total for c in column.value_counts.values()],
        }
    if column.kind == "numeric" and histogram is not None and column.count:
        edges, counts = histogram.edges, histogram.counts
        if len(edges) == 2 and edges[0] == edges[1]:  # one value: a single bar
            return {"kind": "categorical", "labels": [f"{edges[0]:.6g}"], "share": [1.0]}
        total = sum(counts)
        widths = [b - a for a, b in itertools.pairwise(edges)]
        return {
            "kind": "numeric",
            "centers": [(a + b) / 2 for a, b in itertools.pairwise(edges)],
            "widths": widths,
            "density": [
                c / (total * w) if w > 0 else 0.0 for c, w in zip(counts, widths, strict=True)
            ],
            "share": [c / total for c in counts],
            "ranges": [f"{a:.4g} to {b:.4g}" for a, b in itertools.pairwise(edges)],
            "note": (
                "This version's profile was stored before value counts were kept: its "
                f"{column.distinct:,} values are drawn in bins, which merge them."
                if tested is not False
                else ""
            ),
        }
    if column.top:
        return {
            "kind": "categorical",
            "labels": list(column.top),
            "share": list(column.top.values()),
            "other": column.other_share or 0.0,
        }
    return {"kind": "none"}


def _percent_label(q: str) -> str:
    value = float(q) * 100
    return "median" if value == 50 else f"p{value:g}"


# -- the preview -------------------------------------------------------------------------------


def _preview(datasets: DatasetStore, version: DatasetVersion) -> tuple[dict[str, Any] | None, str]:
    """The first rows as text cells, or why there are none."""
    try:
        frame = datasets.head(version, PREVIEW_ROWS)
    except (ModelloopError, OSError, ValueError) as exc:  # a missing or damaged Parquet file
        return None, f"The data cannot be read: {_reason(exc)}"
    return {"columns": [str(c) for c in frame.columns], "rows": _cells(frame)}, ""


def _cells(frame: pd.DataFrame) -> list[list[str | None]]:
    import pandas as pd

    rows = []
    for values in frame.itertuples(index=False, name=None):
        row: list[str | None] = []
        for value in values:
            if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
                row.append(None)
            elif isinstance(value, float):
                row.append(f"{value:.6g}")
            else:
                row.append(_clip(str(value), CELL_CHARS))
        rows.append(row)
    return rows


# -- the contract check ------------------------------------------------------------------------


def _check(datasets: DatasetStore, version: DatasetVersion, text: str) -> ContractCheck:
    """The version checked against the pasted contract, rule by rule; a contract that cannot
    be read or applied is a message, with the text kept in the box to correct it."""
    import yaml

    from modelloop.datasets.contracts import Contract

    check = ContractCheck(text)
    try:
        if len(text) > CONTRACT_CHARS:
            raise InvalidArgument(f"The contract is longer than {CONTRACT_CHARS:,} characters")
        if not text.strip():
            raise InvalidArgument("Paste a contract to check the version against")
        try:
            contract = Contract.from_dict(yaml.safe_load(text), source="The pasted text")
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"The contract is not valid YAML: {exc}") from None
        try:
            frame = datasets.load(version)
        except (ModelloopError, OSError, ValueError) as exc:  # the Parquet file is missing
            raise InvalidArgument(f"The data cannot be read: {_reason(exc)}") from None
        try:
            report = contract.validate(frame)
        except (TypeError, ValueError) as exc:  # e.g. a list among the allowed values
            raise InvalidArgument(f"The contract cannot be applied: {exc}") from None
    except InvalidArgument as exc:
        check.error = exc.message
        return check
    check.ok, check.summary = report.ok, report.summary().splitlines()[0]
    check.expectations = _expectations(contract, report, version)
    return check


def _stored(validation: DatasetValidation, version: DatasetVersion) -> StoredCheck:
    """A stored check with each expectation of its contract; a contract that no longer reads
    as one (the rules changed since) still shows every violation its report holds."""
    from modelloop.datasets.contracts import Contract

    report = validation.report
    try:
        contract = Contract.from_dict(validation.contract, source="The stored contract")
    except InvalidArgument:
        contract = Contract()
    return StoredCheck(
        validation,
        report.summary().splitlines()[0],
        _contract_text(validation.contract),
        _expectations(contract, report, version, validation.checks),
    )


def _contract_text(config: Mapping[str, Any]) -> str:
    """The stored contract as YAML, leaving out the settings left at their defaults (its
    custom Python checks are rows of the table, by name)."""
    import yaml

    defaults = {"nullable": True, "allow_inf": False, "allow_extra_columns": True}
    columns = {
        name: {k: v for k, v in spec.items() if v is not None and defaults.get(k) != v}
        for name, spec in (config.get("columns") or {}).items()
    }
    shown: dict[str, Any] = {"columns": columns} if columns else {}
    if config.get("unique"):
        shown["unique"] = config["unique"]
    if any(b is not None for b in config.get("rows") or ()):
        shown["rows"] = config["rows"]
    if config.get("allow_extra_columns") is False:
        shown["allow_extra_columns"] = False
    return (
        yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, default_flow_style=None)
        if shown
        else ""
    )


def _expectations(
    contract: Contract,
    report: ValidationReport,
    version: DatasetVersion,
    checks: Sequence[str] = (),
) -> list[Expectation]:
    """Each declared rule with its outcome (``checks``: the names of custom Python checks,
    which a stored contract keeps by name only); a violation no declared rule names (e.g. a
    range on a text column) is listed too, so nothing the report holds is left out."""
    columns = version.profile.columns
    violations = {id(v): v for v in report.violations}
    rows: list[Expectation] = []

    def add(rule: str, column: str | None, expected: str, applies: bool = True) -> None:
        matched = [
            v
            for v in violations.values()
            if v.rule == rule and (v.column == column or rule == "extra_column")
        ]
        for v in matched:
            del violations[id(v)]
        if matched:
            v = matched[0]
            failed = sum(m.failed_count for m in matched)
            message = "; ".join(m.message for m in matched)
            rows.append(
                Expectation(
                    rule, column, expected, "failed", failed, v.total, message, _ex(matched)
                )
            )
        else:
            rows.append(Expectation(rule, column, expected, "passed" if applies else "not checked"))

    low, high = contract.rows
    if low is not None or high is not None:
        add("row_count", None, _rows_expected(low, high))
    for name, expect in contract.columns.items():
        present = name in columns
        numeric = present and columns[name].kind == "numeric"
        add("missing_column", name, "present")
        if expect.dtype is not None:
            add("dtype", name, expect.dtype, present)
        if not expect.nullable:
            add("not_null", name, "no nulls", present)
        if expect.max_null_rate is not None:
            add("null_rate", name, f"null rate at most {expect.max_null_rate:g}", present)
        if not expect.allow_inf and numeric:
            add("finite", name, "no infinities")
        if expect.min is not None:
            add("min", name, f"at least {_plain(expect.min)}", numeric)
        if expect.max is not None:
            add("max", name, f"at most {_plain(expect.max)}", numeric)
        if expect.allowed is not None:
            allowed = ", ".join(repr(a) for a in list(expect.allowed)[:20])
            add("allowed", name, f"one of {allowed}", present)
    if contract.unique:
        add("unique", "+".join(contract.unique), "unique")
    if not contract.allow_extra_columns:
        add("extra_column", None, "no columns beyond the contract's")
    for name in checks:
        add("check", name, "custom check holds")
    for v in violations.values():
        rows.append(
            Expectation(
                v.rule, v.column, "", "failed", v.failed_count, v.total, v.message, _ex([v])
            )
        )
    return rows


def _ex(violations: Sequence[Any]) -> str:
    shown = [e for v in violations for e in v.examples][:5]
    return "; ".join(_clip(_example(e), 60) for e in shown)


def _example(example: Mapping[str, Any]) -> str:
    text = f"row {example.get('row')}: {example.get('value')!r}"
    return text + (f" ({example['count']} rows)" if "count" in example else "")


def _rows_expected(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{low:,} to {high:,} rows"
    return f"at least {low:,} rows" if low is not None else f"at most {high:,} rows"


# -- helpers -----------------------------------------------------------------------------------


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, ModelloopError) else str(exc)


def _plain(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return "NaN" if math.isnan(value) else f"{value:.6g}"


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"
