"""Secure messages between a patient (or caregiver) and the practice, as FHIR ``Communication``s: the
write rules (``rules``) and the email that tells a patient a message is waiting (``notify``)."""
