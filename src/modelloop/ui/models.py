"""The registry section of the web UI: models, versions, aliases, approvals and model cards.

Pages read the registry through the same :class:`~modelloop.registry.sql.SqlRegistryStore` as
the REST routes, and decide alias requests by the same rules: the actor is the request's
principal (set by the auth middleware), deciding needs the approver role, and the store refuses
a decision by the requester. Forms are same-origin POSTs (``Origin`` checked; the login cookie
is SameSite=Strict) answered with a 303 back to the page and a one-line message.

A model card (``/ui/models/NAME/versions/N/card``, downloadable as one self-contained HTML file
from ``.../card.html``) gathers what a reviewer asks of a version:

- intended use: the version's description and its ``card.*`` tags. By convention
  ``card.intended_use`` and ``card.limitations`` (any other ``card.<topic>`` tag becomes a
  section too); a tag missing on the version is taken from the registered model's tags;
- training data: the drift reference stored at registration (per feature: kind, count, nulls,
  mean and std or the top categories) and the profile of each logged dataset whose content
  digest is one of the version's ``dataset_digests`` or that its lineage reaches (the drift
  reference's dataset, one read upstream);
- metrics and signature;
- explanation summary: mean absolute contribution per feature over the background rows saved
  in the package, else over a sample of a logged training dataset; unavailable otherwise;
- approvals and alias history of this version, and its ``gate.decision`` events: what data
  each judged it on, and for a policy's replay backtest the metric of both models per replayed
  day (:mod:`~modelloop.ui.replay`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from modelloop import audit
from modelloop.auth import Role
from modelloop.datasets.entities import parse_ref
from modelloop.errors import Forbidden, InvalidArgument, ModelloopError, NotFound
from modelloop.registry.entities import (
    AliasRequest,
    ModelVersion,
    RegisteredModel,
    RequestStatus,
    check_model_name,
)
from modelloop.registry.importance import Importance, ImportanceCache
from modelloop.ui.forms import local_target, read_form, same_origin
from modelloop.ui.lineage import lineage_rows
from modelloop.ui.replay import ReplayTable, version_replays

if TYPE_CHECKING:
    from modelloop.datasets.entities import DatasetVersion
    from modelloop.datasets.reference import ColumnReference
    from modelloop.datasets.store import DatasetStore
    from modelloop.registry.client import Registry
    from modelloop.registry.sql import SqlRegistryStore
    from modelloop.ui.app import Pages

CARD_TAG = "card."  # version (or model) tags shown as sections of the card
CARD_TOPICS = ("intended_use", "limitations")  # always shown, in this order
AUDIT_SHOWN = 500  # newest events of a model's history on its page
DECIDED_SHOWN = 20
TOP_CATEGORIES = 5
_FLASH_KINDS = ("ok", "error")
_VALUE_CHARS = 80

Render = Callable[..., HTMLResponse]  # render(template, request, **context)


def register(router: APIRouter, pages: Pages) -> None:
    """Add the registry pages under ``/ui/models``."""
    from modelloop.registry.client import Registry
    from modelloop.registry.sql import SqlRegistryStore
    from modelloop.tracking.client import Client

    settings = pages.settings
    store = SqlRegistryStore(pages.store.db, protected_aliases=settings.protected_aliases)
    client = Client(settings=settings, store=pages.store)
    registry = Registry(client, store=store)
    explanations = ImportanceCache()

    def render(template: str, request: Request, **context: Any) -> HTMLResponse:
        principal = _principal(request)
        return pages.render(
            template,
            section="models",
            flash=_flash(request),
            you=principal.name,
            can_decide=principal.role.allows(Role.approver),
            **context,
        )

    @router.get("/ui/models")
    def models_page(request: Request) -> HTMLResponse:
        return pages.guarded(lambda: _models_page(render, request, store))

    @router.get("/ui/approvals")
    def approvals_page(request: Request) -> HTMLResponse:
        return pages.guarded(
            lambda: render(
                "models_approvals.html",
                request,
                title="Pending approvals",
                pending=store.list_requests(None, RequestStatus.PENDING),
                decided=_decided(store.list_requests(None, None)),
                here="/ui/approvals",
            )
        )

    @router.post("/ui/models/requests/{request_id}/{verb}")
    async def decide(request: Request, request_id: str, verb: str) -> Response:
        if not same_origin(request):
            return pages.guarded(_refuse("The form was posted from another site"))
        form = read_form(await request.body())
        target = local_target(form.get("next", "/ui/approvals"))
        try:
            message = _decide(store, _principal(request), request_id, verb, form)
        except ModelloopError as exc:
            return RedirectResponse(_with_flash(target, exc.message, "error"), 303)
        return RedirectResponse(_with_flash(target, message, "ok"), 303)

    @router.get("/ui/models/{name}")
    def model_page(request: Request, name: str, version: str = "") -> HTMLResponse:
        return pages.guarded(
            lambda: _model_page(render, request, registry, store, client, name, version)
        )

    @router.get("/ui/models/{name}/versions/{version}/card")
    def card_page(request: Request, name: str, version: str) -> HTMLResponse:
        return pages.guarded(
            lambda: render(
                "models_card.html",
                request,
                **_card(registry, store, explanations, name, version, export=False),
            )
        )

    @router.get("/ui/models/{name}/versions/{version}/card.html")
    def card_export(request: Request, name: str, version: str) -> Response:
        def download() -> HTMLResponse:
            context = _card(registry, store, explanations, name, version, export=True)
            page = render("models_card_export.html", request, **context)
            found = context["version"]
            filename = f"{found.name}-v{found.version}-card.html"  # names are [A-Za-z0-9_.-]
            return HTMLResponse(
                page.body,
                headers={
                    "Content-Disposition": f'attachment; filename="{filename}"',
                    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                    "X-Content-Type-Options": "nosniff",
                    "Cache-Control": "no-store",
                },
            )

        return pages.guarded(download)


# -- pages -------------------------------------------------------------------------------------


def _models_page(render: Render, request: Request, store: SqlRegistryStore) -> HTMLResponse:
    models = store.list_registered_models()
    pending: dict[str, int] = {}
    for found in store.list_requests(None, RequestStatus.PENDING):
        pending[found.name] = pending.get(found.name, 0) + 1
    return render(
        "models.html",
        request,
        title="Registered models",
        models=sorted(models, key=lambda m: m.name.lower()),
        pending=pending,
    )


def _model_page(
    render: Render,
    request: Request,
    registry: Registry,
    store: SqlRegistryStore,
    client: Any,
    name: str,
    version_text: str,
) -> HTMLResponse:

    model = store.get_registered_model(check_model_name(name))
    versions = store.list_model_versions(model.name)
    events = store.audit_events(model.name, AUDIT_SHOWN)
    chosen: ModelVersion | None = None
    if version_text:
        chosen = store.get_model_version(model.name, _version_number(version_text))
    elif versions:
        chosen = versions[-1]
    lineage = registry.lineage(model.name, chosen.version) if chosen is not None else None
    requests = store.list_requests(model.name, None)
    return render(
        "models_model.html",
        request,
        title=f"Model {model.name}",
        model=model,
        versions=list(reversed(versions)),
        aliases=_aliases(model, events, store.protected_aliases),
        pending=[r for r in requests if r.status is RequestStatus.PENDING],
        decided=_decided(requests),
        history=[_event_row(e) for e in reversed(events)],
        history_limited=len(events) >= AUDIT_SHOWN,
        chosen=chosen,
        lineage=lineage,
        logged_data=_logged_versions(registry, chosen) if chosen is not None else {},
        run_lineage=lineage_rows(client, chosen.run_id) if chosen is not None else [],
        here=f"/ui/models/{model.name}",
    )


def _card(
    registry: Registry,
    store: SqlRegistryStore,
    explanations: ImportanceCache,
    name: str,
    version_text: str,
    *,
    export: bool,
) -> dict[str, Any]:
    """Everything a model card shows, for the page and its export alike."""
    model = store.get_registered_model(check_model_name(name))
    version = store.get_model_version(model.name, _version_number(version_text))
    datasets = _datasets(registry, version)
    history = [e for e in store.audit_events(model.name) if _about_version(e, version.version)]
    replays = version_replays(model.name, version.version, settings=registry.client.settings)
    gates = [_gate_row(e, replays.get(e.seq)) for e in history if e.action == "gate.decision"]
    lineage = registry.lineage(model.name, version.version)
    return {
        "title": f"Model card: {model.name} v{version.version}",
        "model": model,
        "version": version,
        "export": export,
        "card_sections": _card_sections(model, version),
        "profile": _profile_rows(registry, version),
        "datasets": datasets,
        "explanation": _importance(explanations, registry, version, datasets),
        "features": list((version.signature or {}).get("inputs") or []),
        "output": (version.signature or {}).get("output") or {},
        "history": [_event_row(e) for e in history if e.action != "gate.decision"],
        "gates": gates,
        "lineage": lineage,
        "requests": [r for r in store.list_requests(model.name) if r.version == version.version],
    }


# -- deciding ----------------------------------------------------------------------------------


def _decide(
    store: SqlRegistryStore, principal: Any, request_id: str, verb: str, form: Mapping[str, str]
) -> str:
    """Approve or reject as the request's principal; the message to show when it worked."""
    if verb not in ("approve", "reject"):
        raise NotFound(f"No action {verb!r}: use approve or reject")
    if not principal.role.allows(Role.approver):
        raise Forbidden(
            f"User {principal.name!r} has the {principal.role.value} role; approving or "
            "rejecting an alias request needs the approver role or higher"
        )
    reason = form.get("reason", "").strip()
    if verb == "approve":
        done = store.approve_request(request_id, actor=principal.name, reason=reason or None)
        return (
            f"Approved: {done.name}@{done.alias} now points at version {done.version} "
            f"(requested by {done.requested_by})"
        )
    if not reason:
        raise InvalidArgument("A reason is required to reject a request: say why")
    done = store.reject_request(request_id, actor=principal.name, reason=reason)
    return f"Rejected the request to point {done.name}@{done.alias} at version {done.version}"


