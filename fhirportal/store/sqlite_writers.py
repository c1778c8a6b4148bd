"""One queue for the SQLite writers of every process on this machine.

SQLite lets one writer in at a time; a writer that finds the file locked waits in SQLite's busy
handler, which sleeps in growing steps (1, 2, 5, 10 … 100 ms) and polls again. Under a mixed load the
lock is free again after a few milliseconds while its waiters sleep on: a transaction of 8 ms waited
a median of 50 ms, and whoever polled at the right moment jumped the queue.

``WriterQueue`` makes writers wait where waking is immediate instead: a lock per process (threads),
then an exclusive ``flock`` on a file beside the database (processes: every gunicorn worker and the
command line), taken before ``BEGIN IMMEDIATE`` and released after the commit or rollback. The
operating system releases the ``flock`` of a process that dies. Waiting for the thread lock is bounded
(``WAIT_SECONDS``, SQLite's own busy timeout): past it the writer goes on to SQLite's busy handler as
before, so that a nested write in one thread is refused as it always was instead of hanging.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

WAIT_SECONDS = 30.0


class WriterQueue:
    def __init__(self, database_path: str):
        self.path = f"{database_path}.writers"
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None

    def _file(self) -> int:
        """This process's descriptor of the lock file."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        if self._pid != os.getpid():  # new, or a forked child: its own lock and its own open file (a ``flock``
            self._pid = os.getpid()   # belongs to the open file, which a fork shares with the parent)
            self._thread_lock, self._fd = threading.Lock(), None
        if not self._thread_lock.acquire(timeout=WAIT_SECONDS):
            log.warning("a SQLite writer waited %.0f s for its turn; going on to SQLite's busy handler",
                        WAIT_SECONDS)
            yield
            return
        try:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()
