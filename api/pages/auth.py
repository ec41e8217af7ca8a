"""Who may see what.

Analysts and systems: a named token with scopes (`meterflow tokens add`), sent as `Authorization: Bearer`,
or, for browsers, a server-side session whose random id is the login cookie (the token never is). Tokens of
settings `api.tokens` are bootstrap tokens with every scope, named "analyst", "analyst-2", ...

Customers: a link signed with a timed signature (itsdangerous) that expires after `api.customer_link_days`;
opening it also sets a signed, expiring customer-session cookie, so a customer's further pages need no
signature in their address. A customer sees only their own meters (storage tenancies decide which, and
from when).
"""

from __future__ import annotations

import hmac
import time
from collections import defaultdict, deque
from collections.abc import Callable
from urllib.parse import quote, urlencode

from fastapi import HTTPException, Request, status
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from meterflow.config import Settings
from meterflow.logs import ctx, get_logger
from meterflow.secrets import link_secret
from storage.tokens import SCOPES, Principal, principal_of_session, principal_of_token

log = get_logger(__name__)

COOKIE = "meterflow_session"
CUSTOMER_COOKIE = "meterflow_customer"
_LINK_SALT = "meterflow.customer-link"
_SESSION_SALT = "meterflow.customer-session"


# --------------------------------------------------------------------------------------------- analysts


def bootstrap_principal(settings: Settings, given: str) -> Principal | None:
    raw = given.encode("utf-8", "surrogatepass")
    for i, token in enumerate(settings.api.tokens):
        if hmac.compare_digest(raw, token.get_secret_value().encode()):
            return Principal("analyst" if i == 0 else f"analyst-{i + 1}", frozenset(SCOPES))
    return None


def principal_of(request: Request, token: str) -> Principal | None:
    """The principal of a token: a bootstrap token of the settings, else a named token in the database."""
    settings: Settings = request.app.state.settings
    if not token or len(token) > 200 or "\x00" in token:
        return None
    found = bootstrap_principal(settings, token)
    if found is not None:
        return found
    with request.app.state.pool.connection() as conn:
        return principal_of_token(conn, token)


def token_accepted(settings: Settings, given: str | None) -> bool:
    """A bootstrap token of the settings (kept for callers that have no database at hand)."""
    return bool(given) and bootstrap_principal(settings, given or "") is not None


def _session_principal(request: Request) -> Principal | None:
    session = request.cookies.get(COOKIE)
    if not session or len(session) > 200 or "\x00" in session:
        return None
    with request.app.state.pool.connection() as conn:
        return principal_of_session(conn, session)


def authenticate(request: Request) -> Principal | None:
    """The caller of a request: `Authorization: Bearer` token, else the session cookie, else `?token=`."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else None
    found = None if given is not None else _session_principal(request)
    if found is None and given is None and request.query_params.get("token"):
        given = request.query_params["token"]
    if given is not None:
        # a wrong token counts like a failed sign-in: guessing through the API is as slow as through /login
        throttle, address = unthrottled(request)
        found = principal_of(request, given)
        if found is None:
            throttle.failed(address)
            log_failed_login(request, "token_not_accepted")
    request.state.principal = found
    return found


def _refuse(request: Request, given: bool) -> HTTPException:
    if not given and "text/html" in request.headers.get("accept", ""):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return HTTPException(status.HTTP_303_SEE_OTHER, "login required",
                             headers={"Location": "/login?" + urlencode({"next": here})})
    if not given:
        return HTTPException(status.HTTP_401_UNAUTHORIZED, "missing token", headers={"WWW-Authenticate": "Bearer"})
    return HTTPException(status.HTTP_403_FORBIDDEN, "token not accepted for this")


def _credentials_given(request: Request) -> bool:
    return bool(request.headers.get("authorization") or request.cookies.get(COOKIE)
                or request.query_params.get("token"))


def require_scope(scope: str) -> Callable[[Request], str]:
    """A dependency: the caller's NAME when it holds `scope`; 401/403 (or a redirect to /login) otherwise."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def dependency(request: Request) -> str:
        who = authenticate(request)
        if who is None or scope not in who.scopes:
            raise _refuse(request, _credentials_given(request))
        if request.query_params.get("token") and not request.headers.get("authorization"):
            _move_query_token_into_session(request, who)
        return who.name

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


def require_analyst(request: Request) -> str:
    """Analyst pages and actions: the NAME of the authenticated token or user (recorded as the actor of writes)."""
    return _require_analyst_scope(request)


_require_analyst_scope = require_scope("analyst")


def _move_query_token_into_session(request: Request, who: Principal) -> None:
    """A `?token=` link (a bookmark, the demo) becomes a session cookie and the address loses the token."""
    rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
    target = request.url.path + (f"?{rest}" if rest else "")
    session = new_session(request, who)
    raise HTTPException(status.HTTP_303_SEE_OTHER, "token moved into a session",
                        headers={"Location": target, "Set-Cookie": session_cookie(request, session)})


