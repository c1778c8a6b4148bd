"""gunicorn settings read from the working directory by every ``gunicorn wsgi:app`` started here.

gunicorn refuses a request line over 4094 bytes with its own HTML 400 before the application sees
it; 8190 (its largest bounded value) lets a long search reach fhirportal, whose own limit
(``FHIRPORTAL_MAX_QUERY_BYTES``, 7,168 by default) then answers 414 with an OperationOutcome.

Logging: gunicorn's error log (``--error-logfile``, stderr by default, at ``--log-level``) takes the
application's lines too, as text or as one JSON object per line (``FHIRPORTAL_LOG_FORMAT``), each with
its request's id (``fhirportal.observability.gunicorn_logging``); ``--log-config`` replaces all that.
Metrics: with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory, emptied at each start), a worker
that exits has its live values let go.
"""

from fhirportal.observability.response_writes import coalesce
from fhirportal.settings import Settings

coalesce()  # a response's headers leave with its first body bytes (one send): see the module

limit_request_line = 8190
logger_class = "fhirportal.observability.gunicorn_logging.Logger"
# gunicorn's default access-log line (off unless --access-logfile) and the request's id, at the end
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s'


def child_exit(server, worker):
    if Settings.from_env().metrics_multiprocess_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