def _principal(request: Request) -> Any:
    from modelloop.web.middleware import request_principal as principal_of

    return principal_of(request)


def _refuse(message: str) -> Any:
    def refuse() -> HTMLResponse:
        raise Forbidden(message)

    return refuse


def _with_flash(target: str, message: str, kind: str) -> str:
    """``target`` with the one-line message of what a form did (replacing an older one)."""
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("flash", "kind")]
    query += [("flash", message[:500]), ("kind", kind)]
    return f"{parts.path}?{urlencode(query)}"


def _flash(request: Request) -> dict[str, str] | None:
    message = request.query_params.get("flash", "")
    kind = request.query_params.get("kind", "ok")
    if not message:
        return None
    return {"message": message[:500], "kind": kind if kind in _FLASH_KINDS else "ok"}


# -- rows of the pages -------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasRow:
    alias: str
    version: int
    protected: bool
    moved_at: int | None
    moved_by: str
    reason: str


def _aliases(
    model: RegisteredModel, events: list[audit.AuditEvent], protected: frozenset[str]
) -> list[AliasRow]:
    """The model's aliases with their last move (from the audit history)."""
    last: dict[str, audit.AuditEvent] = {}
    for event in events:
        if event.action == "alias.move":
            last[event.object_id.partition("@")[2]] = event
    rows = []
    for alias, version in sorted(model.aliases.items()):
        moved = last.get(alias)
        rows.append(
            AliasRow(
                alias,
                version,
                alias in protected,
                moved.time if moved else None,
                moved.actor if moved else "",
                (moved.reason or "") if moved else "",
            )
        )
    return rows


