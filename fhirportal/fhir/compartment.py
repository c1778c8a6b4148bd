"""The Patient compartment as this server applies it: FHIR R4's CompartmentDefinition, plus the
patient data it leaves out — a Task for the patient (the portal's invitations are Tasks), the
patient's Devices (US Core's implantable devices), GuidanceResponses and Contracts naming the patient.
One table for authorization, ``$everything`` and Bulk export alike."""

from __future__ import annotations

import functools

from fhirportal import definitions

ADDITIONS = {"Task": ("patient",), "Device": ("patient",), "GuidanceResponse": ("patient",),
             "Contract": ("patient",)}


@functools.cache
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """Resource type -> its reference parameters that put a resource in a patient's compartment."""
    spec = {t: tuple(params) for t, params in definitions.load("compartment-patient").items()}
    return {**spec, **ADDITIONS}
