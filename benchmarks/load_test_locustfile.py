"""The users of ``benchmarks/load_test.py`` (locust runs this file; it is not meant to be run alone).

The run's setup comes from the JSON file named by ``FHIRPORTAL_LOADTEST_CONFIG`` (written by
load_test.py: tokens minted in the server's database, the demo patients and their MRNs, the
patients staff may invite, the request limit, where to write the results). Three kinds of users:

- ``PatientApp``: a patient's SMART app (``launch/patient patient/*.rs`` token) reading the
  patient's record and searching its compartment: most of the traffic;
- ``EhrPush``: the practice's EHR (backend-services ``system/`` token) sending small transaction
  Bundles: a new lab result as a conditional create (``ifNoneExist`` by identifier) and the
  previous one amended as a conditional update (``PUT Observation?identifier=…``), the subject given
  as a conditional reference by MRN; now and then the same Bundle sent twice (a retry);
- ``PortalStaff``: the demo nurse (user token) checking ``$portal-status`` of patients, and now and
  then inviting a patient of her own to the portal and cancelling that invitation again.

Every request (its kind, latency, status, start time) is kept in memory and written as JSON when
the test stops; load_test.py computes the figures from it. The run stops itself after
``max_requests`` requests.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time

import gevent
from locust import FastHttpUser, between, events, task

with open(os.environ["FHIRPORTAL_LOADTEST_CONFIG"], encoding="utf-8") as _config:
    CONFIG = json.load(_config)
FHIR_JSON = "application/fhir+json"
RESULT_SYSTEM = "https://ehr.example.org/fhir/sid/lab-result"
MRN_SYSTEM = "https://fhirportal.dev/fhir/sid/mrn"
SHARED_TAG = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "code": "shared-with-patient",
              "display": "Shared with patient"}
LAB_CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "laboratory", "display": "Laboratory"}]}
LAB_TESTS = [("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 180),
             ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.5, 1.6),
             ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.8, 9.5),
             ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 140, 280)]
SEARCHES = {  # kind -> query template, for the patient app
    "search Observation?patient&category=laboratory": "Observation?patient={p}&category=laboratory",
    "search Condition?patient": "Condition?patient={p}",
    "search MedicationStatement?patient": "MedicationStatement?patient={p}",
    "search AllergyIntolerance?patient": "AllergyIntolerance?patient={p}",
    "search Immunization?patient": "Immunization?patient={p}",
    "search Appointment?patient": "Appointment?patient={p}",
}
THINK = CONFIG["think_seconds"]

_records: list[tuple[str, float, int, bool, float]] = []  # kind, latency ms, status (0: none), ok, start (epoch s)
_errors: dict[str, str] = {}  # "kind: status" -> the first such answer (or exception)
_started: dict[str, float] = {}
_environments: list = []
_claimed: set[str] = set()  # patients a staff user invites (each its own)
_user_numbers = itertools.count()


@events.test_start.add_listener
def _on_start(environment, **_kwargs):
    _started["at"] = time.time()
    _started["cpu"] = time.process_time()
    with open(CONFIG["results_path"] + ".started", "w", encoding="utf-8") as handle:
        handle.write(str(_started["at"]))


@events.init.add_listener
def _on_init(environment, **_kwargs):
    _environments.append(environment)


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, response=None, exception=None,
                start_time=None, **_kwargs):
    status = int(getattr(response, "status_code", 0) or 0) if response is not None else 0
    _records.append((name, float(response_time), status, exception is None, start_time or time.time()))
    if exception is not None:
        key = f"{name}: {status or type(exception).__name__}"
        if key not in _errors:
            text = getattr(response, "text", None) if response is not None else None
            _errors[key] = (text or repr(exception))[:600]
    if len(_records) == CONFIG["max_requests"]:
        gevent.spawn(_quit)


def _quit() -> None:
    for environment in _environments:
        if environment.runner is not None:
            environment.runner.quit()


@events.test_stop.add_listener
def _on_stop(environment, **_kwargs):
    _write()


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs):
    if not os.path.exists(CONFIG["results_path"]):
        _write()


def _write() -> None:
    """The results, written whole or not at all (load_test.py reads them as soon as they appear)."""
    cpu = time.process_time() - _started["cpu"] if "cpu" in _started else None
    partial = CONFIG["results_path"] + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump({"started": _started.get("at"), "stopped": time.time(), "locust_cpu_s": cpu, "records": _records,
                   "errors": _errors}, handle)
    os.replace(partial, CONFIG["results_path"])


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}


class PatientApp(FastHttpUser):
    """A patient's app: the record and the compartment searches the portal app shows."""

    weight = CONFIG["weights"]["patient"]
    wait_time = between(THINK * 0.5, THINK * 1.5)

    def on_start(self):
        self.rng = random.Random(next(_user_numbers))
        self.patient = self.rng.choice(sorted(CONFIG["patient_tokens"]))
        self.headers = _bearer(CONFIG["patient_tokens"][self.patient])

    def _get(self, kind: str, path: str):
        self.client.get(f"/fhir/{path}", headers=self.headers, name=kind)

    @task(3)
    def read_patient(self):
        self._get("read Patient/{id}", f"Patient/{self.patient}")

    @task(3)
    def labs(self):
        kind = "search Observation?patient&category=laboratory"
        self._get(kind, SEARCHES[kind].format(p=self.patient))

    @task(6)
    def chart(self):
        kind = self.rng.choice([k for k in SEARCHES if not k.startswith("search Observation")])
        self._get(kind, SEARCHES[kind].format(p=self.patient))


