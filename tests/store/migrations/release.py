"""A database as a released version left it: the release's own DDL, then the rows its code wrote
(``tools/upgrade_snapshot.py`` made the snapshots in ``data/``), on SQLite or PostgreSQL.

Instants outside the resource tables (token, code, session and invitation expiries, the access log)
are moved forward by the snapshot's age, so the database is as if the release had written it just
now: the patient's access token is still live, the invitation still open.
"""

from __future__ import annotations

import datetime
import gzip
import json
from functools import cache
from pathlib import Path

from sqlalchemy import MetaData, create_engine, insert, text

DATA = Path(__file__).resolve().parent / "data"
RESOURCE_TABLES = {"resource", "resource_version", "access_log"}  # instants also in stored JSON: kept as written


@cache
def snapshot(name: str = "release-96d475c") -> dict:
    with gzip.open(DATA / f"{name}.json.gz", "rt", encoding="utf-8") as handle:
        return json.load(handle)


def _value(value, shift: datetime.timedelta | None):
    if isinstance(value, dict) and "$datetime" in value:
        moment = datetime.datetime.fromisoformat(value["$datetime"])
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment + shift if shift is not None else moment
    return value


def restore(url: str, name: str = "release-96d475c") -> dict:
    """Create the release's schema in the empty database at ``url`` and fill it; returns the manifest."""
    data = snapshot(name)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    made = datetime.datetime.fromisoformat(data["manifest"]["made"])
    shift = datetime.datetime.now(datetime.UTC) - made
    try:
        with engine.begin() as connection:
            for statement in data["ddl"][connection.dialect.name]:
                connection.exec_driver_sql(statement)
            tables = MetaData()
            tables.reflect(connection)
            for target in tables.sorted_tables:  # parents before the tables that refer to them
                name_, table = target.name, data["tables"].get(target.name)
                if not table or not table["rows"]:
                    continue
                moved = None if name_ in RESOURCE_TABLES else shift
                rows = [{column: _value(value, moved) for column, value in zip(table["columns"], row, strict=True)}
                        for row in table["rows"]]
                connection.execute(insert(target), rows)
            if connection.dialect.name == "postgresql":  # rows went in with their ids: move the sequences on
                for table, column in connection.execute(text(
                        "SELECT table_name, column_name FROM information_schema.columns "
                        "WHERE column_default LIKE 'nextval%' AND table_schema = current_schema()")).all():
                    connection.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                        f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"))
    finally:
        engine.dispose()
    return data["manifest"]
