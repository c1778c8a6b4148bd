"""The FHIR REST layer: routing, content negotiation, preconditions, validation, Bundles, the
CapabilityStatement. It knows FHIR and HTTP, and reaches storage only through the repository.
"""
