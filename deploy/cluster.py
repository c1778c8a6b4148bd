#!/usr/bin/env python3
"""Several fhirportal nodes behind HAProxy, with PgBouncer (transaction pooling) in front of PostgreSQL,
on one machine — the shape of a production deployment, started and stopped by one command:

    deploy/cluster.py start --database-url postgresql://postgres@127.0.0.1:5432/fhirportal [--nodes 3]
        [--port 8080] [--workers 2] [--threads 4] [--dir var/cluster]
    deploy/cluster.py status [--dir var/cluster]
    deploy/cluster.py stop [--dir var/cluster]
    deploy/cluster.py kill-node N / start-node N [--dir var/cluster]   (for failover drills)

- PgBouncer on 127.0.0.1:``--pgbouncer-port`` (6433), ``pool_mode = transaction``; the nodes reach
  PostgreSQL only through it (``FHIRPORTAL_DATABASE_POOLER=transaction``: no prepared statements, no
  startup options). Schema upgrades go to PostgreSQL directly (``fhirportal db upgrade``, run by ``start``).
- Node N is gunicorn on 127.0.0.(N+1):``--node-port`` (8000), ``--workers`` × ``--threads``.
- HAProxy on 127.0.0.1:``--port`` balances them round-robin, checks ``GET /readyz`` every 0.5 s (a node
  whose database is unreachable, or that is down, gets no requests after 2 failures), and retries a
  request whose connection failed on another node (``retry-on conn-failure empty-response …``,
  ``option redispatch``): a node that dies costs clients nothing but the requests it was in the middle of
  answering, and not those of the idempotent methods.

Everything it starts writes its pid, configuration and log under ``--dir``. Needs Debian's ``haproxy`` and
``pgbouncer`` packages (``.ci/run`` installs them) and this checkout's ``.venv``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
STATE = "cluster.json"

HAPROXY = """global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    retries 3
    option redispatch 1
    option http-buffer-request
    retry-on conn-failure empty-response junk-response response-timeout 0rtt-rejected
    option httplog
    option forwardfor
    log stdout format raw local0 info

