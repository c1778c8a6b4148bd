"""``fhirportal keys``: the id_token signing keys (list, rotate)."""

from __future__ import annotations

from datetime import timedelta

import click

from ..store import clock
from .admin import services, when

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    number, unit = text[:-1], text[-1:]
    if unit not in UNITS or not number.isdigit():
        raise click.BadParameter(f"{text!r}: a whole number and a unit (s, m, h or d), e.g. 90m")
    return timedelta(seconds=int(number) * UNITS[unit])


@click.group("keys")
def keys_group() -> None:
    """The keys that sign id_tokens (published at /auth/jwks)."""


@keys_group.command("list")
@click.pass_context
def keys_list(click_ctx) -> None:
    """Every key: kid, state (signing, next, published, retired), created, signs from, retires."""
    with services(click_ctx) as (_ctx, smart):
        keys = smart.keys.list()
        signing = smart.keys.signing_kid()
    now = clock.now()
    for key in keys:
        click.echo(f"{key.kid:<20} {key.state(now, signing):<10} created {when(key.created)}  "
                   f"signs from {when(key.activates_at)}  retires {when(key.retires_at)}")
    click.echo(f"{len(keys)} keys", err=True)


@keys_group.command("rotate")
@click.option("--grace", default="1h", show_default=True,
              help="How long the new key is only published before it signs (clients refresh their JWKS)")
@click.pass_context
def keys_rotate(click_ctx, grace: str) -> None:
    """Add a signing key: in the JWKS now, signing after the grace period; the keys it supersedes stay
    published until every id_token they signed has expired, then retire."""
    with services(click_ctx) as (_ctx, smart):
        key = smart.keys.rotate(duration(grace))
    click.echo(f"key {key.kid} published; signs from {when(key.activates_at)}")
