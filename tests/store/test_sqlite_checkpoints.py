"""The write-ahead log of a SQLite file is checkpointed by a thread of its own, not inside the commits
that hold the writers' turn (``store.sqlite_checkpoints``)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

from fhirportal.store.database import Database
from fhirportal.store.sqlite_checkpoints import Checkpointer

PAGE = 4096
ROWS = 1500  # about 1,500 pages: past the 1,000 at which a commit would have checkpointed


def _database(tmp_path, interval: float = 0.05, idle_rounds: int = 3) -> tuple[Database, str]:
    path = str(tmp_path / "db.sqlite")
    database = Database(f"sqlite:///{path}")
    database._checkpoints.interval = interval
    database._checkpoints.idle_rounds = idle_rounds
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE filler (n INTEGER PRIMARY KEY, data BLOB)")
    return database, path


def _fill(database: Database, start: int = 0, rows: int = ROWS) -> None:
    with database.write() as conn:
        conn.exec_driver_sql("INSERT INTO filler VALUES (?, ?)",
                             [(n, os.urandom(PAGE - 200)) for n in range(start, start + rows)])


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_connections_leave_checkpoints_to_the_thread(tmp_path):
    database, _path = _database(tmp_path)
    with database.read() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    database.dispose()


def test_a_large_commit_is_checkpointed_after_it_not_in_it(tmp_path):
    database, path = _database(tmp_path, interval=0.5)
    rounds = database._checkpoints.rounds
    before = os.path.getsize(path)
    _fill(database)
    # The commit returned without copying its 1,500 pages into the database file ...
    assert os.path.getsize(path) - before < ROWS * PAGE / 2
    assert os.path.getsize(f"{path}-wal") > ROWS * PAGE
    # ... the thread copies them within its interval.
    assert _wait_for(lambda: os.path.getsize(path) - before > ROWS * PAGE)
    assert _wait_for(lambda: database._checkpoints.rounds > rounds)
    with database.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM filler").scalar() == ROWS
    database.dispose()


def test_the_log_starts_again_once_checkpointed(tmp_path):
    """Checkpointed pages are reused: writing the same amount again and again does not grow the log."""
    database, path = _database(tmp_path)
    checkpoints = database._checkpoints

    def settled() -> bool:  # the thread ended: its last rounds came after the last commit
        return _wait_for(lambda: checkpoints._running_in is None)

    _fill(database, 0)
    assert settled()
    first = os.path.getsize(f"{path}-wal")
    assert first > ROWS * PAGE
    for round_number in range(1, 6):
        _fill(database, round_number * ROWS)
        assert settled()
    assert os.path.getsize(f"{path}-wal") <= first * 1.5
    database.dispose()


def test_the_thread_ends_when_idle_and_comes_back_with_writes(tmp_path):
    database, path = _database(tmp_path, interval=0.05, idle_rounds=2)
    checkpoints = database._checkpoints
    assert _wait_for(lambda: checkpoints._running_in is None)
    first = checkpoints._thread
    assert _wait_for(lambda: not first.is_alive())
    before = os.path.getsize(path)
    rounds = checkpoints.rounds
    _fill(database)
    assert checkpoints._running_in == os.getpid()
    assert checkpoints._thread is not first and checkpoints._thread.is_alive()
    assert _wait_for(lambda: checkpoints.rounds > rounds)
    assert os.path.getsize(path) - before > ROWS * PAGE
    assert _wait_for(lambda: checkpoints._running_in is None and not checkpoints._thread.is_alive())
    database.dispose()


def test_dispose_checkpoints_at_once(tmp_path):
    database, path = _database(tmp_path, interval=60)
    before = os.path.getsize(path)
    _fill(database)
    started = time.monotonic()
    database.dispose()  # does not wait for the 60-second interval
    assert time.monotonic() - started < 10
    assert os.path.getsize(path) - before > ROWS * PAGE


def test_a_removed_database_is_not_created_again(tmp_path, caplog):
    path = tmp_path / "gone.sqlite"
    sqlite3.connect(path).close()
    checkpointer = Checkpointer(str(path), interval=0.02, idle_rounds=2)
    path.unlink()
    checkpointer.wrote()
    assert _wait_for(lambda: checkpointer._running_in is None)
    assert not path.exists()
    assert "checkpoint" in caplog.text


def test_writes_from_many_threads_share_one_checkpointing_thread(tmp_path):
    database, path = _database(tmp_path, interval=0.2)
    checkpoints = database._checkpoints
    started: list[threading.Thread] = []
    start = checkpoints._start

    def counting_start(pid: int) -> None:
        start(pid)
        started.append(checkpoints._thread)

    checkpoints._start = counting_start
    assert _wait_for(lambda: checkpoints._running_in is None)
    before = os.path.getsize(path)
    writers = [threading.Thread(target=_fill, args=(database, n * 400, 400)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    assert _wait_for(lambda: os.path.getsize(path) - before > 1600 * PAGE)
    assert len(started) == 1
    with database.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM filler").scalar() == 1600
    database.dispose()


def test_the_log_stays_bounded_under_writes_that_never_pause(tmp_path):
    """Writers that follow one another without a gap: a checkpoint outside the turn always finds frames
    appended since it began, so no writer would ever find the log wholly copied and start it again;
    the thread then catches up inside the turn, and the log is reused."""
    database, path = _database(tmp_path, interval=0.05)
    stop = threading.Event()

    def write_on(first: int) -> None:
        while not stop.is_set():
            _fill(database, first, 20)
            first += 20

    writers = [threading.Thread(target=write_on, args=(k * 10**7,)) for k in range(2)]
    for thread in writers:
        thread.start()
    time.sleep(3)
    stop.set()
    for thread in writers:
        thread.join()
    assert database._checkpoints.rounds > 10
    with database.read() as conn:
        written = conn.exec_driver_sql("SELECT count(*) FROM filler").scalar()
    assert written > 10_000  # pages through the log (without the catching up, the log held them all)
    assert os.path.getsize(f"{path}-wal") < written * PAGE / 4
    assert database._checkpoints.restarts > 0
    database.dispose()
