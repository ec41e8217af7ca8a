"""HTTP hygiene of the web app: security headers on every response, capped request bodies, no NUL bytes,
error bodies that never echo the input, and API docs served from the app's own files (no CDN).

One pure ASGI middleware does the per-request part, so streaming bodies are counted as they arrive and
refused at the cap instead of being read whole first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterflow.logs import ctx, get_logger

log = get_logger(__name__)

# plotly.js draws with inline style attributes and data: images; every script is a file of the app itself
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
MAX_ERROR_TEXT = 300


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


#: text from outside that is stored or used in queries (PostgreSQL text cannot hold NUL)
Text = Annotated[str, AfterValidator(_no_nul)]


def _plain(status_code: int, detail: str,
           headers: list[tuple[bytes, bytes]] | None = None) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"detail": detail}).encode()
    start = {"type": "http.response.start", "status": status_code,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *HEADERS, *(headers or [])]}
    return start, body


class SecurityMiddleware:
    """Security headers on every response; 413 beyond `max_body` bytes; 400 for NUL bytes in the address."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode()
        if b"%00" in raw_path or b"\x00" in raw_path or b"%00" in scope.get("query_string", b"") \
                or "\x00" in scope.get("path", ""):
            await self._answer(send, 400, "NUL bytes are not allowed in addresses")
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self._answer(send, 413, f"request body larger than {self.max_body} bytes")
            return
        received = 0
        too_big = False

        async def counted_receive() -> Message:
            nonlocal received, too_big
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    too_big = True
                    return {"type": "http.disconnect"}
            return message

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in names)]
            await send(message)

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except Exception:
            if not (too_big and not started):
                raise
        if too_big and not started:
            await self._answer(send, 413, f"request body larger than {self.max_body} bytes")

    @staticmethod
    async def _answer(send: Send, code: int, detail: str) -> None:
        start, body = _plain(code, detail)
        await send(start)
        await send({"type": "http.response.body", "body": body})


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's error list without the `input` (and `ctx`) that would echo what the client sent."""
    out = []
    for err in exc.errors():
        loc = [str(x)[:64] for x in err.get("loc", ())][:8]
        out.append({"loc": loc, "msg": str(err.get("msg", ""))[:MAX_ERROR_TEXT], "type": err.get("type", "")})
    return out[:20]


def install(app: FastAPI, max_body: int) -> None:
    """Add the middleware, the error handlers and the self-hosted /docs to an app."""
    app.add_middleware(SecurityMiddleware, max_body=max_body)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_errors(exc)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return JSONResponse({"detail": detail[:MAX_ERROR_TEXT]}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(psycopg.DataError)
    async def data_error(request: Request, exc: psycopg.DataError) -> JSONResponse:
        log.warning("request refused by the database", extra=ctx(path=request.url.path, error=type(exc).__name__))
        return JSONResponse({"detail": "a value in the request is out of range or malformed"},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", extra=ctx(path=request.url.path, error=type(exc).__name__))
        return JSONResponse({"detail": "internal error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)

    _self_hosted_docs(app)


def _self_hosted_docs(app: FastAPI) -> None:
    """Swagger UI from the files the fastapi-offline package ships; its start script is a file of ours, so the
    CSP stays strict (no inline script)."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/static/swagger-ui", StaticFiles(directory=assets), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>meterflow API</title>"
            "<link rel='stylesheet' href='/static/swagger-ui/swagger-ui.css'>"
            "<link rel='icon' href='/favicon.ico' type='image/svg+xml'></head>"
            "<body><div id='swagger-ui'></div>"
            "<script src='/static/swagger-ui/swagger-ui-bundle.js'></script>"
            "<script src='/static/docs.js'></script></body></html>"
        )
