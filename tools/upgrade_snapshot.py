#!/usr/bin/env python3
"""Make the snapshot that the upgrade tests start from: a database filled by a *released* version's own
code (``tools/snapshot/populate_release.py`` run against ``git archive REVISION``), dumped as rows plus
that release's DDL for SQLite and PostgreSQL.

    .venv/bin/python tools/upgrade_snapshot.py 96d475c tests/store/migrations/data/release-96d475c.json.gz

The snapshot is made once per release a migration must upgrade from and committed; the tests build
the release's schema from its DDL, insert its rows and run ``fhirportal db upgrade`` on them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(revision: str, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="fhirportal-release-") as release:
        archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        with tempfile.TemporaryFile() as handle:
            handle.write(archive)
            handle.seek(0)
            with tarfile.open(fileobj=handle) as tar:
                tar.extractall(release, filter="data")
        full = subprocess.run(["git", "rev-parse", revision], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout.strip()
        env = dict(os.environ, PYTHONPATH=release)
        env.pop("FHIRPORTAL_DATABASE_URL", None)
        subprocess.run([sys.executable, str(ROOT / "tools" / "snapshot" / "populate_release.py"),
                        str(out.resolve()), full], cwd=release, env=env, check=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], Path(sys.argv[2]))
