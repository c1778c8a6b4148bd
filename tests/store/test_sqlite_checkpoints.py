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
    assert _wait_for(lambda: database._checkpoints.rounds > rounds)
    assert os.path.getsize(path) - before > ROWS * PAGE
    with database.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM filler").scalar() == ROWS
    database.dispose()


def test_the_log_starts_again_once_checkpointed(tmp_path):
    """Checkpointed pages are reused: writing the same amount again and again does not grow the log."""
    database, path = _database(tmp_path)
    _fill(database, 0)
    assert _wait_for(lambda: database._checkpoints.rounds > 0)
    first = os.path.getsize(f"{path}-wal")
    for round_number in range(1, 6):
        rounds = database._checkpoints.rounds
        _fill(database, round_number * ROWS)
        assert _wait_for(lambda rounds=rounds: database._checkpoints.rounds > rounds)
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
