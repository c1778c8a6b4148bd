"""gunicorn settings read from the working directory by every ``gunicorn wsgi:app`` started here.

gunicorn refuses a request line over 4094 bytes with its own HTML 400 before the application sees
it; 8190 (its largest bounded value) lets a long search reach fhirportal, whose own limit
(``FHIRPORTAL_MAX_QUERY_BYTES``, 7,168 by default) then answers 414 with an OperationOutcome.

Logging: gunicorn's loggers and the application's write to stderr through one handler, as text or as
one JSON object per line (``FHIRPORTAL_LOG_FORMAT``), each line with its request's id
(``fhirportal.observability.logs``).
"""

from fhirportal.observability import logs
from fhirportal.settings import Settings

limit_request_line = 8190
logconfig_dict = logs.logging_config(Settings.from_env().log_format)

