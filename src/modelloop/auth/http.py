"""The users of a server, through its admin-only ``/api/v1/users`` routes (a
:class:`~modelloop.auth.UserStore`): the same answers and errors as the database's."""

from __future__ import annotations

from typing import Any

from modelloop.auth import USER_HEADER, Role, User, check_role
from modelloop.transport import DEFAULT_TIMEOUT, Transport, segment


class HttpUserStore:
    def __init__(
        self, url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._transport = Transport(url, token=token, timeout=timeout)
        self.url = self._transport.url

    def __repr__(self) -> str:
        return f"HttpUserStore({self.url!r})"

    def close(self) -> None:
        self._transport.close()

    def add(self, name: str, role: Role | str, *, actor: str) -> tuple[User, str]:
        body = {"name": name, "role": check_role(role).value}
        answer = self._call("POST", "/users", body, actor)
        return _user(answer["user"]), str(answer["token"])

    def list(self) -> list[User]:
        return [_user(u) for u in self._transport.call("GET", "/users")["users"]]

    def get(self, name: str) -> User:
        return _user(self._transport.call("GET", f"/users/{segment(name)}"))

    def disable(self, name: str, *, actor: str, reason: str | None = None) -> User:
        path = f"/users/{segment(name)}/disable"
        return _user(self._call("POST", path, {"reason": reason}, actor))

    def rotate_token(self, name: str, *, actor: str, reason: str | None = None) -> str:
        path = f"/users/{segment(name)}/token"
        return str(self._call("POST", path, {"reason": reason}, actor)["token"])

    def _call(self, method: str, path: str, body: Any, actor: str) -> Any:
        """``actor`` is who acts on a server without authentication; with it, the token's user."""
        return self._transport.call(method, path, body, headers={USER_HEADER: actor})


def _user(record: dict[str, Any]) -> User:
    return User(record["name"], Role(record["role"]), record["created_at"], record["disabled"])
