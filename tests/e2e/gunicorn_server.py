"""A gunicorn server of the app as its own process group, for tests that need a server of their own
(its workers killed, its database taken away): start, stop, the worker processes, and which worker
holds a given client connection (from /proc, so Linux only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (a gunicorn master's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid …
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the loopback TCP socket ``127.0.0.1:local_port`` ↔ ``…:remote_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == local_port and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                return inode
    return None


class GunicornServer:
    """``gunicorn wsgi:app`` on a free loopback port, ``FHIRPORTAL_DATABASE_URL=database_url``."""

    def __init__(self, database_url: str, log_path: Path, *, workers: int = 2, threads: int = 4,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = ()):
        self.database_url = database_url
        self.args = args  # more gunicorn options (e.g. ("-c", config))
        self.log_path = log_path
        self.workers = workers
        self.threads = threads
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.base_url = ""

    def start(self, seconds: float = 120) -> GunicornServer:
        for _attempt in range(3):  # a port taken between choosing and binding: choose again
            self.port = free_port()
            self.base_url = f"http://127.0.0.1:{self.port}/fhir"
            env = dict(os.environ, FHIRPORTAL_DATABASE_URL=self.database_url, FHIRPORTAL_BASE_URL=self.base_url,
                       **self.extra_env)
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                 "--worker-class", "gthread", "--threads", str(self.threads), *self.args, "wsgi:app"],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log_path.open("a"))
            try:
                if self._wait_until_up(seconds):
                    return self
            except BaseException:  # never leave a server behind
                self.stop()
                raise
            self.stop()
        raise RuntimeError(f"server did not start: {self.log_tail()}")

    def _wait_until_up(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base_url}/metadata", timeout=30).status_code == 200:
                    return len(self.worker_pids()) == self.workers or self._all_workers_up(deadline)
            except (requests.ConnectionError, requests.Timeout):  # not listening yet; a cold first answer
                pass
            time.sleep(0.2)
        return False

    def _all_workers_up(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if len(self.worker_pids()) == self.workers:
                return True
            time.sleep(0.1)
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.alive() else []

    def worker_holding(self, client_port: int) -> int | None:
        """The worker whose accepted socket is the other end of our connection from ``client_port``."""
        inode = _socket_inode(self.port, client_port)
        if inode is None:
            return None
        target = f"socket:[{inode}]"
        for pid in self.worker_pids():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
        return None

    def wait_for_workers(self, count: int | None = None, seconds: float = 60,
                         exclude: tuple[int, ...] = ()) -> list[int]:
        """Wait until the master runs ``count`` workers none of which is in ``exclude``; their pids."""
        count = self.workers if count is None else count
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pids = [p for p in self.worker_pids() if p not in exclude]
            if len(pids) == count:
                return pids
            time.sleep(0.1)
        raise AssertionError(f"the master runs {self.worker_pids()} (wanted {count} workers besides {exclude}); "
                             f"{self.log_tail()}")

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log_path.read_text()[-characters:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
