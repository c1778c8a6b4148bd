"""The stored Questionnaire a QuestionnaireResponse names: ``Questionnaire/{id}``, or a canonical URL with
an optional ``|version`` (the newest version of the form when none is given)."""

from __future__ import annotations

from fhirportal.errors import FhirError
from fhirportal.fhir.search_params import parse_criteria

QUESTIONNAIRE = "Questionnaire"


def find(ctx, conn, canonical: str) -> dict | None:
    if canonical.startswith(f"{QUESTIONNAIRE}/"):
        fhir_id = canonical.split("/", 1)[1]
        try:
            return ctx.repository.read(conn, QUESTIONNAIRE, fhir_id).body
        except FhirError:
            return None
    url, _, version = canonical.partition("|")
    params = [("url", url)] + ([("version", version)] if version else [])
    try:
        criteria, _ = parse_criteria(ctx.search_parameters, QUESTIONNAIRE, params, strict=True)
        ids = ctx.repository.search_ids(conn, QUESTIONNAIRE, criteria, limit=20)
    except FhirError:
        return None
    forms = [ctx.repository.read(conn, QUESTIONNAIRE, fhir_id).body for fhir_id in ids]
    if not forms:
        return None
    return max(forms, key=lambda form: (str(form.get("date") or ""), str(form.get("version") or "")))
