"""The ``fhirportal`` command: init-db, load, serve."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from .settings import Settings

DEMO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "demo"


def _context(database_url: str | None):
    from .app import build_context

    settings = Settings.from_env()
    if database_url:
        settings = settings.with_overrides(database_url=database_url)
    return build_context(settings)


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


@click.group()
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
    """Create the tables (idempotent)."""
    ctx = _context(click_ctx.obj["database_url"])
    if drop:
        ctx.database.drop_schema()
    ctx.database.create_schema()
    click.echo(f"database ready: {ctx.database.engine.url.render_as_string(hide_password=True)}")


@main.command("load")
@click.argument("paths", nargs=-1, required=True)
@click.option("--quiet", is_flag=True, help="No progress bar")
@click.pass_context
def load_command(click_ctx: click.Context, paths: tuple[str, ...], quiet: bool) -> None:
    """Load FHIR JSON files, Bundles and ndjson files (directories: their files in name order)."""
    ctx = _context(click_ctx.obj["database_url"])
    ctx.database.create_schema()
    sys.exit(_load(ctx, list(paths), quiet))


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Load the demo practice (fixtures/demo) if the database is empty")
@click.pass_context
def serve(click_ctx: click.Context, host: str, port: int, demo: bool) -> None:
    """Run the development server. In production run `gunicorn wsgi:app` instead."""
    import os

    from .app import create_app

    if "FHIRPORTAL_BASE_URL" not in os.environ:
        os.environ["FHIRPORTAL_BASE_URL"] = f"http://{host}:{port}/fhir"
    settings = Settings.from_env()
    if click_ctx.obj["database_url"]:
        settings = settings.with_overrides(database_url=click_ctx.obj["database_url"])
    app = create_app(settings)
    ctx = app.extensions["fhirportal"]
    if demo:
        with ctx.database.read() as conn:
            empty = ctx.repository.history(conn, count=1).entries == []
        if empty:
            _load(ctx, [str(DEMO_FIXTURES)])
    click.echo(f"fhirportal FHIR R4 server: {settings.base_url}  (CapabilityStatement: {settings.base_url}/metadata)")
    app.run(host=host, port=port, threaded=True)
