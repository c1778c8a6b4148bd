"""``fhirportal reindex``: rebuild the index rows and marks of stored resources after search-parameter
definitions or marking rules changed, while the server serves."""

from __future__ import annotations

import sys
import time

import click
from tqdm import tqdm

from ..settings import Settings


@click.command("reindex")
@click.option("--type", "types", multiple=True, help="Resource type (repeatable or comma-separated); "
              "without --param: every parameter of the type")
@click.option("--param", "params", multiple=True, help="Search parameter code (repeatable or comma-separated); "
              "`_marks` for the patient-rule marks, `_contained` for the rows of contained resources")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Resources per transaction")
@click.option("--quiet", is_flag=True, help="No progress bar")
@click.pass_context
def reindex(click_ctx: click.Context, types: tuple[str, ...], params: tuple[str, ...], batch: int,
            quiet: bool) -> None:
    """Rebuild index rows (and marks) of existing resources.

    Without options: every parameter that is pending (new or changed since the rows were written;
    the server does not advertise or search those until this finishes). Resumable: run it again
    after an interruption and it continues where it stopped."""
    from ..app import build_context, prepare_database
    from ..store.reindex import Reindexer, ReindexRefused

    settings = Settings.from_env()
    if click_ctx.obj["database_url"]:
        settings = settings.with_overrides(database_url=click_ctx.obj["database_url"])
    ctx = build_context(settings)
    try:
        prepare_database(ctx)
        state = ctx.search_parameters.readiness
        reindexer = Reindexer(ctx.database, ctx.repository.extractor, ctx.repository.marker, state, batch=batch)
        named_types = [t.strip() for t in ",".join(types).split(",") if t.strip()]
        named_params = [p.strip() for p in ",".join(params).split(",") if p.strip()]
        try:
            targets = reindexer.targets(named_types, named_params)
            job = reindexer.start(targets, named=bool(named_types or named_params))
        except (ValueError, ReindexRefused) as exc:
            raise click.ClickException(str(exc)) from exc
        if job is None:
            click.echo("nothing to reindex: every search parameter's index is complete")
            return
        click.echo(("resuming" if job.resumed else "starting") + f" reindex job {job.id}: " +
                   "; ".join(f"{t} ({', '.join(c) if c else 'all parameters'})" for t, c in job.targets.items()),
                   err=True)
        started, before = time.monotonic(), job.done
        with tqdm(total=job.total, initial=job.done, unit="res", desc="reindexing", disable=quiet,
                  file=sys.stderr) as bar:
            try:
                reindexer.run(job, progress=bar.update)
            except ReindexRefused as exc:
                raise click.ClickException(str(exc)) from exc
        elapsed = time.monotonic() - started
        for resource_type, count in sorted(job.counts.items()):
            click.echo(f"{resource_type}: {count}")
        rate = (job.done - before) / elapsed if elapsed > 0 else 0.0
        click.echo(f"reindexed {job.done} resources (job {job.id}; {job.done - before} in {elapsed:.1f} s, "
                   f"{rate:,.0f}/s)")
        remaining = state.pending(force=True)
        if remaining:
            click.echo(f"still pending: {', '.join(f'{t}.{c}' for t, c in sorted(remaining))}", err=True)
    finally:
        ctx.database.dispose()
