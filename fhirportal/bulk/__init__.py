"""FHIR Bulk Data Access: asynchronous exports."""
