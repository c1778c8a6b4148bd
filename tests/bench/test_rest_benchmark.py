"""Pieces of benchmarks/rest_benchmark.py that do not need a server: the built-in data generator
(used when fixtures.generate is missing) produces loadable data, and the create bodies are valid."""

from __future__ import annotations

import json
import random

from benchmarks import rest_benchmark as bench
from fhirportal.app import create_app
from fhirportal.fhir.loading import expand_paths, load
from fhirportal.settings import Settings
from tests.support import SYSTEM_SCOPE, TEST_CLIENT_ID, Fhir


def test_fallback_data_loads_without_failures(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "_iter_large", lambda: (bench._fallback_iter_large, "fallback"))
    counts, source = bench.write_ndjson(tmp_path, 5, 3)
    assert source == "fallback"
    assert counts == {"Patient": 5, "Observation": 15}
    assert [p.name for p in expand_paths([str(tmp_path)])] == ["00-Patient.ndjson", "01-Observation.ndjson"]
    app = create_app(Settings(database_url="sqlite://"))
    report = load(app.extensions["fhirportal"], expand_paths([str(tmp_path)]))
    assert report.failed == []
    assert report.created == 20


def test_create_bodies_are_accepted():
    app = create_app(Settings(database_url="sqlite://"))
    token = app.extensions["fhirportal"].tokens.mint(client_id=TEST_CLIENT_ID, scope=SYSTEM_SCOPE)
    client = Fhir(app.test_client(), token)
    patient = client.post("/fhir/Patient", {"resourceType": "Patient"})
    phases = bench.build_phases([patient.get_json()["id"]], [])
    create = next(p for p in phases if p.method == "POST")
    assert [p.label for p in phases] == ["read Patient", "ceiling Patient", "create Observation"]
    for body in create.bodies[:5]:
        response = client.post(create.paths[0], data=body, content_type="application/fhir+json")
        assert response.status_code == 201, response.get_data(as_text=True)
        assert json.loads(body)["subject"]["reference"] == f"Patient/{patient.get_json()['id']}"


def test_authorized_reads_use_the_compartment_patients_token(tmp_path):
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    app = create_app(Settings(database_url=url))
    monkey_dir = tmp_path / "data"
    monkey_dir.mkdir()
    for i, body in enumerate(bench._fallback_iter_large(3, 2)):
        (monkey_dir / f"{i:03d}.json").write_text(json.dumps(body))
    assert load(app.extensions["fhirportal"], expand_paths([str(monkey_dir)])).failed == []
    patients = bench.existing_ids(url, "Patient")
    observations = bench.existing_ids(url, "Observation")
    system, tokens = bench.mint_tokens(url, patients[:2])
    subjects = bench.compartment_subjects(url, observations)
    assert subjects["bench-obs-1-0"] == "bench-pat-1"
    phases = {p.label: p for p in bench.build_phases(patients, observations, system, tokens, subjects)}
    assert list(phases) == ["read Patient", "read Observation", "authorized Patient", "authorized Observation",
                            "unauthorized Patient", "unauthorized Observation", "ceiling Patient",
                            "ceiling Observation", "create Observation"]
    assert phases["unauthorized Patient"].paths == [f"/_bench/open/Patient/{i}" for i in patients[:2]]
    assert len(phases["authorized Observation"].paths) == 4  # the observations of the 2 patients with tokens
    client = app.test_client()
    for label in ("read Patient", "authorized Patient", "authorized Observation"):
        phase = phases[label]
        tokens_ = phase.tokens if isinstance(phase.tokens, list) else [phase.tokens] * len(phase.paths)
        for path, token in zip(phase.paths, tokens_, strict=True):
            assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200, (label, path)
    foreign = client.get("/fhir/Observation/bench-obs-2-0", headers={"Authorization": f"Bearer {tokens[patients[0]]}"})
    assert foreign.status_code == 404


def test_percentile_nearest_rank():
    values = sorted(random.Random(1).sample(range(1, 101), 100))
    assert bench._percentile(values, 0.50) == 50
    assert bench._percentile(values, 0.95) == 95
    assert bench._percentile(values, 0.99) == 99
    assert bench._percentile([7.0], 0.99) == 7.0
