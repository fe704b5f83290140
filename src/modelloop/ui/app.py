"""The web UI's routes: Jinja2 pages under ``/ui`` over the store the REST routes use.

Pages call the same :class:`~modelloop.tracking.sql.SqlTrackingStore` methods as the REST API
(search, history, artifacts) and the lineage SDK, so a filter or an ordering means exactly what
it means to ``ml.search_runs``. Every template is autoescaped and pages send a Content Security
Policy without inline scripts: user-provided text (run names, params, tags) can only ever be
text. Charts are drawn in the browser by Plotly (served from the installed ``plotly`` package,
no CDN) from ``/ui/api/metric``, which downsamples long curves on the server (LTTB).

Times are shown in UTC. On a store whose data runs on a simulated clock
(:mod:`modelloop.store_clock`), every page carries a banner with the simulated instant and
which times are on it (monitor windows, predictions, alerts, policy decisions) and which carry
the wall-clock time they were recorded (runs, registry changes, configuration updates); "now"
(e.g. the end of a deployment's traffic period) is the store's clock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from modelloop.clock import from_ms, now_ms
from modelloop.errors import InvalidArgument, ModelloopError, NotFound
from modelloop.settings import Settings
from modelloop.store_clock import StoreClock, store_clock
from modelloop.tracking.entities import Experiment, Run, check_run_id
from modelloop.tracking.filter import parse_order_by
from modelloop.tracking.sql import SqlTrackingStore
from modelloop.ui.downsample import downsample
from modelloop.ui.forms import local_target, read_form, same_origin
from modelloop.ui.lineage import lineage_rows
from modelloop.web.middleware import TOKEN_COOKIE
from modelloop.web.responses import OrjsonResponse

PER_PAGE = 100
MAX_PAGE = 1_000_000  # a page is an offset into the search, read directly
MAX_COMPARED = 20
DEFAULT_POINTS = 2000
MAX_POINTS = 20_000
_DEFAULT_COLUMNS = 5  # metrics, and params, shown when the page does not choose
_HERE = Path(__file__).resolve().parent
_MEDIA = {".css": "text/css", ".js": "text/javascript"}
_STATIC = {
    path.name: (path, _MEDIA[path.suffix])
    for path in (_HERE / "static").iterdir()
    if path.suffix in _MEDIA
}  # a fixed list read once: a requested name is looked up, never joined to a path
_SECURITY_HEADERS = {
    # No inline script may run: escaping is the first guard against injected markup, this the
    # second. Plotly injects its own <style> elements, hence 'unsafe-inline' for styles only.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class NavItem:
    """One entry of the nav bar; ``href=None`` for the pages of later releases."""

    key: str
    label: str
    href: str | None


#: Sections in their own modules (``modelloop.ui.<key>``), each with ``register(router, pages)``
#: adding its routes under ``/ui/<key>``; a section whose module is absent is shown greyed out.
SECTIONS = (
    ("datasets", "Datasets"),
    ("pipelines", "Pipelines"),
    ("models", "Models"),
    ("deployments", "Deployments"),
    ("monitoring", "Monitoring"),
    ("automation", "Automation"),
)


def _section_modules() -> dict[str, Any]:
    import importlib
    import importlib.util

    found = {}
    for key, _ in SECTIONS:
        if importlib.util.find_spec(f"modelloop.ui.{key}") is not None:
            found[key] = importlib.import_module(f"modelloop.ui.{key}")
    return found


@dataclass(frozen=True)
class Pages:
    """What a section module gets to add its pages with the shared layout and stores."""

    render: Callable[..., HTMLResponse]  # render(template, status=200, **context)
    guarded: Callable[[Callable[[], HTMLResponse]], HTMLResponse]  # store errors as pages
    settings: Settings
    store: SqlTrackingStore
    authenticated: bool

    def clock(self) -> StoreClock:
        """The store's clock: what "now" is for its data."""
        return store_clock(self.settings)


