"""WSGI entry point: ``gunicorn wsgi:app``.

A database this version cannot serve (it needs ``fhirportal db upgrade``, or matches no known schema)
stops the server at start-up with the reason on its log, not with a traceback per worker.
"""

import logging
import sys

from fhirportal.app import create_app
from fhirportal.store.database import OutdatedSchema

try:
    app = create_app()
except OutdatedSchema as exc:
    logging.getLogger("gunicorn.error").critical("fhirportal cannot start: %s", exc)
    print(f"fhirportal cannot start: {exc}", file=sys.stderr)
    sys.exit(4)  # gunicorn's "App failed to load": the arbiter stops instead of respawning workers
