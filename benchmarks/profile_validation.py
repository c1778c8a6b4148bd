"""Profile validation cost (``fhirportal.fhir.profiles``), in-process: every US Core 6.1.0 example against
each profile its meta.profile names, and the demo practice's vital signs (``fixtures/demo``: blood
pressure, heart rate, body weight, as the EHR pushes them) against their US Core profiles.

    .venv/bin/python benchmarks/profile_validation.py [--rounds 200] [--engine compiled|fhirpathpy] [--json PATH]

Prints the one-time cost of compiling all 59 profiles, then per profile the examples validated, p50 and
p95 of one validation (CPU µs of the validating thread, so that other processes on a shared machine do not
count; over every round of every example) and the errors found, then the same over all examples and for
the vital signs, with validations/s at p50 on one core. ``--engine fhirpathpy``
evaluates the invariants with fhirpathpy instead of the compiled evaluator (what it costs without it).
Bindings are answered by the package's enumerated ValueSets (the test suite's stand-in terminology).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fhirportal.definitions.packages import examples  # noqa: E402
from fhirportal.fhir.profiles import ProfileRegistry, invariants, registry  # noqa: E402
from tests.fhir.profiles.valuesets import contains  # noqa: E402

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
VITAL_SIGNS = {"85354-9": "us-core-blood-pressure", "8867-4": "us-core-heart-rate", "29463-7": "us-core-body-weight"}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(profiles: ProfileRegistry, pairs: list[tuple[dict, str]], rounds: int) -> tuple[list[float], int]:
    """Per-validation times (µs) over ``rounds`` rounds of every pair, and the errors of one round."""
    errors = sum(1 for resource, url in pairs for issue in profiles.validate(resource, url, contains)
                 if issue.severity == "error")
    samples = []
    clock = time.thread_time_ns  # CPU time of this thread: other processes on the machine do not count
    gc.disable()
    try:
        for _ in range(rounds):
            for resource, url in pairs:
                started = clock()
                profiles.validate(resource, url, contains)
                samples.append((clock() - started) / 1000)
    finally:
        gc.enable()
    return samples, errors


def demo_vital_signs() -> list[tuple[dict, str]]:
    found = []
    for path in sorted((REPO / "fixtures" / "demo").glob("*.json")):
        for entry in json.loads(path.read_text()).get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] == "Observation":
                profile = VITAL_SIGNS.get(resource["code"]["coding"][0]["code"])
                if profile:
                    found.append((resource, US_CORE + profile))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--engine", choices=("compiled", "fhirpathpy"), default="compiled")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    if args.engine == "fhirpathpy":  # invariants compiled from now on fall back to fhirpathpy for everything
        invariants.fhirpath.compile_expression = lambda expression: None
    profiles = ProfileRegistry(registry().definitions.values())
    started = time.perf_counter()
    for url in profiles.urls():
        profiles.profile(url)
    compile_ms = (time.perf_counter() - started) * 1000
    print(f"compiling {len(profiles.urls())} profiles: {compile_ms:.0f} ms (once per process); "
          f"invariants: {args.engine}; {args.rounds} rounds")

    pairs = [(example, url) for _, example in sorted(examples().items()) if example["resourceType"] != "Bundle"
             for url in example.get("meta", {}).get("profile", []) if url in profiles.definitions]
    by_profile: dict[str, list[tuple[dict, str]]] = {}
    for resource, url in pairs:
        by_profile.setdefault(url.rpartition("/")[2], []).append((resource, url))
    figures = {"compile_ms": compile_ms, "engine": args.engine, "profiles": {}}
    print(f"\n{'profile':46} {'examples':>8} {'p50 µs':>8} {'p95 µs':>8} {'errors':>6}")
    for name, group in sorted(by_profile.items()):
        samples, errors = measure(profiles, group, args.rounds)
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        figures["profiles"][name] = {"examples": len(group), "p50_us": p50, "p95_us": p95, "errors": errors}
        print(f"{name:46} {len(group):8} {p50:8.1f} {p95:8.1f} {errors:6}")
    for label, group in (("all US Core examples", pairs), ("demo vital signs", demo_vital_signs())):
        samples, errors = measure(profiles, group, args.rounds)
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        figures[label] = {"resources": len(group), "p50_us": p50, "p95_us": p95, "errors": errors}
        print(f"\n{label}: {len(group)} resources, p50 {p50:.1f} µs, p95 {p95:.1f} µs, max "
              f"{max(samples):.0f} µs, errors {errors}; {1e6 / p50:,.0f} validations/s at p50 on one core")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
