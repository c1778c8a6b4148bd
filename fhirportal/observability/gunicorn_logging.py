"""gunicorn's logger class (``logger_class`` in gunicorn.conf.py): gunicorn sets up its error and access
logs as the command line says (``--log-level``, ``--error-logfile``, ``--access-logfile``), then their
lines get ``FHIRPORTAL_LOG_FORMAT``'s format and the request id, and the application's loggers write to the
error log's handlers in the same format at the same level. An operator's own logging configuration
(``--log-config``, ``logconfig_dict``, ``--log-config-json``) is left as it is."""

from __future__ import annotations

import logging
import logging.handlers

from gunicorn import glogging

from fhirportal.settings import Settings

from .logs import RequestIdFilter, formatter

OURS = "_fhirportal"  # marks the handlers this class put on the root logger


class Logger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, OURS, False)]:  # a reload: set up again
            root.removeHandler(handler)
        if cfg.logconfig_dict or getattr(cfg, "logconfig_json", None) or cfg.logconfig:
            return
        shown = formatter(Settings.from_env().log_format)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(shown)
                if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                    handler.addFilter(RequestIdFilter())
        for handler in self.error_log.handlers:
            if not isinstance(handler, logging.handlers.SysLogHandler):
                root.addHandler(_Shared(handler))
        root.setLevel(self.loglevel)
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin, per worker


class _Shared(logging.Handler):
    """The root logger's door to one of gunicorn's error-log handlers (which gunicorn may replace on a
    reload: this one is then removed and made again)."""

    def __init__(self, target: logging.Handler):
        super().__init__()
        setattr(self, OURS, True)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)
