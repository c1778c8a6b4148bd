"""One settings object, built from the environment.

Every knob the server has lives here; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_DATA_DIR = Path("var")
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-set-FHIRPORTAL_SECRET_KEY-in-production"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(env: dict[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list given as text separated by commas or whitespace."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return tuple(item for item in raw.replace(",", " ").split() if item)


def _choice(env: dict[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Server configuration. See README "Configuration" for each variable."""

    database_url: str = f"sqlite:///{DEFAULT_DATA_DIR / 'fhirportal.db'}"
    # "transaction": PostgreSQL is reached through a transaction-pooling PgBouncer (no prepared statements).
    database_pooler: str = "none"
    base_url: str = "http://127.0.0.1:8080/fhir"
    max_body_bytes: int = 10 * 1024 * 1024
    default_page_size: int = 50
    max_page_size: int = 1000
    # Limits on what one request may ask for (each refused with a 4xx OperationOutcome naming it).
    max_bundle_entries: int = 1000  # entries in a transaction or batch Bundle (413)
    # A search's query string (414) and a POST _search form body (413); below gunicorn.conf.py's request line.
    max_query_bytes: int = 7 * 1024
    max_includes: int = 10  # _include/_revinclude parameters in one search (400)
    max_include_iterations: int = 3  # rounds of _include:iterate/_revinclude:iterate after the first
    # Requests per minute to the authorization server, per app and per source address (0: no limit);
    # over it a 429 with Retry-After (smart/rate_limits.py).
    rate_limit_token: int = 1200
    rate_limit_register: int = 60
    rate_limit_login: int = 120
    # Proxies in front of the server that append X-Forwarded-For (HAProxy's ``option forwardfor``): the
    # client's address is taken that many hops back. 0: the connection's address (no proxy trusted).
    proxy_hops: int = 0
    # Unknown or unsupported search parameters: a 400 naming them (strict), or ignored and left out of the
    # self link (lenient). A client's ``Prefer: handling=…`` wins.
    search_handling: str = "strict"
    validate_references: bool = True
    benchmark_routes: bool = False
    # Encrypts portal PINs at rest and keys their hashes. The default is for development only.
    secret_key: str = DEVELOPMENT_SECRET_KEY
    invitation_days: int = 7
    # Portal notifications (fhirportal.portal.notify). No SMTP host / SMS gateway: messages go to the
    # ``outbox`` table instead (development).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | tls | none
    smtp_username: str | None = None
    smtp_password: str | None = None
    mail_from: str = "portal@localhost"
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_body_template: str = '{"to": "{to}", "message": "{message}"}'
    # The practice's name, on the patient portal's pages and emails.
    practice_name: str = "Patient portal"
    # Secure messages: the largest attachment (decoded bytes) a Communication may carry.
    message_attachment_max_bytes: int = 5 * 1024 * 1024
    # Bulk Data $export files (one directory per export job).
    export_dir: str = str(DEFAULT_DATA_DIR / "exports")
    # Operations: a proxy in front sets X-Request-ID (kept when valid, else a new id); log lines as text or
    # JSON; /metrics answers only a Bearer of this token (unset: 404); gunicorn workers' metrics are added
    # up through PROMETHEUS_MULTIPROC_DIR when it is set.
    trust_request_id: bool = False
    log_format: str = "text"  # text | json
    metrics_token: str | None = None
    metrics_multiprocess_dir: str | None = None
    # Subscriptions (rest-hook, fhirportal.subscriptions): the URL prefixes a Subscription's channel.endpoint
    # must start with (none: no Subscription can be created), and the delivery thread of each process.
    subscription_endpoints: tuple[str, ...] = ()
    subscription_worker: bool = True
    subscription_max_attempts: int = 8
    subscription_timeout: float = 5.0  # seconds to wait for the endpoint's answer
    # Appointment requests (fhirportal.scheduling): a patient may cancel a booked appointment online until
    # this many hours before it starts.
    appointment_cancel_hours: int = 24

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """``FHIRPORTAL_SECRET_KEY`` as a comma-separated list, newest first: the newest encrypts and keys
        new values; the others still open and verify what they did (``fhirportal secrets reencrypt``)."""
        keys = tuple(key.strip() for key in self.secret_key.split(",") if key.strip())
        return keys or (DEVELOPMENT_SECRET_KEY,)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        defaults = cls()
        return cls(
            database_url=env.get("FHIRPORTAL_DATABASE_URL") or defaults.database_url,
            database_pooler=_choice(env, "FHIRPORTAL_DATABASE_POOLER", defaults.database_pooler,
                                    ("none", "transaction")),
            base_url=(env.get("FHIRPORTAL_BASE_URL") or defaults.base_url).rstrip("/"),
            max_body_bytes=_int(env, "FHIRPORTAL_MAX_BODY_BYTES", defaults.max_body_bytes),
            default_page_size=_int(env, "FHIRPORTAL_DEFAULT_PAGE_SIZE", defaults.default_page_size),
            max_page_size=_int(env, "FHIRPORTAL_MAX_PAGE_SIZE", defaults.max_page_size),
            max_bundle_entries=_int(env, "FHIRPORTAL_MAX_BUNDLE_ENTRIES", defaults.max_bundle_entries),
            max_query_bytes=_int(env, "FHIRPORTAL_MAX_QUERY_BYTES", defaults.max_query_bytes),
            max_includes=_int(env, "FHIRPORTAL_MAX_INCLUDES", defaults.max_includes),
            max_include_iterations=_int(env, "FHIRPORTAL_MAX_INCLUDE_ITERATIONS", defaults.max_include_iterations),
            rate_limit_token=_int(env, "FHIRPORTAL_RATE_LIMIT_TOKEN", defaults.rate_limit_token),
            rate_limit_register=_int(env, "FHIRPORTAL_RATE_LIMIT_REGISTER", defaults.rate_limit_register),
            rate_limit_login=_int(env, "FHIRPORTAL_RATE_LIMIT_LOGIN", defaults.rate_limit_login),
            proxy_hops=_int(env, "FHIRPORTAL_PROXY_HOPS", defaults.proxy_hops),
            search_handling=_choice(env, "FHIRPORTAL_SEARCH_HANDLING", defaults.search_handling,
                                    ("strict", "lenient")),
            validate_references=_bool(env, "FHIRPORTAL_VALIDATE_REFERENCES", defaults.validate_references),
            benchmark_routes=_bool(env, "FHIRPORTAL_BENCHMARK_ROUTES", defaults.benchmark_routes),
            secret_key=env.get("FHIRPORTAL_SECRET_KEY") or defaults.secret_key,
            invitation_days=_int(env, "FHIRPORTAL_INVITATION_DAYS", defaults.invitation_days),
            smtp_host=env.get("FHIRPORTAL_SMTP_HOST") or defaults.smtp_host,
            smtp_port=_int(env, "FHIRPORTAL_SMTP_PORT", defaults.smtp_port),
            smtp_security=_choice(env, "FHIRPORTAL_SMTP_SECURITY", defaults.smtp_security, ("starttls", "tls", "none")),
            smtp_username=env.get("FHIRPORTAL_SMTP_USERNAME") or defaults.smtp_username,
            smtp_password=env.get("FHIRPORTAL_SMTP_PASSWORD") or defaults.smtp_password,
            mail_from=env.get("FHIRPORTAL_MAIL_FROM") or defaults.mail_from,
            sms_gateway_url=env.get("FHIRPORTAL_SMS_GATEWAY_URL") or defaults.sms_gateway_url,
            sms_gateway_token=env.get("FHIRPORTAL_SMS_GATEWAY_TOKEN") or defaults.sms_gateway_token,
            sms_body_template=env.get("FHIRPORTAL_SMS_BODY_TEMPLATE") or defaults.sms_body_template,
            export_dir=env.get("FHIRPORTAL_EXPORT_DIR") or defaults.export_dir,
            practice_name=env.get("FHIRPORTAL_PRACTICE_NAME") or defaults.practice_name,
            message_attachment_max_bytes=_int(env, "FHIRPORTAL_MESSAGE_ATTACHMENT_MAX_BYTES",
                                              defaults.message_attachment_max_bytes),
            trust_request_id=_bool(env, "FHIRPORTAL_TRUST_REQUEST_ID", defaults.trust_request_id),
            log_format=_choice(env, "FHIRPORTAL_LOG_FORMAT", defaults.log_format, ("text", "json")),
            metrics_token=env.get("FHIRPORTAL_METRICS_TOKEN") or defaults.metrics_token,
            metrics_multiprocess_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or defaults.metrics_multiprocess_dir,
            subscription_endpoints=_list(env, "FHIRPORTAL_SUBSCRIPTION_ENDPOINTS", defaults.subscription_endpoints),
            subscription_worker=_bool(env, "FHIRPORTAL_SUBSCRIPTION_WORKER", defaults.subscription_worker),
            subscription_max_attempts=_int(env, "FHIRPORTAL_SUBSCRIPTION_MAX_ATTEMPTS",
                                           defaults.subscription_max_attempts),
            appointment_cancel_hours=_int(env, "FHIRPORTAL_APPOINTMENT_CANCEL_HOURS",
                                          defaults.appointment_cancel_hours),
        )

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def base_path(self) -> str:
        """The URL path the FHIR API is mounted under, e.g. ``/fhir``."""
        from urllib.parse import urlsplit

        return urlsplit(self.base_url).path.rstrip("/")
