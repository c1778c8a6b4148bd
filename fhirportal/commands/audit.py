"""``fhirportal audit``: the access log's monthly partitions (PostgreSQL) and pruning it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import click

from ..settings import Settings

log = logging.getLogger("fhirportal.audit")


def _database(click_ctx: click.Context):
    from ..store.database import Database

    return Database(click_ctx.obj["database_url"] or Settings.from_env().database_url)


@click.group("audit")
def audit_group() -> None:
    """The access log (AuditEvents): partitions and retention."""


@audit_group.command("partitions")
@click.option("--months-ahead", default=3, show_default=True, type=click.IntRange(1, 36))
@click.pass_context
def partitions(click_ctx: click.Context, months_ahead: int) -> None:
    """Create the monthly partitions ahead (PostgreSQL; the server does this at start-up too): run monthly
    from cron on a server that runs for months without a restart."""
    from ..store import journal

    database = _database(click_ctx.parent)
    try:
        created = journal.ensure_partitions(database, months_ahead)
    finally:
        database.dispose()
    click.echo(f"created {', '.join(created)}" if created else "the partitions ahead are there")


@audit_group.command("prune")
@click.option("--before", "before", required=True, help="Remove the access log before this date (YYYY-MM-DD; "
              "on PostgreSQL the first day of a month: whole monthly partitions are dropped)")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@click.pass_context
def prune(click_ctx: click.Context, before: str, yes: bool) -> None:
    """Remove the access log of accesses before a date (HIPAA asks for six years: the default keeps
    everything). AuditEvents other systems sent are kept."""
    from ..store import journal

    try:
        moment = datetime.fromisoformat(before).replace(tzinfo=UTC)
    except ValueError as exc:
        raise click.ClickException(f"--before: not a date: {before}") from exc
    if not yes:
        click.confirm(f"Remove every access-log entry before {moment.date()}?", abort=True)
    database = _database(click_ctx.parent)
    try:
        dropped, deleted = journal.prune(database, moment)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()
    log.warning("access log pruned before %s: partitions %s dropped, %d rows deleted", moment.date(),
                ", ".join(dropped) or "none", deleted)
    click.echo(f"pruned before {moment.date()}: " + (f"dropped {', '.join(dropped)}" if dropped else
                                                     f"{deleted} entries deleted"))
