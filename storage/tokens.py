"""Named API tokens with scopes and server-side login sessions.

A token is 32 random bytes shown once to whoever creates it; only its SHA-256 is stored (a hash of a
high-entropy secret needs no slow password hash: there is nothing to guess). A login session is another
random value whose hash is stored here; the browser cookie carries the session, never the token, and
ending the session (logout, expiry, revoking the token) makes the cookie worthless.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

SCOPES = ("analyst", "billing:read", "readings:write")
TOKEN_PREFIX = "mft_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class TokenError(ValueError):
    """A token name or scope that cannot be used; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's (or bootstrap token's) name and what it may do."""

    name: str
    scopes: frozenset[str]


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def add_token(conn: psycopg.Connection, name: str, scopes: list[str]) -> str:
    """Create a named token; returns the token (shown once, stored only as its hash)."""
    if not NAME_RE.match(name):
        raise TokenError("a token name is 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise TokenError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        conn.execute("INSERT INTO api_tokens (name, token_sha256, scopes) VALUES (%s, %s, %s)",
                     (name, digest(token), sorted(set(scopes))))
    except psycopg.errors.UniqueViolation as exc:
        conn.rollback()
        raise TokenError(f"a token named {name!r} exists already: revoke it first or pick another name") from exc
    conn.commit()
    return token


def list_tokens(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT name, scopes, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY name")
    cols = ("name", "scopes", "created_at", "last_used_at", "revoked_at")
    return [dict(zip(cols, r, strict=True)) for r in rows]


def revoke_token(conn: psycopg.Connection, name: str) -> bool:
    """Revoke a token and end its sessions; False when no active token has that name."""
    row = conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL"
                       " RETURNING name", (name,)).fetchone()
    conn.execute("UPDATE api_sessions SET ended_at = now() WHERE principal = %s AND ended_at IS NULL", (name,))
    conn.commit()
    return row is not None


def principal_of_token(conn: psycopg.Connection, token: str) -> Principal | None:
    """The active token's principal; `last_used_at` is written at most once a minute (no write per request)."""
    key = digest(token)
    row = conn.execute("SELECT name, scopes, last_used_at < now() - interval '1 minute' OR last_used_at IS NULL"
                       " FROM api_tokens WHERE token_sha256 = %s AND revoked_at IS NULL", (key,)).fetchone()
    if row is not None and row[2]:
        conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = %s", (key,))
    conn.commit()
    return Principal(row[0], frozenset(row[1])) if row else None


def start_session(conn: psycopg.Connection, who: Principal, hours: float, client: str | None) -> str:
    session = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_sessions (session_sha256, principal, scopes, expires_at, client_addr)"
        " VALUES (%s, %s, %s, %s, %s)",
        (digest(session), who.name, sorted(who.scopes), datetime.now(UTC) + timedelta(hours=hours), client),
    )
    conn.commit()
    return session


def principal_of_session(conn: psycopg.Connection, session: str) -> Principal | None:
    row = conn.execute(
        "SELECT s.principal, s.scopes FROM api_sessions s LEFT JOIN api_tokens t ON t.name = s.principal"
        " WHERE s.session_sha256 = %s AND s.ended_at IS NULL AND s.expires_at > now() AND t.revoked_at IS NULL",
        (digest(session),),
    ).fetchone()
    conn.rollback()
    return Principal(row[0], frozenset(row[1])) if row else None


def end_session(conn: psycopg.Connection, session: str) -> None:
    conn.execute("UPDATE api_sessions SET ended_at = now() WHERE session_sha256 = %s AND ended_at IS NULL",
                 (digest(session),))
    conn.commit()
