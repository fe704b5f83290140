"""Automation policy routes under ``/api/v1/policies``: declare (PUT, audited), read with the
loop's state, delete, step on demand (the server's scheduler steps them anyway), start a rollout
by hand, and read the timeline of decisions from the audit trail.

What :class:`~modelloop.automation.http.HttpPolicyStore` calls: every read and change goes
through the server's :class:`~modelloop.automation.sql.SqlPolicyStore`, so its rules and
messages are the answer; the loop (step, rollout) runs here, where the data is."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from modelloop.automation import loop
from modelloop.automation.entities import (
    Policy,
    PolicyState,
    check_policy_name,
    parse_policy,
    policy_not_found,
)
from modelloop.automation.sql import SqlPolicyStore
from modelloop.errors import InvalidArgument
from modelloop.server.registry import _ERRORS, Actor
from modelloop.server.schemas import (
    CONFIG_NAME,
    INTEGRAL,
    Checked,
    JsonObject,
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
    *Checked(CONFIG_NAME, check_policy_name),
]
Limit = Annotated[
    int | None,
    Query(ge=1, lt=2**31, description="Only the newest N decisions (still oldest first)"),
]


class RolloutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: Annotated[int, Field(ge=1, lt=2**31), INTEGRAL]
    stage: Literal["shadow", "canary"] = "shadow"


class StepRequest(BaseModel):
    """A step takes nothing: no body, or an empty JSON object."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PolicyStateOut(BaseModel):
    stage: Literal["idle", "shadow", "canary", "awaiting_approval"]
    challenger_version: int | None
    champion_version: int | None
    stage_started_at: int | None
    last_trained_at: int | None
    last_checked_at: int | None
    trainings: int
    request_id: str | None = Field(description="Awaiting approval of this alias request")


class PolicyOut(Policy):
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
    store = SqlPolicyStore(settings)

    def record(name: str) -> dict[str, Any]:
        return {**store.get(name).to_record(), "state": store.state(name).to_record()}

    @router.get("/policies", response_model=PolicyList)
    def list_policies() -> Response:
        states, idle = store.states(), PolicyState("idle")
        listed = [
            {**p.to_record(), "state": states.get(p.name, idle).to_record()} for p in store.list()
        ]
        return OrjsonResponse({"policies": listed})

    @router.put(
        "/policies/{name}",
        response_model=PolicyApplied,
        openapi_extra=config_body(Policy, "policy"),
    )
    def apply_policy(name: PolicyName, body: JsonObject, actor: Actor) -> Response:
        """Create or replace the policy (audited). The deployment, model and monitor it names
        must exist (404 naming each missing one); rules beyond the schema are 422s naming the
        field."""
        config = parse_policy({**body, "name": body.get("name", name)})
        if config.name != name:
            raise InvalidArgument(
                f"The body names policy {config.name!r} but the URL {name!r}",
                [{"field": "name", "message": "must match the URL"}],
            )
        changed = store.apply(config, actor=actor.name)
        return OrjsonResponse({"changed": changed, "policy": record(name)})

    @router.get("/policies/{name}", response_model=PolicyOut)
    def get_policy(name: PolicyName) -> Response:
        return OrjsonResponse(record(name))

    @router.delete("/policies/{name}", status_code=204, response_class=Response)
    def delete_policy(name: PolicyName, actor: Actor) -> Response:
        """Delete the policy and its loop's state (audited); its decisions stay in the audit
        trail, and a rollout in progress stays as it stands."""
        if not store.delete(name, actor=actor.name):
            raise policy_not_found(name)
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
        """Put a registered version under the policy's watch by hand (recorded as started by
        the request's user)."""
        now = store_clock(settings).now
        decision = loop.start_rollout(
            name, body.version, stage=body.stage, now=now, settings=settings, actor=actor.name
        )
        return OrjsonResponse(asdict(decision))

    @router.get("/policies/{name}/timeline", response_model=Decisions)
    def timeline(name: PolicyName, limit: Limit = None) -> Response:
        """The loop's decisions, oldest first, from the audit trail (declaring or deleting the
        policy is no decision)."""
        decisions = store.decisions(name, limit)
        return OrjsonResponse({"decisions": [asdict(d) for d in decisions]})

    return router
