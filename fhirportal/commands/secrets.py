"""``fhirportal secrets``: moving what is stored under ``FHIRPORTAL_SECRET_KEY`` to its newest key."""

from __future__ import annotations

import click

from .admin import services


@click.group("secrets")
def secrets_group() -> None:
    """Values encrypted or keyed with FHIRPORTAL_SECRET_KEY (portal PINs)."""


@secrets_group.command("reencrypt")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Invitations per transaction")
@click.pass_context
def secrets_reencrypt(click_ctx, batch: int) -> None:
    """Re-encrypt every portal PIN under the newest key (the first of FHIRPORTAL_SECRET_KEY's comma-separated
    keys); resumable. When it reports none left, the older keys can be removed from the setting."""
    from ..portal.pins import PinVault
    from ..portal.rekey import reencrypt

    with services(click_ctx) as (ctx, _smart):
        keys = ctx.settings.secret_keys
        result = reencrypt(ctx.database, PinVault(keys), batch=batch,
                           progress=lambda done: click.echo(f"  {done} invitations looked at", err=True))
    click.echo(f"{result.moved} PINs moved to the newest key, {result.current} already under it "
               f"({len(keys)} keys configured)")
    if len(keys) > 1:
        click.echo("nothing is left under the older keys: they can be removed from FHIRPORTAL_SECRET_KEY "
                   "(after 10 minutes, when the last SMS codes keyed with them have expired)")