def _decided(requests: list[AliasRequest]) -> list[AliasRequest]:
    done = [r for r in requests if r.status is not RequestStatus.PENDING]
    return sorted(done, key=lambda r: r.decided_at or r.created_at, reverse=True)[:DECIDED_SHOWN]


@dataclass(frozen=True)
class EventRow:
    seq: int
    time: int
    actor: str
    action: str
    object_id: str
    reason: str
    change: str


def _event_row(event: audit.AuditEvent) -> EventRow:
    return EventRow(
        event.seq,
        event.time,
        event.actor,
        event.action,
        event.object_id,
        event.reason or "",
        change_summary(event.action, event.before, event.after),
    )


def change_summary(
    action: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> str:
    """One line saying what an audit event changed: ``key: before → after`` for each key."""
    if action == "gate.decision" and after is not None:
        return _short(after.get("summary", after.get("decision", "")), 300)
    if before is None and after is None:
        return ""
    if before is None:
        assert after is not None
        return ", ".join(f"{k}={_short(v)}" for k, v in sorted(after.items()))
    if after is None:
        return "removed (was " + ", ".join(f"{k}={_short(v)}" for k, v in sorted(before.items()))
    keys = sorted(set(before) | set(after))
    changed = [
        f"{k}: {_short(before.get(k))} → {_short(after.get(k))}"
        for k in keys
        if before.get(k) != after.get(k)
    ]
    return ", ".join(changed) or "no change"


def _short(value: Any, limit: int = _VALUE_CHARS) -> str:
    text = "∅" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _about_version(event: audit.AuditEvent, version: int) -> bool:
    """Whether an event of the model's history concerns this version."""
    if event.object_type == "model_version":
        return event.object_id.rpartition("/")[2] == str(version)
    if event.object_type in ("alias", "alias_request"):
        sides = [side for side in (event.before, event.after) if side]
        return any(side.get("version") == version for side in sides)
    return False


@dataclass(frozen=True)
class GateRow:
    seq: int
    time: int
    actor: str
    decision: str
    metric: str
    challenger: Any
    champion: Any
    champion_uri: str
    difference: Any
    ci_low: Any
    ci_high: Any
    confidence: Any
    margin: Any
    data: str  # what it was judged on, e.g. the replay of the logged requests of some days
    reason: str
    replay: ReplayTable | None = None  # the replay's metric per day (a policy's gate)


def _gate_row(event: audit.AuditEvent, replay: ReplayTable | None = None) -> GateRow:
    after: Mapping[str, Any] = event.after or {}
    champion = after.get("champion") or {}
    challenger = after.get("challenger") or {}
    metric = str(after.get("metric", ""))
    if after.get("k") is not None:
        metric += f" (k={after['k']})"
    return GateRow(
        event.seq,
        event.time,
        event.actor,
        str(after.get("decision", "")),
        metric,
        challenger.get("value"),
        champion.get("value"),
        str(champion.get("uri", champion.get("requested", ""))),
        after.get("difference"),
        after.get("ci_low"),
        after.get("ci_high"),
        after.get("confidence"),
        after.get("margin"),
        str(after.get("data") or ""),
        event.reason or "",
        replay,
    )


def _card_sections(model: RegisteredModel, version: ModelVersion) -> list[tuple[str, str]]:
    """``card.*`` tags as (heading, text): the version's, else the model's."""
    tags = {
        k[len(CARD_TAG) :]: v for k, v in model.tags.items() if k.startswith(CARD_TAG)
    }  # the model's, overridden by the version's
    tags.update({k[len(CARD_TAG) :]: v for k, v in version.tags.items() if k.startswith(CARD_TAG)})
    topics = [*CARD_TOPICS, *sorted(t for t in tags if t not in CARD_TOPICS)]
    return [(t.replace("_", " ").capitalize(), tags.get(t, "")) for t in topics]


@dataclass(frozen=True)
class ProfileRow:
    feature: str
    kind: str
    count: int
    nulls: int
    mean: float | None = None
    std: float | None = None
    extra: str = ""  # min/max, or the top categories with their shares


def _profile_rows(registry: Registry, version: ModelVersion) -> list[ProfileRow]:
    try:
        references = registry.reference_profile(version.uri)
    except ModelloopError:
        return []
    return [_reference_row(k, ref) for k, ref in references.items()]


def _reference_row(name: str, ref: ColumnReference) -> ProfileRow:
    extra = ""
    if ref.categories:
        extra = _top(ref.categories, sum(ref.categories.values()))
    elif ref.edges:
        extra = f"range {ref.edges[0]:.6g} to {ref.edges[-1]:.6g}"
    if ref.inf_count:
        extra = f"{extra}; {ref.inf_count} infinite" if extra else f"{ref.inf_count} infinite"
    return ProfileRow(name, ref.kind, ref.count, ref.null_count, ref.mean, ref.std, extra)


def _top(counts: Mapping[str, float], total: float) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CATEGORIES]
    shares = [f"{_short(k, 40)} {100 * v / total:.1f}%" for k, v in ranked] if total else []
    more = len(counts) - len(ranked)
    return ", ".join(shares) + (f" (+{more} more)" if more > 0 else "")


