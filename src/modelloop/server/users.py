"""User routes under ``/api/v1/users``, for admins only: add users, read them, disable them and
replace a user's token. A token is in the answer once (adding, replacing) and never stored."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.responses import Response

from modelloop.auth import User, Users, check_user_name
from modelloop.server.registry import _ERRORS, Admin, _Body
from modelloop.server.schemas import Checked, Reason
from modelloop.server.tracking import _OrjsonRoute
from modelloop.web.responses import OrjsonResponse

USER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,255}$"  # auth.check_user_name
RoleName = Literal["viewer", "editor", "approver", "admin"]
UserName = Annotated[
    str,
    Path(description="User name: 1-256 letters, digits, '_', '.', '@', '+', '-'"),
    *Checked(USER_NAME, check_user_name),
]


class NewUser(_Body):
    name: Annotated[str, *Checked(USER_NAME, check_user_name)]
    role: RoleName = "editor"


class Why(_Body):
    reason: Reason | None = None


class UserOut(BaseModel):
    name: str
    role: RoleName
    created_at: int
    disabled: bool


class UserList(BaseModel):
    users: list[UserOut]


class AddedUser(BaseModel):
    user: UserOut
    token: str = Field(description="The user's token, shown only in this answer")


class NewToken(BaseModel):
    token: str = Field(description="The user's new token, shown only in this answer")


def _record(user: User) -> dict[str, object]:
    return {
        "name": user.name,
        "role": user.role.value,
        "created_at": user.created_at,
        "disabled": user.disabled,
    }


def users_router(users: Users) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1", tags=["users"], route_class=_OrjsonRoute, responses=_ERRORS
    )

    @router.get("/users", response_model=UserList)
    def list_users(admin: Admin) -> Response:
        return OrjsonResponse({"users": [_record(u) for u in users.list()]})

    @router.post("/users", status_code=201, response_model=AddedUser)
    def add_user(body: NewUser, admin: Admin) -> Response:
        user, token = users.add(body.name, body.role, actor=admin.name)
        return OrjsonResponse({"user": _record(user), "token": token}, 201)

    @router.get("/users/{name}", response_model=UserOut)
    def get_user(name: UserName, admin: Admin) -> Response:
        return OrjsonResponse(_record(users.get(name)))

    @router.post("/users/{name}/disable", response_model=UserOut)
    def disable_user(name: UserName, body: Why, admin: Admin) -> Response:
        return OrjsonResponse(_record(users.disable(name, actor=admin.name, reason=body.reason)))

    @router.post("/users/{name}/token", response_model=NewToken)
    def rotate_token(name: UserName, body: Why, admin: Admin) -> Response:
        token = users.rotate_token(name, actor=admin.name, reason=body.reason)
        return OrjsonResponse({"token": token})

    return router
