"""The ``fhirportal`` command: init-db, db, load, export, serve, portal; accounts, clients, tokens, audit,
reindex (``commands/``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from .commands.admin import accounts_group, clients_group, load_accounts, tokens_group
from .commands.audit import audit_group
from .commands.db import db_group
from .commands.keys import keys_group
from .commands.reindex import reindex
from .commands.secrets import secrets_group
from .settings import Settings

DEMO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
DEMO_ACCOUNTS = Path(__file__).resolve().parents[1] / "fixtures" / "demo-accounts.json"
DEMO_GENERATOR = Path(__file__).resolve().parents[1] / "fixtures" / "generate.py"  # the demo's Slots


def _context(database_url: str | None):
    """The FHIR context on a prepared database (schema current, definitions recorded)."""
    from .app import build_context, prepare_database

    settings = Settings.from_env()
    if database_url:
        settings = settings.with_overrides(database_url=database_url)
    ctx = build_context(settings)
    prepare_database(ctx)
    return ctx


def _load(ctx, paths: list[str], quiet: bool = False) -> int:
    from .fhir.loading import count_resources, expand_paths, load

    files = expand_paths(paths)
    total = count_resources(files)
    with tqdm(total=total, unit="res", desc="loading", disable=quiet, file=sys.stderr) as bar:
        report = load(ctx, files, progress=bar.update)
    click.echo(f"loaded {report.total} resources: {report.created} created, {report.updated} updated, "
               f"{report.deleted} deleted, {len(report.failed)} failed", err=True)
    for failure in report.failed[:20]:
        click.echo(f"  failed: {failure}", err=True)
    return 1 if report.failed else 0


def _demo_slot_bundle(anchor):
    """The demo practice's Slots for the weeks after ``anchor`` (``fixtures/generate.py``, read from its file:
    the repository's ``fixtures`` directory is not a package of this one)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fhirportal_demo_generate", DEMO_GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.demo_slot_bundle(anchor)


def _load_demo(ctx, quiet: bool = False) -> int:
    """The demo practice (``fixtures/demo``) and its Slots from tomorrow on: their dates follow the day of loading."""
    import datetime
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fhirportal-demo-") as scratch:
        slots = Path(scratch) / "04-slots.json"
        slots.write_text(json.dumps(_demo_slot_bundle(datetime.date.today())), encoding="utf-8")
        return _load(ctx, [str(DEMO_FIXTURES), str(slots)], quiet)


class _Main(click.Group):
    """The command group; a database this version cannot serve is a one-line error, not a traceback."""

    def invoke(self, click_ctx: click.Context):
        from .store.database import OutdatedSchema

        try:
            return super().invoke(click_ctx)
        except OutdatedSchema as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Main)
@click.option("--database-url", envvar="FHIRPORTAL_DATABASE_URL", default=None,
              help="SQLAlchemy URL (default: embedded SQLite in var/fhirportal.db)")
@click.pass_context
def main(click_ctx: click.Context, database_url: str | None) -> None:
    """fhirportal: a FHIR R4 server behind a practice's patient portal."""
    click_ctx.obj = {"database_url": database_url}


@main.command("init-db")
@click.option("--drop", is_flag=True, help="Drop every table first (destroys all data)")
@click.pass_context
def init_db(click_ctx: click.Context, drop: bool) -> None:
    """Create the tables at the newest schema revision (an existing database is only checked: upgrade
    one with `fhirportal db upgrade`)."""
    from .app import build_context, prepare_database

    settings = Settings.from_env()
    if click_ctx.obj["database_url"]:
        settings = settings.with_overrides(database_url=click_ctx.obj["database_url"])
    ctx = build_context(settings)
    if drop:
        ctx.database.drop_schema()
    prepare_database(ctx)
    click.echo(f"database ready: {ctx.database.engine.url.render_as_string(hide_password=True)}")


@main.command("load")
@click.argument("paths", nargs=-1)
@click.option("--demo", is_flag=True,
              help="Load the demo practice: fixtures/demo and free Slots for the weeks after today")
@click.option("--quiet", is_flag=True, help="No progress bar")
@click.pass_context
def load_command(click_ctx: click.Context, paths: tuple[str, ...], demo: bool, quiet: bool) -> None:
    """Load FHIR JSON files, Bundles and ndjson files (directories: their files in name order)."""
    if not paths and not demo:
        raise click.UsageError("Name the files to load (or --demo)")
    ctx = _context(click_ctx.obj["database_url"])
    status = _load_demo(ctx, quiet) if demo else 0
    sys.exit(status or (_load(ctx, list(paths), quiet) if paths else 0))


@main.command("export")
@click.option("--type", "types", multiple=True, help="Resource type (repeatable or comma-separated; default: all)")
@click.option("--since", help="Only resources updated at or after this FHIR instant")
@click.option("--group", "group_id", help="Only the Patient members of this Group and their data")
@click.option("--patient-level", is_flag=True, help="Patients and their compartment data only (like Patient/$export)")
@click.option("--type-filter", "type_filter", multiple=True,
              help="A search narrowing one type, e.g. 'Observation?category=laboratory' (repeatable; as _typeFilter)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the {Type}.ndjson files (created if missing)")
