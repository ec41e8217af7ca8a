"""Who may see a page: analysts (bearer token, or the same token as a cookie for browsers) and
customers (a link signed with settings.api.customer_link_secret that shows only their meters)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlencode

from fastapi import HTTPException, Request, status

from meterflow.config import Settings

COOKIE = "meterflow_token"


def token_accepted(settings: Settings, given: str | None) -> bool:
    if not given:
        return False
    raw = given.encode()
    return any(hmac.compare_digest(raw, t.get_secret_value().encode()) for t in settings.api.tokens)


def request_token(request: Request) -> str | None:
    """The analyst token of a request: `Authorization: Bearer`, else the cookie, else `?token=`."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE) or request.query_params.get("token")


def _cookie_header(token: str) -> str:
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000"


def require_analyst(request: Request) -> str:
    """Analyst pages: a valid token (header, cookie or ?token=). A browser without one is sent to /login;
    a valid `?token=` is moved into a cookie and the URL is cleaned (both by a 303 redirect)."""
    settings: Settings = request.app.state.settings
    token = request_token(request)
    if token_accepted(settings, token):
        query_token = request.query_params.get("token")
        if query_token and not request.headers.get("authorization"):
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            target = request.url.path + (f"?{rest}" if rest else "")
            raise HTTPException(status.HTTP_303_SEE_OTHER, "token stored in a cookie",
                                headers={"Location": target, "Set-Cookie": _cookie_header(query_token)})
        return "analyst"
    if token is None and "text/html" in request.headers.get("accept", ""):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(status.HTTP_303_SEE_OTHER, "login required",
                            headers={"Location": "/login?" + urlencode({"next": here})})
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing token", headers={"WWW-Authenticate": "Bearer"})
    raise HTTPException(status.HTTP_403_FORBIDDEN, "token not accepted")


def customer_signature(settings: Settings, customer_ref: str) -> str:
    """HMAC-SHA256 of the customer reference, hex, truncated to 128 bits."""
    key = settings.api.customer_link_secret.get_secret_value().encode()
    return hmac.new(key, b"customer:" + customer_ref.encode(), hashlib.sha256).hexdigest()[:32]


def customer_link(settings: Settings, customer_ref: str, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/c/{quote(customer_ref, safe='')}?sig={customer_signature(settings, customer_ref)}"


def require_customer(settings: Settings, customer_ref: str, sig: str | None) -> None:
    if not sig or not hmac.compare_digest(sig.encode(), customer_signature(settings, customer_ref).encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "link signature not valid for this customer")
