"""Schemathesis against the live server (gunicorn over the demo practice), driven by the server's own
OpenAPI document (``/api-docs/openapi.json``): for every documented operation, ``MAX_EXAMPLES`` generated
valid requests and half as many invalid ones (Hypothesis strategies from schemathesis; no stateful phase;
the FHIR calls carry the suite's ``system/*.cruds`` token), each checked for no server error (no 5xx) and
conformance to the document (status code, Content-Type, response schema). Every failure is collected, so
one run lists them all, each with a curl command to reproduce it.

(schemathesis' own pytest integration, ``schemathesis.pytest.from_fixture``, fails under pytest 9 —
``'Function' object has no attribute '_nodeid'`` in schemathesis 4.32 — hence the plain Hypothesis loop.)

The live server is shared with the other e2e tests, which read the demo data by id; so the fuzz never
changes or removes a demo resource:
- PUT / PATCH / DELETE / POST on ``/fhir/{resource_type}/{fhir_id}`` and the instance operations that write
  (``$portal-*``, ``$validate``) go to ids in the fuzz's own namespace (``fuzz-…``), which no demo resource
  has: they exercise parsing, validation and the not-found paths without touching demo records (reads,
  ``$everything`` and the Group ``$export`` keep the generated ids);
- conditional PUT / DELETE on ``/fhir/{resource_type}`` get an ``_id=fuzz-…`` criterion, so they match nothing
  of the demo (a conditional PUT then creates a new fuzz resource); a PUT body's id is namespaced too;
- transaction / batch Bundles keep only POST and GET entries (creates and reads);
- a Bulk Data kick-off that is accepted is cancelled at once (no export thread left running).
The run stops generating after ``BUDGET_SECONDS`` and prints how many operations and requests it covered
and the status codes it got. ``FHIRPORTAL_FUZZ_SEED`` / ``_EXAMPLES`` / ``_SECONDS`` make a longer hunt
with other inputs (CI uses the fixed, derandomized inputs).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode

MAX_EXAMPLES = int(os.environ.get("FHIRPORTAL_FUZZ_EXAMPLES", "20"))
BUDGET_SECONDS = int(os.environ.get("FHIRPORTAL_FUZZ_SECONDS", "120"))
# Unset: the same (derandomized) inputs every run, so CI is reproducible; a number: other inputs, to hunt.
SEED = os.environ.get("FHIRPORTAL_FUZZ_SEED")
FUZZ_PREFIX = "fuzz-"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DESTRUCTIVE = frozenset({"PUT", "PATCH", "DELETE", "POST"})


def _schema(live_server):
    origin = live_server["base_url"].rsplit("/fhir", 1)[0]
    schema = schemathesis.openapi.from_url(f"{origin}/api-docs/openapi.json")
    schema.config.update(base_url=origin)
    return schema


def _namespaced(value) -> str:
    text = "".join(c for c in str(value) if c.isalnum() or c in "-.")[:40]
    return text if text.startswith(FUZZ_PREFIX) else FUZZ_PREFIX + text


def _keep_demo_data(case) -> None:
    """Point every write at the fuzz's own ids (see the module docstring)."""
    path, method = case.operation.path, case.method.upper()
    params = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    if "fhir_id" in params and method in DESTRUCTIVE and not path.endswith(("/$everything", "/$export")):
        params["fhir_id"] = _namespaced(params["fhir_id"])
    if path == "/fhir/{resource_type}" and method in ("PUT", "DELETE"):
        query = case.query if isinstance(case.query, dict) else {}
        case.query = {**query, "_id": _namespaced(query.get("_id", "x"))}
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and method in ("PUT", "POST") and "id" in body:
        body["id"] = params["fhir_id"] if "fhir_id" in params else _namespaced(body["id"])
    if body is not None and path == "/fhir" and method == "POST" and isinstance(body.get("entry"), list):
        body["entry"] = [e for e in body["entry"] if not isinstance(e, dict) or not isinstance(
            e.get("request"), dict) or str(e["request"].get("method", "")).upper() in ("POST", "GET")]


def _describe(case, response, error: BaseException) -> str:
    body = response.text[:300] if response is not None else ""
    status = response.status_code if response is not None else "-"
    first = str(error).strip().splitlines()[:6]
    return f"{case.method.upper()} {case.operation.path} -> {status}: {' | '.join(first)}\n    {body}\n    " \
           f"repro: {case.as_curl_command()[:600]}"


def _fuzz(operation, mode: GenerationMode, examples: int, headers: dict, failures: dict, deadline: float,
          statuses: Counter) -> int:
    sent = 0

    @settings(max_examples=examples, deadline=None, database=None, derandomize=SEED is None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        nonlocal sent
        if time.monotonic() > deadline:
            return
        _keep_demo_data(case)
        response = None
        try:
            response = case.call(headers=headers, timeout=30, allow_redirects=False)
            sent += 1
            statuses[(f"{case.method.upper()} {case.operation.path}", response.status_code)] += 1
            location = response.headers.get("Content-Location", "")
            if response.status_code == 202 and "/$export-status/" in location:
                requests.delete(location, headers=headers, timeout=30)  # no export left running
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as error:  # noqa: BLE001  (collected: every operation gets its turn)
            key = (case.method.upper(), case.operation.path, type(error).__name__,
                   response.status_code if response is not None else None)
            failures.setdefault(key, _describe(case, response, error))

    if SEED is not None:
        run = seed(int(SEED))(run)
    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (negative mode, an operation without inputs)
        run()
    return sent


def test_every_operation_answers_as_documented(live_server):
    """Generated requests (valid ones, then invalid ones) for every operation in the OpenAPI document:
    no 5xx, and status, Content-Type and body as the document says (the FHIR API's errors are
    OperationOutcomes)."""
    schema = _schema(live_server)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 50, "the OpenAPI document lost operations"
    headers = {"Authorization": f"Bearer {live_server['token']}"}
    failures: dict = {}
    deadline = time.monotonic() + BUDGET_SECONDS
    sent = 0
    statuses: Counter = Counter()
    for mode, examples in ((GenerationMode.POSITIVE, MAX_EXAMPLES), (GenerationMode.NEGATIVE, MAX_EXAMPLES // 2)):
        for operation in operations:
            if time.monotonic() > deadline:
                break
            sent += _fuzz(operation, mode, examples, headers, failures, deadline, statuses)
    print(f"fuzz: {len(operations)} operations, {sent} requests, {len(failures)} distinct failures, "
          f"{'within' if time.monotonic() <= deadline else 'stopped at'} the {BUDGET_SECONDS}s budget; status codes: "
          f"{dict(sorted(Counter(status for _, status in statuses.elements()).items()))}")
    for (operation, status), count in sorted(statuses.items()):
        print(f"  {operation} {status}: {count}")
    if failures:
        pytest.fail("\n".join(failures.values()), pytrace=False)