@dataclass
class LoggedDataset:
    role: str
    digest: str
    found: DatasetVersion | None = None
    columns: list[ProfileRow] = field(default_factory=list)


def _dataset_store(registry: Registry) -> DatasetStore:
    from modelloop.datasets.store import open_dataset_store

    return open_dataset_store(registry.client.settings)


def _datasets(registry: Registry, version: ModelVersion) -> list[LoggedDataset]:
    """Each of the version's dataset digests, with the logged dataset holding that content;
    then each logged dataset version its lineage reaches (what ``modelloop lineage
    models:/NAME/V`` shows, and the dataset page's "models trained from it" finds) that no
    digest named: its drift reference's dataset, or one read upstream."""
    by_digest = _logged_versions(registry, version)
    found = [
        LoggedDataset(role, digest, by_digest.get(digest))
        for role, digest in sorted(version.dataset_digests.items())
    ]
    named = {d.found.ref for d in found if d.found is not None}
    for ref, role in _upstream_datasets(registry, version).items():
        if ref in named:
            continue
        try:
            logged = _dataset_store(registry).get_version(*parse_ref(ref))
        except ModelloopError:  # named by lineage but not logged here: nothing to profile
            continue
        found.append(LoggedDataset(role, logged.digest, logged))
    for logged_dataset in found:
        if logged_dataset.found is not None:
            logged_dataset.columns = [
                ProfileRow(
                    p.name,
                    p.kind,
                    p.count,
                    p.null_count,
                    p.mean,
                    p.std,
                    _top(p.top, 1.0) if p.top else _range(p.min, p.max),
                )
                for p in logged_dataset.found.profile.columns.values()
            ]
    return found


