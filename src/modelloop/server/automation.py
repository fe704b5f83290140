"""Automation policy routes under ``/api/v1/policies``: declare (PUT, audited), read with the
loop's state, step on demand (the server's scheduler steps them anyway), start a rollout by
hand, and read the timeline of decisions from the audit trail."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from modelloop.automation import loop
from modelloop.automation import policy as _policy
from modelloop.errors import InvalidArgument, NotFound
from modelloop.server.registry import _ERRORS, Actor
from modelloop.server.schemas import (
    CONFIG_NAME,
    INTEGRAL,
    JsonObject,
    Pattern,
    config_body,
)
from modelloop.server.tracking import _OrjsonRoute
from modelloop.settings import Settings
from modelloop.store_clock import store_clock
from modelloop.web.responses import OrjsonResponse

_NAME_RULES = "1-128 letters, digits, '_', '.', '-', starting with a letter or digit"
PolicyName = Annotated[
    str,
    Path(description=f"Policy name: {_NAME_RULES}", examples=["fraud-loop"]),
    *Pattern(CONFIG_NAME, _NAME_RULES),
]


class RolloutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: Annotated[int, Field(ge=1, lt=2**31), INTEGRAL]
    stage: Literal["shadow", "canary"] = "shadow"


class StepRequest(BaseModel):
    """A step takes nothing: no body, or an empty JSON object."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PolicyStateOut(BaseModel):
    stage: Literal["idle", "shadow", "canary"]
    challenger_version: int | None
    champion_version: int | None
    stage_started_at: int | None
    last_trained_at: int | None
    last_checked_at: int | None
    trainings: int
    request_id: str | None = Field(description="Awaiting approval of this alias request")


class PolicyOut(_policy.Policy):
    state: PolicyStateOut


class PolicyList(BaseModel):
    policies: list[PolicyOut]


class PolicyApplied(BaseModel):
    changed: bool = Field(description="False: the stored policy was this one already")
    policy: PolicyOut


class DecisionOut(BaseModel):
    action: str = Field(examples=["policy.trigger", "policy.shadow"])
    time: int = Field(description="ms since the epoch")
    evidence: dict[str, Any]


class Decisions(BaseModel):
    decisions: list[DecisionOut]


def automation_router(settings: Settings) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1", tags=["automation"], route_class=_OrjsonRoute, responses=_ERRORS
    )

    @router.get("/policies", response_model=PolicyList)
    def list_policies() -> Response:
        policies = _policy.list_policies(settings=settings)
        return OrjsonResponse({"policies": [_record(p.name, settings) for p in policies]})

    @router.put(
        "/policies/{name}",
        response_model=PolicyApplied,
        openapi_extra=config_body(_policy.Policy, "policy"),
    )
    def apply_policy(name: PolicyName, body: JsonObject, actor: Actor) -> Response:
        """Create or replace the policy (audited). The deployment, model and monitor it names
        must exist (404 naming each missing one); rules beyond the schema are 422s naming the
        field."""
        config = _policy.parse_policy({**body, "name": body.get("name", name)})
        if config.name != name:
            raise InvalidArgument(
                f"The body names policy {config.name!r} but the URL {name!r}",
                [{"field": "name", "message": "must match the URL"}],
            )
        changed = _policy.apply_policy(config, settings=settings, actor=actor.name)
        return OrjsonResponse({"changed": changed, "policy": _record(name, settings)})

    @router.get("/policies/{name}", response_model=PolicyOut)
    def get_policy(name: PolicyName) -> Response:
        return OrjsonResponse(_record(name, settings))

    @router.delete("/policies/{name}", status_code=204, response_class=Response)
    def delete_policy(name: PolicyName, actor: Actor) -> Response:
        if not _policy.delete_policy(name, settings=settings, actor=actor.name):
            raise NotFound(f"No policy named {name!r}")
        return Response(status_code=204)

    @router.post("/policies/{name}/step", response_model=Decisions)
    def step(
        name: PolicyName, actor: Actor, body: Annotated[StepRequest | None, Body()] = None
    ) -> Response:
        """Step the loop once at the store's clock. It takes no body, or an empty JSON
        object: anything else (another JSON value, a field, bytes that are not JSON) is a 422
        naming the body, never silently ignored."""
        now = store_clock(settings).now  # a simulated store steps at its simulated now
        decisions = loop.step_policy(name, now=now, settings=settings)
        return OrjsonResponse({"decisions": [asdict(d) for d in decisions]})

    @router.post("/policies/{name}/rollout", response_model=DecisionOut)
    def rollout(name: PolicyName, body: RolloutRequest, actor: Actor) -> Response:
        now = store_clock(settings).now
        decision = loop.start_rollout(
            name, body.version, stage=body.stage, now=now, settings=settings
        )
        return OrjsonResponse(asdict(decision))

    @router.get("/policies/{name}/timeline", response_model=Decisions)
    def timeline(name: PolicyName) -> Response:
        decisions = loop.timeline(name, settings=settings)
        return OrjsonResponse({"decisions": [asdict(d) for d in decisions]})

    return router


def _record(name: str, settings: Settings) -> dict[str, Any]:
    config = _policy.get_policy(name, settings=settings)
    state = _policy.policy_state(name, settings=settings)
    return {**config.to_record(), "state": asdict(state)}
