"""``fhirportal db``: the schema's revision, its history, and upgrading a database in place."""

from __future__ import annotations

import click

from ..settings import Settings


def _database(click_ctx: click.Context):
    from ..store.database import Database

    url = click_ctx.obj["database_url"] or Settings.from_env().database_url
    return Database(url)


def _where(database) -> str:
    return database.engine.url.render_as_string(hide_password=True)


@click.group("db")
def db_group() -> None:
    """The database schema: upgrade in place, current revision, history."""


@db_group.command("upgrade")
@click.option("--to", "target", default="head", show_default=True, help="Revision to upgrade to")
@click.pass_context
def upgrade(click_ctx: click.Context, target: str) -> None:
    """Upgrade the database to the newest schema (or --to a revision), printing each migration.

    Back up first. Old workers may keep serving while it runs unless the release notes of a
    revision say otherwise; start the new version once it is done."""
    from ..store import migrate
    from ..store.database import OutdatedSchema

    database = _database(click_ctx.parent)
    try:
        before = migrate.status_of(database)
        click.echo(f"database: {_where(database)}; at revision {before.revision or '(none)'} ({before.state})")
        after = migrate.upgrade(database, target, echo=click.echo)
    except OutdatedSchema as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()
    click.echo(f"at revision {after.revision} ({after.state})")


@db_group.command("current")
@click.pass_context
def current(click_ctx: click.Context) -> None:
    """The database's revision and whether it needs upgrading (exit status 1 if it does)."""
    from ..store import migrate

    database = _database(click_ctx.parent)
    try:
        found = migrate.status_of(database)
    finally:
        database.dispose()
    click.echo(f"{found.revision or '(none)'} ({found.state}; newest: {found.head})")
    if found.detail:
        click.echo(found.detail)
    if found.state not in ("current", "empty"):
        click.echo(migrate.refusal(found), err=True)
        raise SystemExit(1)


@db_group.command("history")
def history() -> None:
    """Every revision, oldest first."""
    from ..store import migrate

    for revision, down, message in migrate.history():
        click.echo(f"{down or '<base>'} -> {revision}  {message}")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does")
def revision(message: str) -> None:
    """(Developers) Write a new migration from the difference between the models and the schema the
    migration chain builds (run on a scratch in-memory SQLite database). Review it before committing:
    say what it locks on PostgreSQL, and keep big-table changes online."""
    from alembic import command
    from sqlalchemy import create_engine

    from ..store import migrate

    engine = create_engine("sqlite://")
    try:
        with engine.connect() as connection:
            command.upgrade(migrate.config(connection), "head")
            connection.commit()
            number = f"{len(migrate.history()) + 1:04d}"
            command.revision(migrate.config(connection), message, autogenerate=True, rev_id=number)
    finally:
        engine.dispose()
