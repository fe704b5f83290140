"""Alias requests: the four-eyes path for protected aliases (``champion`` by default).

    request_alias (editor, any alias)  ->  PENDING
    approve_request (someone else)     ->  APPROVED, and the alias moves in the same transaction
    reject_request (someone else)      ->  REJECTED
    cancel_request (the requester)     ->  CANCELLED

Only a PENDING request can be decided (else Conflict). The requester can neither approve nor
reject their own request (Forbidden). An approval whose move is no longer possible (the version
was archived since) fails as a whole and leaves the request PENDING. The approval and the move
are two audit events: ``alias_request.approve`` and ``alias.move``, whose ``after`` names the
request, its requester and its approver; the move's reason is the request's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from modelloop import audit
from modelloop.clock import now_ms
from modelloop.errors import Conflict, Forbidden, NotFound
from modelloop.registry import _rows
from modelloop.registry.entities import (
    AliasRequest,
    RequestStatus,
    VersionStatus,
    check_alias,
    check_model_name,
    check_reason,
    check_request_status,
    check_version,
)
from modelloop.store import Database
from modelloop.store import tables as t
from modelloop.tracking.entities import new_id

_R = t.alias_requests.c
_VERBS = {
    RequestStatus.APPROVED: "approve",
    RequestStatus.REJECTED: "reject",
    RequestStatus.CANCELLED: "cancel",
}


class AliasRequests:
    """The request methods of :class:`~modelloop.registry.sql.SqlRegistryStore`."""

    db: Database

    def request_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str
    ) -> AliasRequest:
        name, alias = check_model_name(name), check_alias(alias)
        version = check_version(version)
        reason = check_reason(reason, f"request moving alias {alias!r}")
        request_id = new_id()
        with audit.recording(self.db, actor) as conn:
            row = _rows.require_version(conn, name, version)
            if row.status != VersionStatus.READY.value:
                raise Conflict(
                    f"Version {version} of {name!r} is {row.status}; an alias can only point at "
                    "a READY version"
                )
            current = _rows.alias_version(conn, name, alias)
            created = now_ms()
            conn.execute(
                insert(t.alias_requests).values(
                    request_id=request_id,
                    name=name,
                    alias=alias,
                    version=version,
                    requested_by=actor,
                    reason=reason,
                    status=RequestStatus.PENDING.value,
                    created_at=created,
                )
            )
            audit.append(
                conn,
                time=created,
                actor=actor,
                action="alias_request.create",
                object_type="alias_request",
                object_id=f"{name}@{alias}/{request_id}",
                before=None,
                after={
                    "request_id": request_id,
                    "status": RequestStatus.PENDING.value,
                    "version": version,
                    "current_version": current,
                },
                reason=reason,
            )
        return self.get_request(request_id)

    def approve_request(
        self, request_id: str, *, actor: str, reason: str | None = None
    ) -> AliasRequest:
        if reason is not None:
            reason = check_reason(reason, "approve the request")
        with audit.recording(self.db, actor) as conn:
            request = _pending(conn, request_id)
            if request.requested_by == actor:
                raise Forbidden(
                    f"{actor!r} requested this move and cannot approve it: another user with "
                    "the approver role must (no self-approval)"
                )
            _decide(conn, request, RequestStatus.APPROVED, actor, reason)
            _rows.move_alias(
                conn,
                request.name,
                request.alias,
                request.version,
                actor,
                request.reason,
                None,
                approval={
                    "request_id": request.request_id,
                    "requested_by": request.requested_by,
                    "approved_by": actor,
                },
            )
        return self.get_request(request_id)

    def reject_request(self, request_id: str, *, actor: str, reason: str) -> AliasRequest:
        reason = check_reason(reason, "reject the request")
        with audit.recording(self.db, actor) as conn:
            request = _pending(conn, request_id)
            if request.requested_by == actor:
                raise Forbidden(f"{actor!r} made this request: cancel it instead of rejecting it")
            _decide(conn, request, RequestStatus.REJECTED, actor, reason)
        return self.get_request(request_id)

    def cancel_request(self, request_id: str, *, actor: str, reason: str) -> AliasRequest:
        reason = check_reason(reason, "cancel the request")
        with audit.recording(self.db, actor) as conn:
            request = _pending(conn, request_id)
            if request.requested_by != actor:
                raise Forbidden(
                    f"Only {request.requested_by!r}, who made this request, can cancel it; "
                    "reject it instead"
                )
            _decide(conn, request, RequestStatus.CANCELLED, actor, reason)
        return self.get_request(request_id)

    def get_request(self, request_id: str) -> AliasRequest:
        with self.db.read() as conn:
            return _request(conn, request_id)

    def list_requests(
        self, name: str | None = None, status: RequestStatus | None = None
    ) -> list[AliasRequest]:
        query = select(t.alias_requests).order_by(_R.created_at, _R.request_id)
        if name is not None:
            query = query.where(_R.name == name)
        if status is not None:
            query = query.where(_R.status == check_request_status(status).value)
        with self.db.read() as conn:
            return [_entity(row) for row in conn.execute(query).all()]


def _request(conn: Any, request_id: str) -> AliasRequest:
    row = None
    if isinstance(request_id, str) and len(request_id) <= 32:
        row = conn.execute(select(t.alias_requests).where(_R.request_id == request_id)).first()
    if row is None:
        raise NotFound(f"Alias request {request_id!r} does not exist")
    return _entity(row)


def _pending(conn: Any, request_id: str) -> AliasRequest:
    request = _request(conn, request_id)
    if request.status is not RequestStatus.PENDING:
        raise Conflict(
            f"Request {request_id} is already {request.status.value} (by {request.decided_by}); "
            "only a PENDING request can be decided"
        )
    return request


def _decide(
    conn: Any, request: AliasRequest, status: RequestStatus, actor: str, reason: str | None
) -> None:
    decided = now_ms()
    conn.execute(
        update(t.alias_requests)
        .where(_R.request_id == request.request_id)
        .values(status=status.value, decided_by=actor, decided_at=decided, decision_reason=reason)
    )
    audit.append(
        conn,
        time=decided,
        actor=actor,
        action=f"alias_request.{_VERBS[status]}",
        object_type="alias_request",
        object_id=f"{request.name}@{request.alias}/{request.request_id}",
        before={"status": RequestStatus.PENDING.value},
        after={
            "status": status.value,
            "version": request.version,
            "requested_by": request.requested_by,
        },
        reason=reason,
    )


def _entity(row: Any) -> AliasRequest:
    return AliasRequest(
        request_id=row.request_id,
        name=row.name,
        alias=row.alias,
        version=row.version,
        requested_by=row.requested_by,
        reason=row.reason,
        status=RequestStatus(row.status),
        created_at=row.created_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
    )
