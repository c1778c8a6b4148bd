"""WSGI entry point: ``gunicorn wsgi:app``."""

from fhirportal.app import create_app

app = create_app()