class EhrPush(FastHttpUser):
    """The EHR pushing lab results: small transaction Bundles of conditional creates and updates."""

    weight = CONFIG["weights"]["ehr"]
    wait_time = between(THINK * 0.5, THINK * 1.5)

    def on_start(self):
        number = next(_user_numbers)
        self.rng = random.Random(10_000 + number)
        self.prefix = f"{CONFIG['run_id']}-{number}"
        self.sequence = 0
        self.previous: tuple[str, str, tuple] | None = None  # identifier value, patient MRN, test
        self.last_bundle: bytes | None = None
        self.headers = {**_bearer(CONFIG["system_token"]), "Content-Type": FHIR_JSON}

    def _observation(self, value_id: str, mrn: str, test: tuple, status: str, value: float) -> dict:
        code, display, unit, _low, _high = test
        body = {
            "resourceType": "Observation", "status": status, "category": [LAB_CATEGORY],
            "identifier": [{"system": RESULT_SYSTEM, "value": value_id}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
            "subject": {"reference": f"Patient?identifier={MRN_SYSTEM}|{mrn}"},
            "effectiveDateTime": "2026-11-20T09:30:00-07:00", "issued": "2026-11-20T11:00:00-07:00",
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        }
        if status == "final" and self.rng.random() < 0.5:
            body["meta"] = {"tag": [SHARED_TAG]}
        return body

    def _bundle(self) -> bytes:
        self.sequence += 1
        value_id = f"{self.prefix}-{self.sequence}"
        mrn = self.rng.choice(CONFIG["mrns"])
        test = self.rng.choice(LAB_TESTS)
        value = round(self.rng.uniform(test[3], test[4]), 1)
        entries = [{
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{self.sequence:012d}",
            "resource": self._observation(value_id, mrn, test, "preliminary", value),
            "request": {"method": "POST", "url": "Observation",
                        "ifNoneExist": f"identifier={RESULT_SYSTEM}|{value_id}"},
        }]
        if self.previous is not None:  # the previous result, now final
            old_id, old_mrn, old_test = self.previous
            entries.append({
                "resource": self._observation(old_id, old_mrn, old_test, "final",
                                              round(self.rng.uniform(old_test[3], old_test[4]), 1)),
                "request": {"method": "PUT", "url": f"Observation?identifier={RESULT_SYSTEM}|{old_id}"},
            })
        self.previous = (value_id, mrn, test)
        return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()

    @task
    def push(self):
        if self.last_bundle is not None and self.rng.random() < 0.1:
            body = self.last_bundle  # a retry: the conditional create matches, the update writes the same again
        else:
            body = self.last_bundle = self._bundle()
        self.client.post("/fhir", data=body, headers=self.headers, name="transaction (EHR push)")


class PortalStaff(FastHttpUser):
    """The demo nurse: enrollment status of patients; now and then invites one and cancels again."""

    weight = CONFIG["weights"]["staff"]
    wait_time = between(THINK * 0.5, THINK * 1.5)

    def on_start(self):
        number = next(_user_numbers)
        self.rng = random.Random(20_000 + number)
        self.headers = {**_bearer(CONFIG["staff_token"]), "Content-Type": FHIR_JSON}
        # Each staff user invites only a patient of its own, so two never race for one invitation.
        self.own = next((p for p in CONFIG["invitable"] if p not in _claimed), None)
        if self.own is not None:
            _claimed.add(self.own)
        self.invited = False

    @task(10)
    def status(self):
        patient = self.rng.choice(sorted(CONFIG["patient_tokens"]))
        self.client.get(f"/fhir/Patient/{patient}/$portal-status", headers=self.headers, name="$portal-status")

    @task(1)
    def invite_or_cancel(self):
        if self.own is None:
            return self.status()
        if self.invited:
            self.client.post(f"/fhir/Patient/{self.own}/$portal-cancel", headers=self.headers, name="$portal-cancel")
        else:
            self.client.post(f"/fhir/Patient/{self.own}/$portal-invite", headers=self.headers, name="$portal-invite")
        self.invited = not self.invited