frontend fhir
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 check
{servers}
"""

PGBOUNCER = """[databases]
* = host={pg_host} port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = {pool_size}
reserve_pool_size = 5
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
pidfile = {dir}/pgbouncer.pid
logfile = {dir}/pgbouncer.log
admin_users = {user}
"""


def _node_address(number: int) -> str:
    return f"127.0.0.{number + 1}"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (loopback)
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {seconds:.0f} s")
        time.sleep(0.2)


class Cluster:
    def __init__(self, directory: Path):
        self.dir = directory.resolve()
        self.state_path = self.dir / STATE

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    def save(self, state: dict) -> None:
        self.state_path.write_text(json.dumps(state, indent=1))

    # ------------------------------------------------------------------ parts
    def start_pgbouncer(self, database_url: str, port: int, pool_size: int) -> str:
        parts = urlsplit(database_url)
        user = parts.username or "postgres"
        (self.dir / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(PGBOUNCER.format(
            pg_host=parts.hostname or "127.0.0.1", pg_port=parts.port or 5432, port=port, dir=self.dir,
            user=user, pool_size=pool_size))
        command = ["pgbouncer", "-d", str(self.dir / "pgbouncer.ini")]
        if os.getuid() == 0:  # pgbouncer will not run as root
            shutil.chown(self.dir, "postgres")
            for name in ("userlist.txt", "pgbouncer.ini"):
                shutil.chown(self.dir / name, "postgres")
            command[1:1] = ["-u", "postgres"]
        subprocess.run(command, check=True)
        return parts._replace(netloc=f"{user}@127.0.0.1:{port}").geturl()

    def node_env(self, state: dict) -> dict:
        return dict(os.environ, FHIRPORTAL_DATABASE_URL=state["pooled_url"], FHIRPORTAL_DATABASE_POOLER="transaction",
                    FHIRPORTAL_PROXY_HOPS="1",  # HAProxy's X-Forwarded-For: the client's address for rate limits
                    FHIRPORTAL_BASE_URL=f"http://127.0.0.1:{state['port']}/fhir",
                    FHIRPORTAL_EXPORT_DIR=str(self.dir / "exports"), **state.get("env", {}))

    def start_node(self, number: int, state: dict | None = None) -> None:
        state = state or self.state()
        address = f"{_node_address(number)}:{state['node_port']}"
        pid_file = self.dir / f"node{number}.pid"
        subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", address, "--workers", str(state["workers"]), "--worker-class",
             "gthread", "--threads", str(state["threads"]), "--pid", str(pid_file), "--daemon",
             "--error-logfile", str(self.dir / f"node{number}.log"), "--graceful-timeout", "5", "wsgi:app"],
            cwd=ROOT, env=self.node_env(state)).wait()
        _wait(f"http://{address}/readyz")

    def node_pids(self, number: int) -> list[int]:
        """The node's gunicorn master and its workers."""
        master = _read_pid(self.dir / f"node{number}.pid")
        if not _alive(master):
            return []
        children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
        return [master, *(int(p) for p in children)]

    def kill_node(self, number: int, sig: int = signal.SIGKILL) -> None:
        for pid in self.node_pids(number):
            os.kill(pid, sig)

    def start_haproxy(self, state: dict) -> None:
        servers = "\n".join(f"    server node{n} {_node_address(n)}:{state['node_port']}"
                            for n in range(1, state["nodes"] + 1))
        (self.dir / "haproxy.cfg").write_text(HAPROXY.format(port=state["port"], dir=self.dir, servers=servers))
        with (self.dir / "haproxy.log").open("ab") as log:
            process = subprocess.Popen(["haproxy", "-f", str(self.dir / "haproxy.cfg")], stdout=log, stderr=log,
                                       start_new_session=True)
        (self.dir / "haproxy.pid").write_text(str(process.pid))
        _wait(f"http://127.0.0.1:{state['port']}/readyz")

    # ------------------------------------------------------------------ commands
    def start(self, database_url: str, *, nodes: int, port: int, node_port: int, pgbouncer_port: int,
              workers: int, threads: int, pool_size: int, env: dict | None = None) -> dict:
        if self.state() and self.status()["running"]:
            raise SystemExit(f"a cluster is running from {self.dir}: stop it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        upgrade = subprocess.run([str(BIN / "fhirportal"), "--database-url", database_url, "db", "upgrade"],
                                 cwd=ROOT, capture_output=True, text=True)
        if upgrade.returncode != 0:
            raise SystemExit(f"fhirportal db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
        state = {"database_url": database_url, "nodes": nodes, "port": port, "node_port": node_port,
                 "pgbouncer_port": pgbouncer_port, "workers": workers, "threads": threads, "env": env or {}}
        state["pooled_url"] = self.start_pgbouncer(database_url, pgbouncer_port, pool_size)
        self.save(state)
        for number in range(1, nodes + 1):
            self.start_node(number, state)
        self.start_haproxy(state)
        return state

    def status(self) -> dict:
        state = self.state()
        nodes = {f"node{n}": bool(self.node_pids(n)) for n in range(1, state.get("nodes", 0) + 1)}
        parts = {"haproxy": _alive(_read_pid(self.dir / "haproxy.pid")),
                 "pgbouncer": _alive(_read_pid(self.dir / "pgbouncer.pid")), **nodes}
        return {"running": any(parts.values()), **parts,
                "url": f"http://127.0.0.1:{state['port']}/fhir" if state else None}

    def stop(self) -> None:
        state = self.state()
        for name in ("haproxy",):
            pid = _read_pid(self.dir / f"{name}.pid")
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)
        for number in range(1, state.get("nodes", 0) + 1):
            master = _read_pid(self.dir / f"node{number}.pid")
            if _alive(master):
                os.kill(master, signal.SIGTERM)  # graceful: the workers finish and flush their access log
        deadline = time.monotonic() + 20
        while any(self.node_pids(n) for n in range(1, state.get("nodes", 0) + 1)) and time.monotonic() < deadline:
            time.sleep(0.2)
        pid = _read_pid(self.dir / "pgbouncer.pid")
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "kill-node", "start-node"])
    parser.add_argument("node", nargs="?", type=int)
    parser.add_argument("--dir", default=str(ROOT / "var" / "cluster"))
    parser.add_argument("--database-url", default=os.environ.get("FHIRPORTAL_DATABASE_URL"))
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--node-port", type=int, default=8000)
    parser.add_argument("--pgbouncer-port", type=int, default=6433)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pool-size", type=int, default=20, help="PgBouncer server connections per database")
    options = parser.parse_args()
    cluster = Cluster(Path(options.dir))
    if options.command == "start":
        if not (options.database_url or "").startswith("postgresql"):
            raise SystemExit("--database-url (or FHIRPORTAL_DATABASE_URL) must be a postgresql:// URL")
        state = cluster.start(options.database_url, nodes=options.nodes, port=options.port,
                              node_port=options.node_port, pgbouncer_port=options.pgbouncer_port,
                              workers=options.workers, threads=options.threads, pool_size=options.pool_size)
        print(f"fhirportal cluster: http://127.0.0.1:{state['port']}/fhir ({state['nodes']} nodes, PgBouncer "
              f"on {state['pgbouncer_port']}); logs in {cluster.dir}")
    elif options.command == "stop":
        cluster.stop()
        print("stopped")
    elif options.command == "status":
        print(json.dumps(cluster.status(), indent=1))
    elif options.command == "kill-node":
        cluster.kill_node(options.node)
    else:
        cluster.start_node(options.node)
    sys.exit(0)


if __name__ == "__main__":
    main()
