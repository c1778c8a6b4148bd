"""Storage: the schema, transactions, the resource repository and search indexing.

Nothing here knows HTTP or FHIR REST; the FHIR layer calls in with plain values.
"""
