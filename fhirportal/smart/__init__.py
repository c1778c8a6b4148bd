"""SMART on FHIR authorization (SMART App Launch 2): scopes, and, as the authorization issue lands,
the authlib authorization server, launch contexts and per-request enforcement.
"""
