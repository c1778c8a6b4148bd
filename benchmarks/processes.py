"""The server process as the benchmark scripts see it: is it serving, its descendants, their CPU time (/proc)."""

from __future__ import annotations

import http.client
import os
import time


def ticks(pid: int) -> int:
    """utime + stime of one process in clock ticks (0 if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, …)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found += [int(child) for child in handle.read().split()]
    except OSError:
        pass
    return found + [grandchild for child in found for grandchild in descendants(child)]


def serving(host: str, port: int, process, seconds: float, path: str = "/fhir/metadata") -> bool:
    """Whether the server ``process`` (a Popen) answers ``GET path`` with 200 within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False
