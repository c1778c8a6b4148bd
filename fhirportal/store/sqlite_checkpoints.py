"""Checkpoints of a SQLite file's write-ahead log, away from the writers' turn.

In WAL mode a commit appends pages to the ``-wal`` file, and SQLite copies them back into the database
(a checkpoint) once the log passes 1,000 pages: by default inside the ``COMMIT`` that crossed the mark.
That commit holds the writers' turn (``sqlite_writers``) through the copy and its fsyncs, so every
writer queued behind it waits too. Under the mixed load of ``benchmarks/load_test.py`` those commits
took 20-35 ms every few seconds and set the p95 of the portal's small writes.

``Checkpointer`` turns the automatic checkpoint off on this database's connections (``PRAGMA
wal_autocheckpoint=0``, see ``database``) and runs the checkpoint the automatic one runs (PASSIVE) from a
thread of its own, outside any writer's turn: PASSIVE neither waits for nor blocks readers and writers
(SQLite serialises it only with other checkpoints; one that finds another running skips its round).

The log stays bounded: a writer starts it again from its beginning when it finds every frame copied.
But a checkpoint outside the turn copies what was committed when it began while writers go on
appending, and under writes that never pause no writer would ever find the log wholly copied: it would
grow by every page written (measured: 50,000 pages after 3 s of back-to-back writers). So once the log
holds ``RESTART_FRAMES`` frames, the thread copies the few frames appended since in a second PASSIVE
checkpoint, holding the writers' turn for it; the next writer then finds the log copied and starts it
again.

The thread starts with this process's first write (a forked gunicorn worker starts its own), checkpoints
at most every ``INTERVAL`` seconds while writes come, and ends after ``IDLE_ROUNDS`` quiet rounds, the
last of which found nothing new; the next write starts it again. A failing checkpoint is logged and
tried again next round: until then the log only grows, as it would have between automatic checkpoints.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from .sqlite_writers import WriterQueue

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds between checkpoints while there are writes
IDLE_ROUNDS = 5  # rounds without writes after which the thread ends
RESTART_FRAMES = 1000  # a log this long is caught up with in the writers' turn (SQLite's own mark)


class Checkpointer:
    def __init__(self, database_path: str, writers: WriterQueue | None = None, interval: float = INTERVAL,
                 idle_rounds: int = IDLE_ROUNDS):
        self.path = database_path
        self.writers = writers
        self.interval = interval
        self.idle_rounds = idle_rounds
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()
        self._running_in: int | None = None  # the process whose thread is running, if any
        self._thread: threading.Thread | None = None
        self._dirty = False
        self._stop = threading.Event()
        self.rounds = 0  # checkpoints run by this process (for tests and diagnostics)
        self.restarts = 0  # of those, the ones caught up in the writers' turn

    def wrote(self) -> None:
        """A write transaction ended in this process: checkpoint within ``interval``."""
        self._dirty = True  # before looking at the thread: one that is ending looks at this after
        pid = os.getpid()
        if self._running_in == pid:
            return
        if self._lock_pid != pid:  # a forked child: its own lock (the parent's may have been held)
            self._lock, self._lock_pid = threading.Lock(), pid
        with self._lock:
            if self._running_in != pid:
                self._start(pid)

    def _start(self, pid: int) -> None:
        self._running_in = pid
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread now, checkpointing what was written (the database is being disposed of); a
        later write starts it again."""
        with self._lock:
            thread = self._thread if self._running_in == os.getpid() else None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._stop.clear()

    def _run(self) -> None:
        connection = None
        idle = 0
        try:
            while idle < self.idle_rounds:
                stopping = self._stop.wait(self.interval)
                if self._dirty:
                    self._dirty = False
                    idle = 0
                    connection = self._checkpoint(connection)
                else:
                    idle += 1
                if stopping:
                    return
        finally:
            if connection is not None:
                connection.close()
            with self._lock:
                self._running_in = None
                if self._dirty and not self._stop.is_set():  # a write came as this thread was ending
                    self._start(os.getpid())

    def _checkpoint(self, connection: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """One PASSIVE checkpoint, and a second in the writers' turn if the log is long; the connection to
        use next round."""
        try:
            if connection is None:  # never creates the file (mode=rw): a database removed stays removed
                uri = f"{Path(self.path).resolve().as_uri()}?mode=rw"
                connection = sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None)
            _busy, frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= RESTART_FRAMES and self.writers is not None:
                with self.writers.turn():
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.restarts += 1
            self.rounds += 1
        except sqlite3.Error as exc:
            log.warning("SQLite checkpoint of %s failed (tried again in %.0f s): %s", self.path, self.interval, exc)
        return connection