def new_session(request: Request, who: Principal) -> str:
    from storage.tokens import start_session

    settings: Settings = request.app.state.settings
    with request.app.state.pool.connection() as conn:
        return start_session(conn, who, settings.api.session_hours, client_address(request))


def session_cookie(request: Request, session: str) -> str:
    settings: Settings = request.app.state.settings
    secure = "; Secure" if request.url.scheme == "https" else ""
    max_age = int(settings.api.session_hours * 3600)
    return f"{COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"


def end_session_of(request: Request) -> None:
    from storage.tokens import end_session

    session = request.cookies.get(COOKIE)
    if session and len(session) <= 200 and "\x00" not in session:
        with request.app.state.pool.connection() as conn:
            end_session(conn, session)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class LoginThrottle:
    """Failed logins per client address within a sliding window; beyond the limit the address gets 429."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, address: str) -> deque[float]:
        q = self._failures[address]
        cutoff = time.monotonic() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def blocked(self, address: str) -> bool:
        return len(self._recent(address)) >= self.max_failures

    def failed(self, address: str) -> None:
        self._recent(address).append(time.monotonic())
        if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


def unthrottled(request: Request) -> tuple[LoginThrottle, str]:
    """The app's throttle and the client's address; 429 when that address failed too often lately."""
    throttle: LoginThrottle = request.app.state.login_throttle
    address = client_address(request)
    if throttle.blocked(address):
        log_failed_login(request, "rate_limited")
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed attempts: wait and try again",
                            headers={"Retry-After": str(int(throttle.window_s))})
    return throttle, address


def log_failed_login(request: Request, reason: str) -> None:
    log.warning("login refused", extra=ctx(client=client_address(request), reason=reason))


# --------------------------------------------------------------------------------------------- customers


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(link_secret(settings), salt=salt)


def customer_signature(settings: Settings, customer_ref: str) -> str:
    """The `sig` of a customer link: a timed signature of the customer reference."""
    return _serializer(settings, _LINK_SALT).dumps(customer_ref)


def customer_link(settings: Settings, customer_ref: str, base_url: str) -> str:
    return (f"{base_url.rstrip('/')}/c/{quote(customer_ref, safe='')}?"
            + urlencode({"sig": customer_signature(settings, customer_ref)}))


def _loads(settings: Settings, salt: str, value: str, max_age_s: float) -> str | None:
    if not value or len(value) > 1000:
        return None
    try:
        loaded = _serializer(settings, salt).loads(value, max_age=int(max_age_s))
    except (SignatureExpired, BadSignature):
        return None
    return loaded if isinstance(loaded, str) else None


def _link_max_age(settings: Settings) -> float:
    return settings.api.customer_link_days * 86400.0


def require_customer(settings: Settings, customer_ref: str, sig: str | None) -> None:
    """A valid, unexpired link signature for exactly this customer, else 403."""
    if _loads(settings, _LINK_SALT, sig or "", _link_max_age(settings)) != customer_ref:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this link is not valid (expired, or for someone else)")


def customer_session_cookie(request: Request, customer_ref: str) -> str:
    """The Set-Cookie value of a customer session (signed and expiring with the link's lifetime)."""
    settings: Settings = request.app.state.settings
    value = _serializer(settings, _SESSION_SALT).dumps(customer_ref)
    secure = "; Secure" if request.url.scheme == "https" else ""
    return (f"{CUSTOMER_COOKIE}={value}; Path=/c/; HttpOnly; SameSite=Lax; "
            f"Max-Age={int(_link_max_age(settings))}{secure}")


def customer_from_request(request: Request) -> str:
    """The customer a request speaks for: the path's customer with a valid `?sig=`, else the signed
    customer-session cookie. 403 otherwise; a customer can never name another customer."""
    settings: Settings = request.app.state.settings
    claimed = request.path_params.get("customer_ref")
    sig = request.query_params.get("sig")
    max_age = _link_max_age(settings)
    if sig:  # a link's signature decides alone: a tampered or expired one is refused even with a session
        ref = _loads(settings, _LINK_SALT, sig, max_age)
        if ref is not None and (claimed is None or ref == claimed):
            return ref
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this link is not valid (expired, or for someone else)")
    cookie = request.cookies.get(CUSTOMER_COOKIE)
    if cookie:
        ref = _loads(settings, _SESSION_SALT, cookie, max_age)
        if ref is not None and (claimed is None or ref == claimed):
            return ref
    raise HTTPException(status.HTTP_403_FORBIDDEN, "this link is not valid (expired, or for someone else)")


def as_of_allowed(request: Request) -> bool:
    """`?now=` (looking at another time) is for analysts, and for customers only in a demo."""
    settings: Settings = request.app.state.settings
    if settings.api.as_of_for_customers:
        return True
    who = authenticate(request)
    return who is not None and "analyst" in who.scopes
