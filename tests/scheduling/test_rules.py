"""The pure rules: which slots an Appointment holds and in what status, what counts as an answer, the cut-off."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhirportal.errors import Forbidden, Unprocessable
from fhirportal.scheduling import answers, rules

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_slots_held_by_status():
    appointment = {"status": "proposed", "slot": [{"reference": "Slot/a"}, {"reference": "Slot/a"},
                                                  {"reference": "http://localhost/fhir/Slot/b/_history/2"},
                                                  {"reference": "Schedule/x"}, {"display": "no reference"}]}
    assert rules.held(appointment) == {"a": "busy-tentative", "b": "busy-tentative"}
    assert rules.held({**appointment, "status": "booked"}) == {"a": "busy", "b": "busy"}
    for status in ("cancelled", "entered-in-error", "waitlist"):
        assert rules.held({**appointment, "status": status}) == {}
    assert rules.held(None) == {}


def test_what_counts_as_an_answer():
    proposed = {"status": "proposed"}
    assert answers.answered(proposed, {"status": "booked"})
    assert answers.answered(proposed, {"status": "cancelled", "cancelationReason": {"text": "away"}})
    assert not answers.answered(proposed, {"status": "cancelled", "cancelationReason": rules.PATIENT_CANCELLED})
    assert not answers.answered({"status": "booked"}, {"status": "cancelled"})
    assert not answers.answered(proposed, {"status": "proposed", "comment": "edited"})
    subject, body = answers.message("Practice", "https://portal.example.org/portal/appointments")
    assert "answered" in subject and body.count("https://") == 1


def test_the_cut_off():
    booked = {"status": "booked", "start": "2026-12-08T08:59:00Z",
              "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]}
    with pytest.raises(Unprocessable, match="24 hours"):
        rules.check_patient_change(booked, {**booked, "status": "cancelled"}, "p1", 24, NOW)
    later = {**booked, "start": "2026-12-08T09:01:00+00:00"}
    cancelled = rules.check_patient_change(later, {**later, "status": "cancelled"}, "p1", 24, NOW)
    assert rules.is_patient_cancellation(cancelled)
    with pytest.raises(Forbidden):
        rules.check_patient_change(later, {**later, "status": "fulfilled"}, "p1", 24, NOW)


def test_times_come_from_the_slots():
    slots = [{"start": "2026-12-09T09:30:00Z", "end": "2026-12-09T10:00:00Z"},
             {"start": "2026-12-09T09:00:00Z", "end": "2026-12-09T09:30:00Z"}]
    filled = rules.fill_times({"status": "proposed"}, slots, strict=True)
    assert (filled["start"], filled["end"]) == ("2026-12-09T09:00:00Z", "2026-12-09T10:00:00Z")
    with pytest.raises(Unprocessable, match="start"):
        rules.fill_times({"start": "2026-12-09T08:00:00Z"}, slots, strict=True)
    assert rules.fill_times({"start": "2026-12-09T08:00:00Z"}, slots, strict=False)["start"] == "2026-12-09T08:00:00Z"
