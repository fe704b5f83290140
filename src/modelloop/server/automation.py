"""Automation policy routes under ``/api/v1/policies``: declare (PUT, audited), read with the
loop's state, step on demand (the server's scheduler steps them anyway), start a rollout by
hand, and read the timeline of decisions from the audit trail."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from modelloop.automation import loop
from modelloop.automation import policy as _policy
from modelloop.errors import InvalidArgument, NotFound
from modelloop.server.registry import _ERRORS, Actor
from modelloop.server.schemas import JsonObject, OrjsonResponse
from modelloop.server.tracking import _OrjsonRoute
from modelloop.settings import Settings
from modelloop.store_clock import store_clock

PolicyName = Annotated[str, Path(description="Policy name", examples=["fraud-loop"])]


class RolloutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    stage: str = Field(default="shadow", pattern="^(shadow|canary)$")


def automation_router(settings: Settings) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1", tags=["automation"], route_class=_OrjsonRoute, responses=_ERRORS
    )

    @router.get("/policies")
    def list_policies() -> Response:
        policies = _policy.list_policies(settings=settings)
        return OrjsonResponse({"policies": [_record(p.name, settings) for p in policies]})

    @router.put("/policies/{name}")
    def apply_policy(name: PolicyName, body: JsonObject, actor: Actor) -> Response:
        config = _policy.parse_policy({**body, "name": body.get("name", name)})
        if config.name != name:
            raise InvalidArgument(
                f"The body names policy {config.name!r} but the URL {name!r}",
                [{"field": "name", "message": "must match the URL"}],
            )
        changed = _policy.apply_policy(config, settings=settings, actor=actor.name)
        return OrjsonResponse({"changed": changed, "policy": _record(name, settings)})

    @router.get("/policies/{name}")
    def get_policy(name: PolicyName) -> Response:
        return OrjsonResponse(_record(name, settings))

    @router.delete("/policies/{name}", status_code=204, response_class=Response)
    def delete_policy(name: PolicyName, actor: Actor) -> Response:
        if not _policy.delete_policy(name, settings=settings, actor=actor.name):
            raise NotFound(f"No policy named {name!r}")
        return Response(status_code=204)

    @router.post("/policies/{name}/step")
    def step(name: PolicyName, actor: Actor) -> Response:
        now = store_clock(settings).now  # a simulated store steps at its simulated now
        decisions = loop.step_policy(name, now=now, settings=settings)
        return OrjsonResponse({"decisions": [asdict(d) for d in decisions]})

    @router.post("/policies/{name}/rollout")
    def rollout(name: PolicyName, body: RolloutRequest, actor: Actor) -> Response:
        now = store_clock(settings).now
        decision = loop.start_rollout(
            name, body.version, stage=body.stage, now=now, settings=settings
        )
        return OrjsonResponse(asdict(decision))

    @router.get("/policies/{name}/timeline")
    def timeline(name: PolicyName) -> Response:
        decisions = loop.timeline(name, settings=settings)
        return OrjsonResponse({"decisions": [asdict(d) for d in decisions]})

    return router


def _record(name: str, settings: Settings) -> dict[str, Any]:
    config = _policy.get_policy(name, settings=settings)
    state = _policy.policy_state(name, settings=settings)
    return {**config.to_record(), "state": asdict(state)}