def _upstream_datasets(registry: Registry, version: ModelVersion) -> dict[str, str]:
    """``NAME@V`` -> role of the dataset versions in the version's lineage."""
    from modelloop.pipelines.lineage import get_lineage
    from modelloop.registry.reference import TAG_REFERENCE_DATASET

    try:
        graph = get_lineage(version.uri, registry.client)
    except ModelloopError:
        return {}
    reference = version.tags.get(TAG_REFERENCE_DATASET)
    return {
        ref: "drift reference" if ref == reference else "read upstream" for ref in graph.datasets()
    }


def _logged_versions(registry: Registry, version: ModelVersion) -> dict[str, DatasetVersion]:
    """The logged dataset version holding each of the version's dataset digests (the last by
    name and version when several hold the same content)."""
    if not version.dataset_digests:
        return {}
    found = _dataset_store(registry).versions_with_digests(version.dataset_digests.values())
    return {logged.digest: logged for logged in found}


def _range(low: Any, high: Any) -> str:
    if low is None and high is None:
        return ""
    return f"range {_plain(low)} to {_plain(high)}"


def _plain(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else _short(value, 40)


def _importance(
    cache: ImportanceCache, registry: Registry, version: ModelVersion, datasets: list[LoggedDataset]
) -> Importance:
    """The card's feature importance, over the first logged dataset found for the version."""
    data = next((d for d in datasets if d.found is not None), None)
    if data is None:
        return cache.get(registry, version, None)
    return cache.get(registry, version, data.found, data.role)


def _version_number(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) < 2**31:
        raise InvalidArgument(f"Invalid model version {text!r}: versions are integers from 1")
    return int(text)
