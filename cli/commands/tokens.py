"""`meterflow tokens add|list|revoke`: named API tokens with scopes, stored hashed."""

from __future__ import annotations

import json

import click

from cli.commands.registry import migrated_connection as _connect
from meterflow.config import Settings


@click.group(epilog="Example: meterflow tokens add billing-export --scope billing:read")
def tokens() -> None:
    """Named API tokens for analysts and systems (scopes: analyst, billing:read, readings:write)."""


@tokens.command("add", epilog="Example: meterflow tokens add anna --scope analyst --scope readings:write")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["analyst", "billing:read", "readings:write"]),
              help="What the token may do (repeat for several).")
@click.pass_obj
def add(settings: Settings, name: str, scopes: tuple[str, ...]) -> None:
    """Create a token and print it once (only its SHA-256 is stored: keep it somewhere safe)."""
    from storage.tokens import TokenError, add_token

    with _connect(settings) as conn:
        try:
            token = add_token(conn, name, list(scopes))
        except TokenError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(token)
    click.echo(f"token {name!r} with {', '.join(sorted(scopes))}: shown once, stored hashed", err=True)


@tokens.command("list", epilog="Example: meterflow tokens list --json")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def list_cmd(settings: Settings, as_json: bool) -> None:
    """List tokens: name, scopes, created, last used, revoked (never the tokens themselves)."""
    from storage.tokens import list_tokens

    with _connect(settings) as conn:
        rows = list_tokens(conn)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, default=str))
        else:
            state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
            used = f"{row['last_used_at']:%Y-%m-%d %H:%M}" if row["last_used_at"] else "never used"
            click.echo(f"{row['name']:<24} {','.join(row['scopes']):<40} {state:<18} {used}")
    if settings.api.tokens:
        click.echo(f"(and {len(settings.api.tokens)} bootstrap token(s) from api.tokens with every scope)", err=True)


@tokens.command("revoke", epilog="Example: meterflow tokens revoke anna")
@click.argument("name")
@click.pass_obj
def revoke(settings: Settings, name: str) -> None:
    """Revoke a token at once; its login sessions end too."""
    from storage.tokens import revoke_token

    with _connect(settings) as conn:
        if not revoke_token(conn, name):
            raise click.ClickException(f"no active token named {name!r} (see meterflow tokens list)")
    click.echo(f"token {name!r} revoked")
