"""Reindex throughput and memory on a large database: ``fhirportal reindex`` as an operator runs it.

    .venv/bin/python benchmarks/reindex_benchmark.py --database-url URL [--type Observation]
        [--param CODE ...] [--interrupt-after SECONDS]

The database is one that ``benchmarks/search_benchmark.py --keep`` built (e.g. 10,000 patients × 100
Observations on PostgreSQL: ``--backend postgresql --patients 10000 --observations-per-patient 100
--workers 2 --database fhirportal_search_1m --keep``). The command runs as a child process; its
resident memory is sampled every half second and printed at each tenth of the work, so a leak shows
as growth. ``--interrupt-after S`` kills it after S seconds and runs it again: the second run must
resume (not start over) and the total must equal the resources of the type.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def run(url: str, args: list[str], interrupt_after: float | None = None) -> tuple[int, str, list[tuple[float, float]]]:
    command = [str(BIN / "fhirportal"), "--database-url", url, "reindex", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    while process.poll() is None:
        rss = _rss_mb(process.pid)
        if rss is not None:
            samples.append((time.monotonic() - started, rss))
        if interrupt_after is not None and time.monotonic() - started > interrupt_after:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.5)
    out, err = process.communicate()
    return process.returncode, out + err, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--type", dest="types", action="append", default=None)
    parser.add_argument("--param", dest="params", action="append", default=[])
    parser.add_argument("--interrupt-after", type=float, default=None,
                        help="kill the reindex after this many seconds, then run it again to resume")
    options = parser.parse_args()
    types = options.types or ["Observation"]
    args = [f"--type={t}" for t in types] + [f"--param={p}" for p in options.params] + ["--quiet"]
    print(f"reindex {' '.join(args)} on {options.database_url}")
    if options.interrupt_after:
        code, output, samples = run(options.database_url, args, options.interrupt_after)
        print(f"killed after {options.interrupt_after:.0f} s (exit {code}); peak RSS "
              f"{max((s[1] for s in samples), default=0):.0f} MB; running it again:")
        args = ["--quiet"]  # resume whatever was left unfinished
    code, output, samples = run(options.database_url, args)
    print(output.strip())
    if code != 0:
        raise SystemExit(f"reindex failed with exit status {code}")
    if samples:
        duration = samples[-1][0] or 1.0
        print("elapsed s   RSS MB")
        for tenth in range(1, 11):
            moment = duration * tenth / 10
            nearest = min(samples, key=lambda s: abs(s[0] - moment))
            print(f"{nearest[0]:9.1f}  {nearest[1]:7.1f}")
        first = next((s[1] for s in samples if s[0] >= duration * 0.1), samples[0][1])
        print(f"peak RSS {max(s[1] for s in samples):.1f} MB; at 10 % of the run {first:.1f} MB, at the end "
              f"{samples[-1][1]:.1f} MB")


if __name__ == "__main__":
    main()
