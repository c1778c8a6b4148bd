"""Log lines as plain text (the default) or one JSON object each (``FHIRPORTAL_LOG_FORMAT=json``), with
the id of the request being answered (``-`` / null outside a request).

Under gunicorn, ``gunicorn_logging.Logger`` puts these formats on gunicorn's handlers and sends the
application's lines there. ``install`` (called by ``create_app``) configures the root logger itself when
nothing configured logging yet (``fhirportal serve``), and otherwise only adds the
request-id filter to the root logger's handlers; ``install_request_lines`` logs each request at DEBUG.
No secret is in a log line: nothing here logs request headers, bodies, paths or query strings (and the
tokens' library logs at INFO at most, see ``app.py``).
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from datetime import UTC, datetime

from flask import Flask, g, request

from . import request_id

FORMATS = ("text", "json")
requests_log = logging.getLogger("fhirportal.requests")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] [%(request_id)s] %(name)s: %(message)s"


def _request_id_of(record: logging.LogRecord) -> str | None:
    return getattr(record, "request_id", None) or request_id.current()


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (the id of the request being answered, or None) to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.current()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None):
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        shown = logging.makeLogRecord({**record.__dict__, "request_id": _request_id_of(record) or "-"})
        return super().format(shown)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id; exception and stack when
    the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id_of(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"the log format is one of {', '.join(FORMATS)}, not {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def logging_config(log_format: str = "text", level: str = "INFO") -> dict:
    """A ``logging.config.dictConfig`` dictionary (usable as gunicorn's ``logconfig_dict``): the root logger
    and gunicorn's error and access loggers write to stderr in ``log_format``."""
    formatter(log_format)  # refuses an unknown format
    handler = ["stderr"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"text": {"()": f"{__name__}.TextFormatter"}, "json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": log_format, "filters": ["request_id"]}},
        "root": {"level": level, "handlers": handler},
        "loggers": {name: {"level": level, "handlers": handler, "propagate": False, "qualname": name}
                    for name in ("gunicorn.error", "gunicorn.access")},
    }


def install(log_format: str) -> None:
    """Logging configured in ``log_format`` unless something (gunicorn, a test runner) configured it
    already; then the request id is added to what the root logger's handlers see."""
    root = logging.getLogger()
    if not root.handlers:
        # alembic narrates its plugins and context at INFO each time a database is opened: only its warnings
        logging.config.dictConfig({**logging_config(log_format), "loggers": {"alembic": {"level": "WARNING"}}})
        return
    for handler in root.handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())


def install_request_lines(app: Flask) -> None:
    """At DEBUG (``fhirportal.requests``), one line per answered request: its method, Flask endpoint (not
    its path or query, which may name a patient or carry a one-time code), status and time taken."""

    @app.before_request
    def _start():
        if requests_log.isEnabledFor(logging.DEBUG):
            g.log_started = time.perf_counter()

    @app.after_request
    def _line(response):
        started = g.get("log_started")
        if started is not None:
            requests_log.debug("%s %s %d %.1f ms", request.method, request.endpoint or "(no route)",
                               response.status_code, (time.perf_counter() - started) * 1000)
        return response
