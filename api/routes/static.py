"""Static files of the pages (plotly.js from the installed plotly package: no CDN), gzip-compressed once per
process and cached by browsers: plotly.min.js is 4.8 MB raw and 1.5 MB gzipped, which matters on a phone."""

from __future__ import annotations

import gzip
import hashlib
from functools import cache
from pathlib import Path

import plotly
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response

router = APIRouter(tags=["static"], include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
MEDIA = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
#: plotly's file changes only with the installed package (a week); our own files may change with a release (an hour)
MAX_AGE = {PLOTLY_JS: 7 * 86400}


@cache
def _load(path: Path, mtime_ns: int) -> tuple[bytes, bytes, str]:
    """(raw, gzipped, etag) of a file; the modification time is part of the cache key."""
    raw = path.read_bytes()
    return raw, gzip.compress(raw, compresslevel=9, mtime=0), '"' + hashlib.sha256(raw).hexdigest()[:20] + '"'


def serve_file(request: Request, path: Path) -> Response:
    raw, packed, etag = _load(path, path.stat().st_mtime_ns)
    headers = {"Cache-Control": f"public, max-age={MAX_AGE.get(path, 3600)}", "ETag": etag,
               "Vary": "Accept-Encoding"}
    media = MEDIA.get(path.suffix, "application/octet-stream")
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(packed, media_type=media, headers={**headers, "Content-Encoding": "gzip"})
    return Response(raw, media_type=media, headers=headers)


@router.get("/static/plotly.min.js")
def plotly_js(request: Request) -> Response:
    return serve_file(request, PLOTLY_JS)


@router.get("/static/{name}")
def static_file(request: Request, name: str) -> Response:
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return serve_file(request, path)


@router.get("/favicon.ico")
def favicon(request: Request) -> Response:
    return serve_file(request, STATIC_DIR / "favicon.svg")
