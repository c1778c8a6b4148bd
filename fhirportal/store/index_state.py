"""Whether the index rows of each search parameter are complete.

Index rows are written with the definitions of the version that wrote them. When a release adds a
parameter or changes one (or how rows are made: ``INDEX_FORMAT``, or the patient-rule marks), the
rows of resources written before are missing or stale until ``fhirportal reindex`` rebuilds them.
Such a parameter is *pending*: not advertised in the CapabilityStatement, and a search using it is
refused (400) rather than answered with partial results. A type with no resources has nothing to
rebuild: its parameters are ready at once.

``reconcile`` runs at start-up (every worker; they agree) and compares the fingerprints of this
version's definitions with those the ``search_index`` table holds. Workers keep the pending set in
memory and, while it is not empty, read it again every ``refresh`` seconds, so a reindex that another
process finishes is noticed without a restart.
"""

from __future__ import annotations

import hashlib
import threading
import time

from sqlalchemy import Connection, delete, exists, insert, select, update

from . import clock
from .database import Database
from .index_schema import search_index
from .indexing import SearchParameterRegistry
from .marks import Marker
from .schema import resource

MARKS = "_marks"  # the code of a type's marks in ``search_index``
# The code of a type's contained-resource rows (``contained_schema``: of the resources of this type, the
# rows of what they contain) and the version of how they are made: a new one makes them pending.
CONTAINED = "_contained"
CONTAINED_FORMAT = "contained-1"
READY, PENDING = "ready", "pending"


def expected_fingerprints(registry: SearchParameterRegistry, marker: Marker) -> dict[tuple[str, str], str]:
    """(type, code) -> fingerprint of every indexed parameter of every type, and of each type's marks."""
    expected = {}
    for resource_type in registry.resource_types:
        for code, parameter in registry.for_type(resource_type).items():
            if parameter.indexed and parameter.evaluate is not None:
                expected[(resource_type, code)] = parameter.fingerprint
        # Marks are decided from token rows: a change of the parameters they read changes them too.
        uses = sorted(expected.get((resource_type, code), "") for code in marker.params(resource_type))
        expected[(resource_type, MARKS)] = hashlib.sha256(
            ":".join([marker.fingerprint(resource_type), *uses]).encode()).hexdigest()[:32]
        expected[(resource_type, CONTAINED)] = hashlib.sha256(CONTAINED_FORMAT.encode()).hexdigest()[:32]
    return expected


def contained_pending(pending: frozenset[tuple[str, str]]) -> bool:
    """Whether some type's contained-resource rows are not all built (``_contained`` searches wait)."""
    return any(code == CONTAINED for _type, code in pending)


class IndexState:
    def __init__(self, database: Database, registry: SearchParameterRegistry, marker: Marker, *,
                 refresh: float = 2.0):
        self.database = database
        self.registry = registry
        self.marker = marker
        self.refresh = refresh
        self._pending: frozenset[tuple[str, str]] = frozenset()
        self._read_at = 0.0
        self._lock = threading.Lock()

    def expected(self) -> dict[tuple[str, str], str]:
        return expected_fingerprints(self.registry, self.marker)

    def reconcile(self) -> frozenset[tuple[str, str]]:
        """Record this version's definitions: a changed or new one is pending on a type that has
        resources, ready on one that has none. Returns the pending set."""
        expected = self.expected()
        with self.database.write() as conn:
            self.database.lock(conn, "search_index")
            stored = {(row.resource_type, row.code): (row.fingerprint, row.state)
                      for row in conn.execute(select(search_index))}
            changed = [key for key, fingerprint in expected.items()
                       if key not in stored or stored[key][0] != fingerprint]
            populated = {t for t in {key[0] for key in changed} if _has_resources(conn, t)}
            now = clock.now()
            new_rows = []
            for key in changed:
                values = {"fingerprint": expected[key], "state": PENDING if key[0] in populated else READY,
                          "updated": now}
                if key in stored:
                    conn.execute(update(search_index).where(search_index.c.resource_type == key[0],
                                                            search_index.c.code == key[1]).values(**values))
                else:
                    new_rows.append({"resource_type": key[0], "code": key[1], **values})
            if new_rows:
                conn.execute(insert(search_index), new_rows)
            for key in set(stored) - set(expected):
                conn.execute(delete(search_index).where(search_index.c.resource_type == key[0],
                                                        search_index.c.code == key[1]))
        return self.pending(force=True)

    def pending(self, *, force: bool = False) -> frozenset[tuple[str, str]]:
        """The (type, code) pairs whose rows are not all built yet (read again every ``refresh``
        seconds while there are any)."""
        if force or (self._pending and time.monotonic() - self._read_at >= self.refresh):
            with self._lock:
                with self.database.read() as conn:
                    self._pending = frozenset(
                        (row.resource_type, row.code) for row in
                        conn.execute(select(search_index.c.resource_type, search_index.c.code)
                                     .where(search_index.c.state == PENDING)))
                self._read_at = time.monotonic()
        return self._pending

    def is_pending(self, resource_type: str, code: str) -> bool:
        return bool(self._pending) and (resource_type, code) in self.pending()

    def mark_ready(self, conn: Connection, pairs, fingerprints: dict[tuple[str, str], str]) -> None:
        """After a reindex of ``pairs`` with this version's definitions (``fingerprints``)."""
        now = clock.now()
        for resource_type, code in pairs:
            fingerprint = fingerprints.get((resource_type, code))
            if fingerprint is None:
                continue
            found = conn.execute(update(search_index).where(
                search_index.c.resource_type == resource_type, search_index.c.code == code,
            ).values(fingerprint=fingerprint, state=READY, updated=now)).rowcount
            if not found:
                conn.execute(insert(search_index).values(resource_type=resource_type, code=code,
                                                         fingerprint=fingerprint, state=READY, updated=now))


def _has_resources(conn: Connection, resource_type: str) -> bool:
    return bool(conn.execute(select(exists().where(resource.c.resource_type == resource_type,
                                                   resource.c.deleted.is_(False)))).scalar())
