"""SQLite writers wait for their turn in a queue that wakes them at once (``store.sqlite_writers``):
threads of one process, processes of one machine, and a nested write that must not hang."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

from sqlalchemy import text

from fhirportal.store import sqlite_writers
from fhirportal.store.database import Database
from fhirportal.store.sqlite_writers import WriterQueue


def _hold(path: str, holding, release) -> None:
    with WriterQueue(path).turn():
        holding.set()
        release.wait(10)


def test_threads_take_turns(tmp_path):
    queue = WriterQueue(str(tmp_path / "db.sqlite"))
    events: list[str] = []
    inside = threading.Event()

    def first():
        with queue.turn():
            inside.set()
            time.sleep(0.2)
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(5)
    with queue.turn():
        events.append("second in")
    thread.join()
    assert events == ["first out", "second in"]


def test_another_process_holds_the_turn(tmp_path):
    path = str(tmp_path / "db.sqlite")
    context = multiprocessing.get_context("spawn")
    holding, release = context.Event(), context.Event()
    child = context.Process(target=_hold, args=(path, holding, release))
    child.start()
    try:
        assert holding.wait(30)
        got = threading.Event()

        def take():
            with WriterQueue(path).turn():
                got.set()

        taker = threading.Thread(target=take, daemon=True)
        taker.start()
        assert not got.wait(0.5), "the turn was given while another process held it"
        release.set()
        assert got.wait(10), "the turn was not given once the other process let go"
    finally:
        release.set()
        child.join(10)


def test_a_nested_write_in_one_thread_does_not_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_writers, "WAIT_SECONDS", 0.2)
    queue = WriterQueue(str(tmp_path / "db.sqlite"))
    with queue.turn():
        started = time.monotonic()
        with queue.turn():  # past WAIT_SECONDS it goes on without the queue (SQLite's busy handler decides)
            waited = time.monotonic() - started
    assert 0.15 <= waited < 5


def test_concurrent_writes_all_commit(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'writers.db'}")
    assert database._writers is not None and Database("sqlite://")._writers is None
    with database.write() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []

    def bump():
        try:
            for _ in range(25):
                with database.write() as conn:
                    n = conn.execute(text("SELECT n FROM counter")).scalar_one()
                    conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    with database.read() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 200
    database.dispose()


def test_a_forked_child_has_its_own_turn(tmp_path):
    """A child forked while its parent held the turn is not stuck behind the parent's thread lock."""
    queue = WriterQueue(str(tmp_path / "db.sqlite"))
    with queue.turn():
        pid = os.fork()
        if pid == 0:  # the child: takes its turn once the parent lets go of the file
            try:
                started = time.monotonic()
                with queue.turn():
                    pass
                os._exit(0 if time.monotonic() - started < 5 else 2)  # not the parent's lock's 30 s
            except BaseException:  # noqa: BLE001
                os._exit(1)
        time.sleep(0.2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
