"""What the registry's tables should hold if every change went through an audited call.

An intact chain proves the events are genuine, not that the tables agree with them: a direct
``UPDATE aliases SET version=99`` changes what serves without any event. :class:`Replay` folds
the events, oldest first, into the state they describe, and :meth:`Replay.differences` compares
it with the tables, naming each object that changed without an event.

Reconciled: registered models (existence, description, tags), model versions (existence, run,
artifact path, flavor, package digest, dataset digests, status), aliases, alias requests
(existence, version, status), users (existence, role, disabled, token), and the stored documents
of deployments, monitors and policies. Not reconciled: versions' descriptions and tags, where a
policy's loop stands (``policy_state``, operational), runs, metrics and datasets (not audited).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, select

from modelloop.store import tables as t

_CONFIGS: dict[str, Table] = {
    "deployment": t.deployments,
    "monitor": t.monitors,
    "policy": t.policies,
}
_VERSION_FIELDS = ("run_id", "artifact_path", "flavor", "package_digest", "status")
MAX_DIFFERENCES = 50


def credential(token_sha256: str) -> str:
    """What an event records of a user's token: enough to notice it was swapped, nothing that
    helps to guess it."""
    return hashlib.sha256(b"modelloop-credential:" + token_sha256.encode()).hexdigest()[:16]


@dataclass
class Replay:
    """The state the events describe, each value with the seq of the event that set it."""

    models: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    versions: dict[tuple[str, int], tuple[dict[str, Any], int]] = field(default_factory=dict)
    aliases: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    requests: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    configs: dict[tuple[str, str], tuple[Any, int]] = field(default_factory=dict)
    objects: int = 0  # how many objects were compared, for the report

    def apply(self, row: Any) -> None:
        """Fold one event row (``before``/``after`` as stored JSON text) into the state."""
        handler = _HANDLERS.get(row.action)
        if handler is None and row.action.endswith((".apply", ".delete")):
            handler = _config if row.object_type in _CONFIGS else None
        if handler is not None:
            after = None if row.after is None else json.loads(row.after)
            handler(self, row, after)

    def differences(self, conn: Connection) -> list[str]:
        """Each object whose table row the events do not explain (at most MAX_DIFFERENCES)."""
        found: list[str] = []
        checks = (
            _check_models,
            _check_versions,
            _check_aliases,
            _check_requests,
            _check_users,
            _check_configs,
        )
        for check in checks:
            found.extend(check(self, conn))
        return found[:MAX_DIFFERENCES]


# -- folding events ------------------------------------------------------------------------------


def _model(state: Replay, row: Any, after: Any) -> None:
    state.models[row.object_id] = (
        {"description": after.get("description"), "tags": after.get("tags", {})},
        row.seq,
    )


def _version(state: Replay, row: Any, after: Any) -> None:
    name, _, number = row.object_id.rpartition("/")
    key = (name, int(number))
    if row.action == "model_version.create":
        state.versions[key] = (
            {
                **{f: after.get(f) for f in _VERSION_FIELDS},
                "dataset_digests": after.get("dataset_digests", {}),
            },
            row.seq,
        )
    elif key in state.versions:  # model_version.status
        record = dict(state.versions[key][0])
        record["status"] = after["status"]
        state.versions[key] = (record, row.seq)


def _version_deleted(state: Replay, row: Any, after: Any) -> None:
    name, _, number = row.object_id.rpartition("/")
    state.versions.pop((name, int(number)), None)


def _model_renamed(state: Replay, row: Any, after: Any) -> None:
    """Everything named after the model follows it (aliases block a rename)."""
    old, new = row.object_id, after["name"]
    if old in state.models:
        state.models[new] = (state.models.pop(old)[0], row.seq)
    for key in [k for k in state.versions if k[0] == old]:
        state.versions[(new, key[1])] = state.versions.pop(key)
    for request_id, (record, seq) in list(state.requests.items()):
        if record["name"] == old:
            state.requests[request_id] = ({**record, "name": new}, seq)


def _model_deleted(state: Replay, row: Any, after: Any) -> None:
    """With its versions and alias requests (aliases block a deletion)."""
    name = row.object_id
    state.models.pop(name, None)
    for key in [k for k in state.versions if k[0] == name]:
        del state.versions[key]
    for request_id in [r for r, (record, _) in state.requests.items() if record["name"] == name]:
        del state.requests[request_id]


def _alias(state: Replay, row: Any, after: Any) -> None:
    name, _, alias = row.object_id.rpartition("@")
    if after is None:  # alias.delete
        state.aliases.pop((name, alias), None)
    else:
        state.aliases[(name, alias)] = (after["version"], row.seq)


def _request(state: Replay, row: Any, after: Any) -> None:
    target, _, request_id = row.object_id.rpartition("/")
    name, _, alias = target.rpartition("@")
    state.requests[request_id] = (
        {"name": name, "alias": alias, "version": after["version"], "status": after["status"]},
        row.seq,
    )


def _user(state: Replay, row: Any, after: Any) -> None:
    record = dict(state.users.get(row.object_id, ({}, 0))[0])
    record.update({k: after[k] for k in ("role", "disabled", "credential") if k in after})
    state.users[row.object_id] = (record, row.seq)


def _config(state: Replay, row: Any, after: Any) -> None:
    key = (row.object_type, row.object_id)
    if after is None:
        state.configs.pop(key, None)
    else:
        state.configs[key] = (after, row.seq)


_HANDLERS: dict[str, Callable[[Replay, Any, Any], None]] = {
    "model.create": _model,
    "model.update": _model,
    "model.rename": _model_renamed,
    "model.delete": _model_deleted,
    "model_version.create": _version,
    "model_version.status": _version,
    "model_version.delete": _version_deleted,
    "alias.move": _alias,
    "alias.delete": _alias,
    "alias_request.create": _request,
    "alias_request.approve": _request,
    "alias_request.reject": _request,
    "alias_request.cancel": _request,
    "user.add": _user,
    "user.disable": _user,
    "user.rotate": _user,
}


# -- comparing with the tables -------------------------------------------------------------------


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _compare(state: Replay, what: str, expected: tuple[Any, int] | None, actual: Any) -> list[str]:
    state.objects += 1
    if expected is None:
        return [] if actual is None else [f"{what} exists, but no audit event created it"]
    value, seq = expected
    if actual is None:
        return [f"{what} was deleted without an audit event (event {seq} is its last change)"]
    if actual == value:
        return []
    if isinstance(actual, dict) and isinstance(value, dict):
        changed = sorted(k for k in set(actual) | set(value) if actual.get(k) != value.get(k))
        detail = "; ".join(
            f"{k} is {_short(actual.get(k))}, the audit trail says {_short(value.get(k))}"
            for k in changed
        )
    else:
        detail = f"it is {_short(actual)}, the audit trail says {_short(value)}"
    return [f"{what} changed without an audit event: {detail} (event {seq})"]


def _all(
    state: Replay, what: Callable[[Any], str], expected: dict[Any, Any], actual: dict[Any, Any]
) -> list[str]:
    keys = sorted(set(expected) | set(actual), key=str)
    return [p for k in keys for p in _compare(state, what(k), expected.get(k), actual.get(k))]


def _check_models(state: Replay, conn: Connection) -> list[str]:
    tags: dict[str, dict[str, str]] = {}
    for row in conn.execute(select(t.model_tags)):
        tags.setdefault(row.name, {})[row.key] = row.value
    actual = {
        r.name: {"description": r.description, "tags": tags.get(r.name, {})}
        for r in conn.execute(select(t.registered_models))
    }
    return _all(state, lambda k: f"model {k!r}", state.models, actual)


def _check_versions(state: Replay, conn: Connection) -> list[str]:
    actual = {
        (r.name, r.version): {
            **{f: getattr(r, f) for f in _VERSION_FIELDS},
            "dataset_digests": json.loads(r.dataset_digests),
        }
        for r in conn.execute(select(t.model_versions))
    }
    return _all(state, lambda k: f"version {k[1]} of model {k[0]!r}", state.versions, actual)


def _check_aliases(state: Replay, conn: Connection) -> list[str]:
    actual = {(r.name, r.alias): {"version": r.version} for r in conn.execute(select(t.aliases))}
    expected = {k: ({"version": v}, seq) for k, (v, seq) in state.aliases.items()}
    return _all(state, lambda k: f"alias {k[0]}@{k[1]}", expected, actual)


def _check_requests(state: Replay, conn: Connection) -> list[str]:
    actual = {
        r.request_id: {"name": r.name, "alias": r.alias, "version": r.version, "status": r.status}
        for r in conn.execute(select(t.alias_requests))
    }
    return _all(state, lambda k: f"alias request {k}", state.requests, actual)


def _check_users(state: Replay, conn: Connection) -> list[str]:
    actual = {}
    for row in conn.execute(select(t.users)):
        record = {"role": row.role, "disabled": bool(row.disabled)}
        known = state.users.get(row.name)
        if known is not None and "credential" in known[0]:  # older user.add events lack it
            record["credential"] = credential(row.token_sha256)
        actual[row.name] = record
    return _all(state, lambda k: f"user {k!r}", state.users, actual)


def _check_configs(state: Replay, conn: Connection) -> list[str]:
    actual = {
        (kind, r.name): json.loads(r.config)
        for kind, table in _CONFIGS.items()
        for r in conn.execute(select(table))
    }
    return _all(state, lambda k: f"{k[0]} {k[1]!r}", state.configs, actual)