@click.option("--quiet", is_flag=True, help="No progress bar")
@click.pass_context
def export_command(click_ctx: click.Context, types: tuple[str, ...], since: str | None, group_id: str | None,
                   patient_level: bool, type_filter: tuple[str, ...], out_dir: Path, quiet: bool) -> None:
    """Bulk export to ndjson files, one per type, as $export does but unrestricted (an operator's export)."""
    from .bulk.export import Exporter, operator_plan
    from .errors import FhirError

    ctx = _context(click_ctx.obj["database_url"])
    try:
        try:
            plan = operator_plan(ctx, types, since, group_id, patient_level, type_filter)
        except (ValueError, FhirError) as exc:
            raise click.ClickException(str(exc)) from exc
        exporter = Exporter(ctx)
        total = sum(exporter.count(plan).values())
        with tqdm(total=total, unit="res", desc="exporting", disable=quiet, file=sys.stderr) as bar:
            output = exporter.export_files(plan, out_dir, on_page=bar.update)
        exporter.record_disclosures(plan)
    finally:
        ctx.database.dispose()
    counts = {item["type"]: item["count"] for item in output or []}
    for resource_type in plan.types:
        if resource_type in counts:
            click.echo(f"{resource_type}: {counts[resource_type]}  ({out_dir / (resource_type + '.ndjson')})")
    click.echo(f"exported {sum(counts.values())} resources of {len(counts)} types "
               f"(as of {plan.transaction_time.isoformat(timespec='milliseconds')})")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--demo", is_flag=True,
              help="Load the demo practice (fixtures/demo, Slots from tomorrow) if the database is empty")
@click.pass_context
def serve(click_ctx: click.Context, host: str, port: int, demo: bool) -> None:
    """Run the development server. In production run `gunicorn wsgi:app` instead."""
    import os

    from .app import create_app

    if "FHIRPORTAL_BASE_URL" not in os.environ:
        os.environ["FHIRPORTAL_BASE_URL"] = f"http://{host}:{port}/fhir"
    if demo and "FHIRPORTAL_PRACTICE_NAME" not in os.environ:
        os.environ["FHIRPORTAL_PRACTICE_NAME"] = "Desert Bloom Family Medicine"  # the demo practice's
    settings = Settings.from_env()
    if click_ctx.obj["database_url"]:
        settings = settings.with_overrides(database_url=click_ctx.obj["database_url"])
    app = create_app(settings)
    ctx = app.extensions["fhirportal"]
    if demo:
        with ctx.database.read() as conn:
            empty = ctx.repository.history(conn, count=1).entries == []
        if empty:
            _load_demo(ctx)
        load_accounts(app.extensions["smart"], DEMO_ACCOUNTS)
    click.echo(f"fhirportal FHIR R4 server: {settings.base_url}  (CapabilityStatement: {settings.base_url}/metadata)")
    app.run(host=host, port=port, threaded=True)


@main.group("portal")
def portal_group() -> None:
    """Patient portal enrollment."""


@portal_group.command("auto-invite")
@click.option("--max-age-days", default=90, show_default=True, type=click.IntRange(31, None),
              help="Only visits that ended at most this many days ago")
@click.pass_context
def portal_auto_invite(click_ctx, max_age_days: int) -> None:
    """Invite the patients of visits that ended 30+ days ago without a signed note (run daily).

    Only while the practice has auto-invite on, on behalf of a participant practitioner whose user
    has it on; the same rules as auto-invite on a signed note."""
    from .app import create_app

    settings = Settings.from_env()
    if click_ctx.obj["database_url"]:
        settings = settings.with_overrides(database_url=click_ctx.obj["database_url"])
    app = create_app(settings)
    ctx = app.extensions["fhirportal"]
    try:
        outcomes = app.extensions["portal_auto_invite"].scan_unsigned_visits(max_age_days=max_age_days)
        ctx.audit.flush()  # the journal's writer thread would not outlive the command
    finally:
        ctx.database.dispose()
    invited = [o for o in outcomes if o.invited]
    reasons: dict[str, int] = {}
    for outcome in outcomes:
        if not outcome.invited:
            reasons[outcome.reason] = reasons.get(outcome.reason, 0) + 1
    for outcome in invited:
        click.echo(f"invited Patient/{outcome.patient_id} ({outcome.trigger}, on behalf of {outcome.practitioner})")
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    click.echo(f"auto-invite: {len(invited)} invited, {len(outcomes) - len(invited)} not invited"
               + (f" ({skipped})" if skipped else ""))


main.add_command(accounts_group)
main.add_command(clients_group)
main.add_command(tokens_group)
main.add_command(keys_group)
main.add_command(secrets_group)
main.add_command(db_group)
main.add_command(audit_group)
main.add_command(reindex)