@dataclass(frozen=True)
class Column:
    """A metric, param or tag column of the runs table."""

    entity: str  # metrics | params | tags
    key: str

    @property
    def label(self) -> str:
        return f"{self.entity}.{self.key}"

    @property
    def order_key(self) -> str:
        return f"{self.entity}.`{self.key}`"  # quoted: keys may hold spaces

    def value(self, run: Run) -> str:
        if self.entity == "metrics":
            value = run.metrics.get(self.key)
            return "" if value is None else fmt_number(value)
        source = run.params if self.entity == "params" else run.tags
        return source.get(self.key, "")


def ui_router(store: SqlTrackingStore, settings: Settings, *, authenticated: bool) -> APIRouter:
    """The pages, their JSON and static files; ``authenticated`` shows login and logout."""
    from modelloop.tracking.client import Client

    templates = _environment()
    client = Client(settings=settings, store=store)  # for the lineage SDK
    router = APIRouter(include_in_schema=False)
    sections = _section_modules()
    nav = (
        NavItem("experiments", "Experiments", "/ui/"),
        NavItem("runs", "Runs", "/ui/runs"),
        NavItem("compare", "Compare", "/ui/compare"),
        *(
            NavItem(key, label, f"/ui/{key}" if key in sections else None)
            for key, label in SECTIONS
        ),
    )

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("section", "")
        try:
            clock: StoreClock | None = store_clock(settings)
        except ModelloopError:  # an unreachable store: the page says why, without the banner
            clock = None
        body = templates.get_template(name).render(
            nav=nav, authenticated=authenticated, clock=clock, **context
        )
        return HTMLResponse(body, status, headers=_SECURITY_HEADERS)

    def error_page(exc: ModelloopError) -> HTMLResponse:
        return page("error.html", exc.status_code, title="Error", message=exc.message)

    def guarded(render: Callable[[], HTMLResponse]) -> HTMLResponse:
        """An error of the store is a page saying so, with its status, not the JSON contract."""
        try:
            return render()
        except ModelloopError as exc:
            return error_page(exc)

    @router.get("/")
    def root() -> Response:
        return RedirectResponse("/ui/", 307)

    @router.get("/ui")
    def ui_root() -> Response:
        return RedirectResponse("/ui/", 307)

    @router.get("/ui/static/{name}")
    def static(name: str) -> Response:
        if name == "plotly.min.js":
            path, media = _plotly_js(), "text/javascript"
        elif name in _STATIC:
            path, media = _STATIC[name]
        else:
            raise NotFound(f"No static file {name!r}")
        return FileResponse(path, media_type=media, headers={"Cache-Control": "max-age=3600"})

    # -- login ---------------------------------------------------------------------------------

    @router.get("/ui/login")
    def login_form(next: str = "/ui/", reason: str = "") -> HTMLResponse:
        return page(
            "login.html",
            title="Log in",
            next=local_target(next),
            rejected=reason == "rejected",
            needed=authenticated,
        )

    @router.post("/ui/login")
    async def login(request: Request) -> Response:
        """Keep the token in an HttpOnly, SameSite=Strict cookie that the auth middleware
        reads; a wrong one brings the browser back here with a message."""
        if not same_origin(request):
            return error_page(InvalidArgument("The login form was posted from another site"))
        form = read_form(await request.body())
        token = form.get("token", "").strip()
        target = local_target(form.get("next", "/ui/"))
        if not token:
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)
        response = RedirectResponse(target, 303)
        response.set_cookie(
            TOKEN_COOKIE,
            quote(token, safe=""),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @router.post("/ui/logout")
    def logout(request: Request) -> Response:
        if not same_origin(request):  # another site must not log the user out either
            return error_page(InvalidArgument("The logout form was posted from another site"))
        response = RedirectResponse("/ui/login", 303)
        response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -- pages ---------------------------------------------------------------------------------

    @router.get("/ui/")
    def experiments() -> HTMLResponse:
        return page(
            "experiments.html",
            section="experiments",
            title="Experiments",
            experiments=store.list_experiments(),
        )

    @router.get("/ui/runs")
    def runs(
        experiment: str = "",
        filter: str = "",
        order_by: str = "",
        page_number: Annotated[str, Query(alias="page")] = "1",
        columns: str = "",
    ) -> HTMLResponse:
        return guarded(
            lambda: _runs_page(
                page, store, experiment, filter, order_by, _page_number(page_number), columns
            )
        )

    @router.get("/ui/runs/{run_id}")
    def run_page(run_id: str) -> HTMLResponse:
        return guarded(lambda: _run_page(page, store, client, run_id))

    @router.get("/ui/compare")
    def compare(request: Request) -> HTMLResponse:
        ids = [i for v in request.query_params.getlist("runs") for i in v.split(",") if i]
        ids += request.query_params.getlist("run")
        return guarded(lambda: _compare_page(page, store, list(dict.fromkeys(ids))))

    @router.get("/ui/api/metric")
    def metric(
        run: str, key: str, max_points: Annotated[int, Query(ge=3, le=MAX_POINTS)] = DEFAULT_POINTS
    ) -> Response:
        """One metric's curve for a chart: at most ``max_points`` points chosen by LTTB, and
        how many there were, which the page shows under the chart."""
        series = store.metric_history(run, key)
        shown = downsample(series.steps, series.values, max_points)
        return OrjsonResponse(
            {
                "run": run,
                "key": key,
                "steps": shown.x.astype("int64"),
                "values": shown.y,  # NaN and infinities as null: a gap in the curve
                "downsampled": {"original": shown.original, "shown": shown.shown},
            }
        )

    pages = Pages(page, guarded, settings, store, authenticated)
    for module in sections.values():
        module.register(router, pages)
    return router


# -- the pages ---------------------------------------------------------------------------------

Page = Callable[..., HTMLResponse]


def _runs_page(
    page: Page,
    store: SqlTrackingStore,
    experiment: str,
    filter_text: str,
    order_by: str,
    number: int,
    columns_text: str,
) -> HTMLResponse:
    all_experiments = store.list_experiments()
    chosen = _find_experiment(store, experiment) if experiment else None
    ids = [chosen.experiment_id] if chosen else [e.experiment_id for e in all_experiments]
    error = None
    found: list[Run] = []
    try:
        order = parse_order_by([order_by] if order_by.strip() else [])
        if ids:
            found = store.search_runs(
                ids,
                filter_text or None,
                [order_by] if order else [],
                PER_PAGE + 1,
                offset=(number - 1) * PER_PAGE,
            )
    except InvalidArgument as exc:  # a bad filter or ordering: say so above the table
        error, order = exc.message, []
    shown = found[:PER_PAGE]
    columns = _parse_columns(columns_text) if columns_text.strip() else _default_columns(shown)
    sorted_by = order[0] if order else None

    def link(**changes: object) -> str:
        query = {
            "experiment": experiment,
            "filter": filter_text,
            "order_by": order_by,
            "columns": columns_text,
            "page": number,
            **changes,
        }
        return "/ui/runs?" + urlencode({k: v for k, v in query.items() if v not in ("", 1)})

    def sort_link(key: str) -> tuple[str, str]:
        """The header's link (ascending first, then flipping) and its arrow."""
        current = sorted_by is not None and _order_text(sorted_by) == _order_text(
            parse_order_by([key])[0]
        )
        descending = current and sorted_by is not None and sorted_by.descending
        arrow = ("▼" if descending else "▲") if current else ""
        flipped = f"{key} ASC" if descending or not current else f"{key} DESC"
        return link(order_by=flipped, page=1), arrow

    return page(
        "runs.html",
        400 if error else 200,
        section="runs",
        title=f"Runs of {chosen.name}" if chosen else "Runs",
        experiments=all_experiments,
        experiment=experiment,
        filter=filter_text,
        order_by=order_by,
        columns_text=columns_text or ",".join(c.label for c in columns),
        error=error,
        runs=shown,
        columns=columns,
        sort_link=sort_link,
        page=number,
        previous=link(page=number - 1) if number > 1 else None,
        next=link(page=number + 1) if len(found) > PER_PAGE and number < MAX_PAGE else None,
        first=(number - 1) * PER_PAGE + 1,
        experiment_names={e.experiment_id: e.name for e in all_experiments},
    )


def _run_page(page: Page, store: SqlTrackingStore, client: Any, run_id: str) -> HTMLResponse:
    run = store.get_run(run_id)
    experiment = store.get_experiment(run.experiment_id)
    artifacts = store.list_artifacts(run_id)
    return page(
        "run.html",
        section="runs",
        title=f"Run {run.name}",
        run=run,
        experiment=experiment,
        artifacts=[
            (a, f"/api/v1/runs/{run.run_id}/artifact?{urlencode({'path': a.path})}")
            for a in artifacts
        ],
        lineage=lineage_rows(client, run_id),
        metric_keys=sorted(run.metrics),
        chart_runs=[{"id": run.run_id, "name": run.name}],
    )


def _compare_page(page: Page, store: SqlTrackingStore, ids: Sequence[str]) -> HTMLResponse:
    if len(ids) > MAX_COMPARED:
        raise InvalidArgument(f"Compare at most {MAX_COMPARED} runs at once, not {len(ids)}")
    runs = [store.get_run(check_run_id(i)) for i in ids]
    param_keys = sorted({k for r in runs for k in r.params})
    metric_keys = sorted({k for r in runs for k in r.metrics})
    params = [(k, [r.params.get(k) for r in runs]) for k in param_keys]
    metrics = [(k, [r.metrics.get(k) for r in runs]) for k in metric_keys]
    return page(
        "compare.html",
        section="compare",
        title="Compare runs",
        runs=runs,
        params=[(k, values, len(set(values)) > 1) for k, values in params],
        metrics=metrics,
        metric_keys=metric_keys,
        chart_runs=[{"id": r.run_id, "name": r.name} for r in runs],
    )


# -- helpers -----------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(time=fmt_time, duration=fmt_duration, number=fmt_number, size=fmt_size)
    return env


def _plotly_js() -> Path:
    """``plotly.min.js`` as shipped inside the installed ``plotly`` package (no CDN)."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:  # pragma: no cover - a core dependency
        raise NotFound("The plotly package is not installed")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def _find_experiment(store: SqlTrackingStore, name_or_id: str) -> Experiment:
    found = store.get_experiment_by_name(name_or_id)
    return found if found is not None else store.get_experiment(name_or_id)


def _page_number(text: str) -> int:
    try:
        return min(max(int(text), 1), MAX_PAGE)
    except ValueError:
        return 1


def _parse_columns(text: str) -> list[Column]:
    columns = []
    for item in text.split(","):
        entity, dot, key = item.strip().partition(".")
        entity = {"metric": "metrics", "param": "params", "tag": "tags"}.get(entity, entity)
        if not dot or entity not in ("metrics", "params", "tags") or not key:
            raise InvalidArgument(
                f"Invalid column {item.strip()!r}: use metrics.KEY, params.KEY or tags.KEY"
            )
        columns.append(Column(entity, key))
    return columns


def _default_columns(runs: Sequence[Run]) -> list[Column]:
    """The metrics and params most of the shown runs have, a few of each."""
    chosen = []
    for entity, counts in (
        ("metrics", Counter(k for r in runs for k in r.metrics)),
        ("params", Counter(k for r in runs for k in r.params)),
    ):
        ranked = sorted(counts, key=lambda k: (-counts[k], k))[:_DEFAULT_COLUMNS]
        chosen += [Column(entity, k) for k in sorted(ranked)]
    return chosen


def _order_text(order: Any) -> str:
    return f"{order.entity}:{order.key}"


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return from_ms(ms).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(run: Run) -> str:
    end = run.end_time if run.end_time is not None else now_ms()  # runs: the wall clock
    seconds = max(end - run.start_time, 0) / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def fmt_number(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    return f"{value:.6g}"


def fmt_size(size: int) -> str:
    if size < 1024:
        return f"{size:,} B"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:,.1f} {unit}"
