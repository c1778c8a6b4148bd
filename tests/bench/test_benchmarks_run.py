"""The benchmark scripts still run end to end (tiny sizes, SQLite): they talk to the server as its
clients do, so a change to the server (such as requiring tokens) must not silently break them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [
    ["benchmarks/search_benchmark.py", "--backend", "sqlite", "--patients", "30", "--observations-per-patient", "2",
     "--queries", "5"],
    ["benchmarks/search_benchmark.py", "--backend", "sqlite", "--patients", "30", "--observations-per-patient", "2",
     "--queries", "5", "--workers", "2"],
    ["benchmarks/rest_benchmark.py", "--backend", "sqlite", "--patients", "20", "--obs-per-patient", "2",
     "--duration", "0.3", "--warmup", "0.1", "--rounds", "2"],
    ["benchmarks/profile_read.py", "--requests", "50", "--top", "3"],
    ["benchmarks/profile_write.py", "--requests", "20", "--top", "3"],
    ["benchmarks/smart_benchmark.py", "--exchanges", "10", "--concurrency", "2"],
    ["benchmarks/profile_validation.py", "--rounds", "1"],
    ["benchmarks/portal_summary_benchmark.py", "--observations", "40", "--requests", "3"],
    ["benchmarks/sustained_benchmark.py", "--backend", "sqlite", "--minutes", "0.05", "--round", "3",
     "--patients", "20", "--obs-per-patient", "4", "--no-mixed"],
])
def test_benchmark_script_runs(command):
    done = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
