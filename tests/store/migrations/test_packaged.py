"""The migrations ship in the wheel and run from an installed package, not only from the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import sys
from fhirportal.store import migrate
from fhirportal.store.database import Database
assert migrate.__file__.startswith(sys.argv[1]), migrate.__file__
database = Database(sys.argv[2])
print(migrate.upgrade(database, echo=lambda line: None).revision, migrate.head(), len(migrate.history()))
"""


def test_the_wheel_carries_the_migrations_and_they_run_from_it(tmp_path):
    source_copy = tmp_path / "src"  # built from a copy: setuptools leaves build/ beside what it builds
    shutil.copytree(ROOT, source_copy, ignore=shutil.ignore_patterns(
        ".venv", ".git", "var", "build", "tests", "benchmarks", "*.egg-info", "__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
                            str(source_copy)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("fhirportal-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    migrations = sorted(n for n in names if n.startswith("fhirportal/store/migrations/"))
    assert "fhirportal/store/migrations/env.py" in migrations
    assert "fhirportal/store/migrations/versions/0002_search_index.json" in migrations
    source = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "fhirportal/store/migrations").rglob("*")
                    if p.is_file() and p.suffix in (".py", ".json", ".mako"))
    assert migrations == source

    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    env = dict(os.environ, PYTHONPATH=str(installed))
    run = subprocess.run([sys.executable, "-c", PROBE, str(installed), f"sqlite:///{tmp_path / 'w.db'}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    revision, head, count = run.stdout.split()
    assert revision == head and int(count) >= 2
