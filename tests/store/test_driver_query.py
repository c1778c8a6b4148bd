"""DriverQuery: a prebuilt SELECT on the driver's cursor answers what SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, bindparam, exc, select

from fhirportal.store import clock
from fhirportal.store.database import DriverQuery
from fhirportal.store.schema import resource
from tests.support import patient


def test_rows_equal_sqlalchemys_with_types_converted(ctx):
    with ctx.database.write() as conn:
        ctx.repository.create(conn, patient(), fhir_id="dq1")
    statement = select(resource.c.pid, resource.c.fhir_id, resource.c.last_updated, resource.c.deleted,
                       resource.c.marks).where(resource.c.resource_type == bindparam("t"),
                                               resource.c.fhir_id == bindparam("i"))
    query = DriverQuery(statement, ctx.database.engine.dialect)
    with ctx.database.read() as conn:
        expected = tuple(conn.execute(statement, {"t": "Patient", "i": "dq1"}).one())
        got = query.first(conn, t="Patient", i="dq1")
        assert query.first(conn, t="Patient", i="nobody") is None
    assert got == expected
    assert isinstance(got[2], datetime) and clock.ensure_utc(got[2]) <= datetime.now(UTC)
    assert got[3] is False


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it(ctx):
    missing = Table("no_such_table", MetaData(), Column("id", Integer), Column("name", String(8)),
                    Column("at", DateTime(timezone=True)))
    query = DriverQuery(select(missing.c.id).where(missing.c.name == bindparam("n")), ctx.database.engine.dialect)
    with pytest.raises(exc.DBAPIError), ctx.database.read() as conn:
        query.first(conn, n="x")
