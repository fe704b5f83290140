"""Users, roles and tokens: who a server request acts as, and what it may do.

Roles are ordered, each allowing what the ones below it allow::

    viewer < editor < approver < admin
    read     + write   + approve alias requests   + everything

A user's token is shown once, when the user is added (``modelloop users add``), and only its
sha256 is stored: a leaked database does not leak working tokens. A server accepts the admin
token (``MODELLOOP_TOKEN``, acting as ``admin``) or the token of any enabled user (acting as that
user). Roles are enforced by the server only: the local SDK acts on a database its user can open
anyway. Adding and disabling users and replacing their tokens is audited like any registry
change.

Users are kept by a :class:`UserStore`: :class:`Users` on the metadata database, or
:class:`~modelloop.auth.http.HttpUserStore` through a server's admin-only ``/api/v1/users``
routes; :func:`open_user_store` picks one from the settings.

A configured token must be at least :data:`MIN_TOKEN_LENGTH` characters (``check_token``: a
blank or guessable ``MODELLOOP_TOKEN`` would only look like protection);
``modelloop users token --generate`` prints a strong one. Every presented token, from a bearer
header or the login cookie, is compared by :func:`token_matches`: surrounding whitespace
stripped, blank never matching, in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from modelloop import audit
from modelloop.audit.state import credential
from modelloop.clock import now_ms
from modelloop.errors import AlreadyExists, InvalidArgument, NotFound
from modelloop.store import Database
from modelloop.store import tables as t

if TYPE_CHECKING:
    from modelloop.settings import Settings


ADMIN = "admin"  # the actor of the server's own token
ANONYMOUS = "anonymous"  # the actor of a request to an unauthenticated server that names none
_RESERVED = frozenset({ADMIN, ANONYMOUS})
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,255}$")
MIN_TOKEN_LENGTH = 16
GENERATE_HINT = "generate one with 'modelloop users token --generate'"


class Role(StrEnum):
    viewer = "viewer"
    editor = "editor"
    approver = "approver"
    admin = "admin"

    def allows(self, needed: Role) -> bool:
        """True when this role may do what ``needed`` may."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.viewer: 0, Role.editor: 1, Role.approver: 2, Role.admin: 3}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    created_at: int
    disabled: bool


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a server request acts as; ``verified`` is False for a name merely claimed in the
    ``X-Modelloop-User`` header of a server without authentication."""

    name: str
    role: Role
    verified: bool = True


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_token() -> str:
    """A strong random token (256 bits, 43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def check_token(token: str, source: str = "The token (MODELLOOP_TOKEN or --token)") -> str:
    """``token`` when it is strong enough to require; ``source`` names where it was set."""
    if not token.strip():
        raise InvalidArgument(f"{source} is empty or only whitespace: {GENERATE_HINT}")
    if token != token.strip():
        raise InvalidArgument(
            f"{source} starts or ends with whitespace, which clients' tokens lose: remove it, "
            f"or {GENERATE_HINT}"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise InvalidArgument(
            f"{source} is too short ({len(token)} characters, at least {MIN_TOKEN_LENGTH} "
            f"needed): {GENERATE_HINT}"
        )
    return token


def presented_token(raw: bytes | None) -> bytes | None:
    """A token as sent (bearer credentials or the cookie's value), whitespace stripped;
    None when there is none, so blank credentials never reach a comparison."""
    token = (raw or b"").strip()
    return token or None


def token_matches(presented: bytes | None, expected: bytes) -> bool:
    """Constant-time comparison of a :func:`presented_token` with a configured token."""
    return presented is not None and hmac.compare_digest(presented, expected)


def check_user_name(name: object) -> str:
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise InvalidArgument(
            f"Invalid user name {name!r}: use 1-256 letters, digits, '_', '.', '@', '+' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_role(role: object) -> Role:
    try:
        return Role(str(role))
    except ValueError:
        raise InvalidArgument(
            f"Invalid role {role!r}: use one of {', '.join(r.value for r in Role)}"
        ) from None


class UserStore(Protocol):
    """Who may use a server: add, read, disable users and replace a user's token (all audited
    but reads). A token is returned once, by :meth:`add` and :meth:`rotate_token`."""

    def add(self, name: str, role: Role | str, *, actor: str) -> tuple[User, str]: ...
    def list(self) -> list[User]: ...
    def get(self, name: str) -> User: ...
    def disable(self, name: str, *, actor: str, reason: str | None = None) -> User: ...
    def rotate_token(self, name: str, *, actor: str, reason: str | None = None) -> str: ...
    def close(self) -> None: ...


def open_user_store(settings: Settings) -> UserStore:
    """The users of the server ``settings.tracking_uri`` names (its admin token needed), else of
    the metadata database."""
    if settings.tracking_uri is not None:
        from modelloop.auth.http import HttpUserStore

        return HttpUserStore(settings.tracking_uri, token=settings.token)
    from modelloop.store import open_database

    return Users(open_database(settings.database_url))


class Users:
    """The users table of one database (a :class:`UserStore`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, role: Role | str, *, actor: str) -> tuple[User, str]:
        """Create a user; returns it with its token, which is never shown again."""
        name = check_user_name(name)
        if name in _RESERVED:
            raise InvalidArgument(f"User name {name!r} is reserved")
        checked = check_role(role)
        token = secrets.token_urlsafe(32)
        user = User(name, checked, now_ms(), disabled=False)
        try:
            with audit.recording(self.db, actor) as conn:
                conn.execute(
                    insert(t.users).values(
                        name=name,
                        token_sha256=hash_token(token),
                        role=checked.value,
                        created_at=user.created_at,
                        disabled=False,
                    )
                )
                audit.append(
                    conn,
                    time=user.created_at,
                    actor=actor,
                    action="user.add",
                    object_type="user",
                    object_id=name,
                    before=None,
                    after={
                        "name": name,
                        "role": checked.value,
                        "disabled": False,
                        "credential": credential(hash_token(token)),
                    },
                )
        except IntegrityError:
            raise AlreadyExists(f"User {name!r} already exists") from None
        return user, token

    def list(self) -> list[User]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.name)).all()
        return [User(r.name, Role(r.role), r.created_at, bool(r.disabled)) for r in rows]

    def get(self, name: str) -> User:
        with self.db.read() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
        if row is None:
            raise NotFound(f"User {name!r} does not exist")
        return User(row.name, Role(row.role), row.created_at, bool(row.disabled))

    def disable(self, name: str, *, actor: str, reason: str | None = None) -> User:
        """Refuse the user's token from now on (idempotent; the user stays in the audit log)."""
        with audit.recording(self.db, actor) as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
            if row is None:
                raise NotFound(f"User {name!r} does not exist")
            if not row.disabled:
                conn.execute(update(t.users).where(t.users.c.name == name).values(disabled=True))
                audit.append(
                    conn,
                    time=now_ms(),
                    actor=actor,
                    action="user.disable",
                    object_type="user",
                    object_id=name,
                    before={"disabled": False, "role": row.role},
                    after={"disabled": True, "role": row.role},
                    reason=reason,
                )
        return self.get(name)

    def rotate_token(self, name: str, *, actor: str, reason: str | None = None) -> str:
        """A new token for the user, returned once; the old one stops working at once."""
        token = secrets.token_urlsafe(32)
        with audit.recording(self.db, actor) as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
            if row is None:
                raise NotFound(f"User {name!r} does not exist")
            conn.execute(
                update(t.users).where(t.users.c.name == name).values(token_sha256=hash_token(token))
            )
            audit.append(
                conn,
                time=now_ms(),
                actor=actor,
                action="user.rotate",
                object_type="user",
                object_id=name,
                before={"credential": credential(row.token_sha256)},
                after={"credential": credential(hash_token(token))},
                reason=reason,
            )
        return token

    def close(self) -> None:
        """Nothing to release: the database is shared (``store.close_database`` closes it)."""

    def exist(self) -> bool:
        """True once any user was added: the server then requires tokens."""
        with self.db.read() as conn:
            return conn.execute(select(t.users.c.name).limit(1)).first() is not None

    def authenticate(self, token: str) -> Principal | None:
        """The enabled user holding ``token``, or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(t.users.c.name, t.users.c.role).where(
                    t.users.c.token_sha256 == hash_token(token), t.users.c.disabled.is_(False)
                )
            ).first()
        return None if row is None else Principal(row.name, Role(row.role))
