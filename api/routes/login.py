"""Browser sign-in: a token typed once becomes a server-side session (the cookie holds the session id, never
the token); failed attempts are rate-limited per client address and logged with it; logout ends the session."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.pages.auth import (
    COOKIE,
    end_session_of,
    log_failed_login,
    new_session,
    principal_of,
    session_cookie,
    unthrottled,
)

router = APIRouter(tags=["login"])
HOME = "/dashboards/fleet"


def _target(next_: str) -> str:
    return next_ if next_.startswith("/") and not next_.startswith("//") and "\\" not in next_ else HOME


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str = HOME, error: str | None = None) -> HTMLResponse:
    from api.routes.dashboards import render

    shown = error if error in ("token not accepted",) else None  # never reflect free text from the address
    return render(request, "login.html", {"title": "Sign in", "next": _target(next), "error": shown, "charts": {},
                                          "at": None})


@router.post("/login", include_in_schema=False)
def login(request: Request, token: Annotated[str, Form(max_length=200)],
          next: Annotated[str, Form(max_length=2000)] = HOME) -> Response:
    throttle, address = unthrottled(request)
    target = _target(next)
    who = principal_of(request, token)
    if who is None or "analyst" not in who.scopes:
        throttle.failed(address)
        log_failed_login(request, "token_not_accepted")
        return RedirectResponse("/login?" + urlencode({"next": target, "error": "token not accepted"}),
                                status_code=status.HTTP_303_SEE_OTHER)
    throttle.succeeded(address)
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    response.headers["set-cookie"] = session_cookie(request, new_session(request, who))
    return response


@router.get("/logout", include_in_schema=False)
@router.post("/logout", include_in_schema=False)
def logout(request: Request) -> Response:
    end_session_of(request)
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/")
    return response
