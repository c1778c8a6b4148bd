"""``fhirportal accounts|clients|tokens``: what an operator does to accounts, apps and tokens.

Adding and listing, showing one, disabling and enabling (disabling ends every token at once),
unlocking an account after failed sign-ins, revoking tokens. The changes are journalled in the access
log (``smart/admin.py``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import click

from ..settings import Settings


@contextlib.contextmanager
def services(click_ctx: click.Context) -> Iterator:
    """(FHIR context, SMART server) on the prepared database; the connections closed afterwards."""
    from ..app import build_context, build_smart, prepare_database

    settings = Settings.from_env()
    database_url = click_ctx.find_root().obj["database_url"]
    if database_url:
        settings = settings.with_overrides(database_url=database_url)
    ctx = build_context(settings)
    prepare_database(ctx)
    try:
        yield ctx, build_smart(ctx)
    finally:
        ctx.database.dispose()


@contextlib.contextmanager
def _admin(click_ctx: click.Context) -> Iterator:
    from ..smart.admin import Admin, UnknownTarget

    with services(click_ctx) as (ctx, smart):
        try:
            yield Admin(smart, ctx.audit)
        except UnknownTarget as exc:
            raise click.ClickException(str(exc)) from exc


def load_accounts(smart, path: Path) -> None:
    from ..smart.seeding import load_accounts_file

    accounts, clients = load_accounts_file(smart, path)
    click.echo(f"accounts: {accounts} created; apps: {clients} registered ({path.name})", err=True)


def when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _field(label: str, value, width: int) -> None:
    click.echo(f"{label + ':':<{width}}{value}")


def _switches(group: click.Group, argument: str, noun: str, switch: str, disabling: str, enabling: str) -> None:
    """``disable`` and ``enable`` commands of ``group``: ``Admin.<switch>(name, enabled)`` on the named
    account or app; disabling revokes its tokens."""

    @group.command("disable", help=disabling)
    @click.argument(argument)
    @click.pass_context
    def disable(click_ctx, **named) -> None:
        with _admin(click_ctx) as admin:
            revoked = getattr(admin, switch)(named[argument], False)
        click.echo(f"{noun} {named[argument]} disabled; {revoked} tokens revoked")

    @group.command("enable", help=enabling)
    @click.argument(argument)
    @click.pass_context
    def enable(click_ctx, **named) -> None:
        with _admin(click_ctx) as admin:
            getattr(admin, switch)(named[argument], True)
        click.echo(f"{noun} {named[argument]} enabled")


# ---------------------------------------------------------------------- accounts
@click.group("accounts")
def accounts_group() -> None:
    """Staff and portal accounts."""


@accounts_group.command("add")
@click.argument("username")
@click.option("--kind", type=click.Choice(["staff", "patient"]), required=True)
@click.option("--fhir-user", help="Practitioner/…, Patient/… or RelatedPerson/…")
@click.option("--organization", help="Organization/… (staff: whose patients they may see)")
@click.option("--role", "roles", multiple=True, help="admin, staff, invite (repeatable)")
@click.option("--patient", "patients", multiple=True, help="Patient id the account acts for (repeatable)")
@click.password_option(help="Asked for when not given")
@click.pass_context
def accounts_add(click_ctx, username, kind, fhir_user, organization, roles, patients, password) -> None:
    """Create an account (the password is stored as an Argon2id hash)."""
    with services(click_ctx) as (_ctx, smart):
        if smart.accounts.by_username(username) is not None:
            raise click.ClickException(f"username {username!r} is taken")
        created = smart.accounts.create(username, password, kind=kind, fhir_user=fhir_user,
                                        organization=organization, roles=roles, patients=patients)
    click.echo(f"account {created.id} {created.username} ({created.kind})")


@accounts_group.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def accounts_load(click_ctx, path: Path) -> None:
    """Create the accounts and apps of a JSON file (e.g. fixtures/demo-accounts.json); existing ones are kept."""
    with services(click_ctx) as (_ctx, smart):
        load_accounts(smart, path)


@accounts_group.command("list")
@click.option("--kind", type=click.Choice(["staff", "patient"]), help="Only staff or only portal accounts")
@click.pass_context
def accounts_list(click_ctx, kind: str | None) -> None:
    """Every account: username, kind, state (active, disabled, locked), live tokens, FHIR user."""
    with _admin(click_ctx) as admin:
        entries = admin.accounts(kind=kind)
    for entry in entries:
        state = "disabled" if not entry.active else "locked" if entry.locked_until else "active"
        click.echo(f"{entry.username:<32} {entry.kind:<8} {state:<9} tokens={entry.live_tokens:<4} "
                   f"{entry.fhir_user or '-'}")
    click.echo(f"{len(entries)} accounts", err=True)


@accounts_group.command("show")
@click.argument("username")
@click.pass_context
def accounts_show(click_ctx, username: str) -> None:
    """One account in full (never its password hash)."""
    with _admin(click_ctx) as admin:
        entries = admin.accounts(username=username)
    if not entries:
        raise click.ClickException(f"no account {username!r}")
    entry = entries[0]
    for label, value in (("id", entry.id), ("username", entry.username), ("kind", entry.kind),
                         ("fhir user", entry.fhir_user or "-"), ("roles", " ".join(entry.roles) or "-"),
                         ("patients", " ".join(entry.patients) or "-"), ("active", "yes" if entry.active else "no"),
                         ("locked until", when(entry.locked_until)), ("sign-in sessions", entry.sessions),
                         ("live tokens", entry.live_tokens)):
        _field(label, value, 18)


_switches(accounts_group, "username", "account", "set_account_enabled",
          "Disable an account: it cannot sign in; its sessions end and every token it holds is revoked now.",
          "Enable a disabled account (it signs in again; revoked tokens stay revoked).")


@accounts_group.command("unlock")
@click.argument("username")
@click.pass_context
def accounts_unlock(click_ctx, username: str) -> None:
    """End a lockout after failed sign-ins (and reset the count of failures)."""
    with _admin(click_ctx) as admin:
        was_locked = admin.unlock(username)
    click.echo(f"account {username} unlocked" if was_locked else f"account {username} was not locked")


# ---------------------------------------------------------------------- clients
@click.group("clients")
def clients_group() -> None:
    """Registered SMART apps."""


@clients_group.command("add")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeatable)")
@click.option("--auth", "auth_method", default="client_secret_basic", show_default=True,
              type=click.Choice(["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]),
              help="none = public app (PKCE only)")
@click.option("--backend", is_flag=True, help="Backend services: client_credentials only (needs --jwks-uri/--jwks)")
@click.option("--jwks-uri", help="Where the app publishes its public keys (private_key_jwt)")
@click.option("--jwks", "jwks_file", type=click.Path(exists=True, dir_okay=False), help="A JWKS file (public keys)")
@click.option("--scope", help="Scopes the app may ask for (default: any)")
@click.option("--client-id", help="Choose the client id (default: random)")
@click.pass_context
def clients_add(click_ctx, name, redirect_uris, auth_method, backend, jwks_uri, jwks_file, scope, client_id) -> None:
    """Register an app; prints its client_id (and its secret once, for confidential symmetric apps)."""
    metadata: dict = {"client_name": name, "token_endpoint_auth_method": auth_method}
    if redirect_uris:
        metadata["redirect_uris"] = list(redirect_uris)
    if backend:
        metadata.update(grant_types=["client_credentials"], token_endpoint_auth_method="private_key_jwt")
    if jwks_uri:
        metadata["jwks_uri"] = jwks_uri
    if jwks_file:
        metadata["jwks"] = json.loads(Path(jwks_file).read_text())
    if scope:
        metadata["scope"] = scope
    with services(click_ctx) as (_ctx, smart):
        try:
            client, secret = smart.clients.register(metadata, client_id=client_id)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"client_id: {client.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}  (shown once; stored hashed)")


@clients_group.command("list")
@click.pass_context
def clients_list(click_ctx) -> None:
    """Every registered app: client_id, state, how it authenticates, live tokens, name."""
    with _admin(click_ctx) as admin:
        entries = admin.apps()
    for entry in entries:
        state = "disabled" if entry.disabled_at else "enabled"
        click.echo(f"{entry.client_id:<40} {state:<9} {entry.auth_method:<20} tokens={entry.live_tokens:<4} "
                   f"{entry.name}")
    click.echo(f"{len(entries)} apps", err=True)


@clients_group.command("show")
@click.argument("client_id")
@click.pass_context
def clients_show(click_ctx, client_id: str) -> None:
    """One app in full (never its secret)."""
    with _admin(click_ctx) as admin:
        entries = admin.apps(client_id)
    if not entries:
        raise click.ClickException(f"no app with client_id {client_id!r}")
    entry = entries[0]
    for label, value in (("client_id", entry.client_id), ("name", entry.name), ("auth method", entry.auth_method),
                         ("grant types", " ".join(entry.grant_types) or "-"),
                         ("redirect uris", " ".join(entry.redirect_uris) or "-"), ("scope", entry.scope or "(any)"),
                         ("disabled", when(entry.disabled_at)), ("live tokens", entry.live_tokens)):
        _field(label, value, 15)


_switches(clients_group, "client_id", "app", "set_app_enabled",
          "Disable an app: no more authorizations, tokens or refreshes; every token it holds is revoked now.",
          "Enable a disabled app (its users authorize it again; revoked tokens stay revoked).")


@clients_group.command("rotate-secret")
@click.argument("client_id")
@click.option("--grace", default="1d", show_default=True,
              help="How long the old secret keeps working (e.g. 0s, 90m, 12h, 7d) while the app is reconfigured")
@click.pass_context
def clients_rotate_secret(click_ctx, client_id: str, grace: str) -> None:
    """A new client secret (shown once, stored hashed); the old one stops after the grace period."""
    from .keys import duration

    with _admin(click_ctx) as admin:
        try:
            secret = admin.rotate_client_secret(client_id, duration(grace))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"client_secret: {secret}  (shown once; stored hashed)")
    click.echo(f"the old secret works for {grace} more")


# ---------------------------------------------------------------------- tokens
@click.group("tokens")
def tokens_group() -> None:
    """Access and refresh tokens."""


@tokens_group.command("revoke")
@click.option("--client", "client_id", help="Every token of this app")
@click.option("--account", "username", help="Every token of this account (with --client: of that app only)")
@click.pass_context
def tokens_revoke(click_ctx, client_id: str | None, username: str | None) -> None:
    """Revoke live access and refresh tokens at once, on every worker and node."""
    if client_id is None and username is None:
        raise click.UsageError("name --client, --account or both")
    with _admin(click_ctx) as admin:
        revoked = admin.revoke_tokens(client_id=client_id, username=username)
    click.echo(f"{revoked} tokens revoked")
