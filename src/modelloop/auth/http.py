"""The users of a server, through its admin-only ``/api/v1/users`` routes (a
:class:`~modelloop.auth.UserStore`): the same answers and errors as the database's."""

from __future__ import annotations

from typing import Any

from modelloop.auth import Role, User, check_role
from modelloop.transport import HttpStore, segment


class HttpUserStore(HttpStore):
    def add(self, name: str, role: Role | str, *, actor: str) -> tuple[User, str]:
        body = {"name": name, "role": check_role(role).value}
        answer = self._call("POST", "/users", body, actor=actor)
        return _user(answer["user"]), str(answer["token"])

    def list(self) -> list[User]:
        return [_user(u) for u in self._call("GET", "/users")["users"]]

    def get(self, name: str) -> User:
        return _user(self._call("GET", f"/users/{segment(name)}"))

    def disable(self, name: str, *, actor: str, reason: str | None = None) -> User:
        path = f"/users/{segment(name)}/disable"
        return _user(self._call("POST", path, {"reason": reason}, actor=actor))

    def rotate_token(self, name: str, *, actor: str, reason: str | None = None) -> str:
        path = f"/users/{segment(name)}/token"
        return str(self._call("POST", path, {"reason": reason}, actor=actor)["token"])


def _user(record: dict[str, Any]) -> User:
    return User(record["name"], Role(record["role"]), record["created_at"], record["disabled"])
