"""gunicorn settings read from the working directory by every ``gunicorn wsgi:app`` started here.

gunicorn refuses a request line over 4094 bytes with its own HTML 400 before the application sees
it; 8190 (its largest bounded value) lets a long search reach fhirportal, whose own limit
(``FHIRPORTAL_MAX_QUERY_BYTES``, 7,168 by default) then answers 414 with an OperationOutcome.
"""

limit_request_line = 8190
