"""Email and SMS for portal enrollment (invitation links, PINs, verification codes).

``Notifier(settings, database)`` sends with SMTP (``FHIRPORTAL_SMTP_*``) and an HTTP SMS gateway
(``FHIRPORTAL_SMS_*``). Without an SMTP host or a gateway (the development default) a message is
only written to the ``outbox`` table, where a developer reads it.

Every attempt is one ``outbox`` row (channel, recipient, subject, body, created, delivered, error):

- queued (no transport configured): ``delivered`` false, ``error`` null; the Delivery is ok;
- sent: ``delivered`` true, ``error`` null;
- failed: ``delivered`` false, ``error`` the short reason; the Delivery is not ok.

``send_email`` and ``send_sms`` never raise for a failed delivery: they return a ``Delivery`` with
``ok=False`` and the reason. ``last_failure(recipient)`` / ``failures(recipients)`` tell whether the
latest attempt to a recipient failed (what ``$portal-status`` reports). Bodies can hold
registration links and PINs: they are never logged, only the channel, recipient and outcome.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage

import requests
from sqlalchemy import func, insert, select

from ..settings import Settings
from ..store import clock
from ..store.database import Database
from ..store.outbox_schema import outbox

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
_ERROR_CHARS = 300
_PLACEHOLDER = re.compile(r"\{(to|message)\}")


@dataclass(frozen=True)
class Delivery:
    """The outcome of one send: ``ok`` false with a short ``error`` when it failed."""

    channel: str  # email | sms
    recipient: str
    ok: bool
    error: str | None
    outbox_id: int | None  # the attempt's outbox row (None only if the outbox could not be written)


class Notifier:
    """Sends portal email and SMS, recording every attempt in the ``outbox`` table."""

    def __init__(self, settings: Settings, database: Database):
        self.settings = settings
        self.database = database
        # Fail at start-up, not at the first SMS, when the template is not JSON.
        try:
            self._sms_template = json.loads(settings.sms_body_template)
        except ValueError as exc:
            raise ValueError(f"FHIRPORTAL_SMS_BODY_TEMPLATE is not JSON: {exc}") from exc

    # -- email ---------------------------------------------------------------------------------

    def send_email(self, to: str, subject: str, body: str) -> Delivery:
        if not self.settings.smtp_host:
            return self._queue("email", to, subject, body)
        try:
            self._smtp_send(self._email_message(to, subject, body))
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            return self._record("email", to, subject, body, error=_smtp_error(exc))
        return self._record("email", to, subject, body, error=None)

    def _email_message(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()  # raises ValueError for a header with a line break (injection)
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        return message

    def _smtp_send(self, message: EmailMessage) -> None:
        settings = self.settings
        context = ssl.create_default_context()
        if settings.smtp_security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS, context=context
            )
        else:
            connection = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS)
        with connection:
            if settings.smtp_security == "starttls":
                connection.starttls(context=context)
            if settings.smtp_username:
                connection.login(settings.smtp_username, settings.smtp_password or "")
            connection.send_message(message)

    # -- SMS -----------------------------------------------------------------------------------

    def send_sms(self, to: str, body: str) -> Delivery:
        url = self.settings.sms_gateway_url
        if not url:
            return self._queue("sms", to, None, body)
        headers = {"Content-Type": "application/json"}
        if self.settings.sms_gateway_token:
            headers["Authorization"] = f"Bearer {self.settings.sms_gateway_token}"
        payload = json.dumps(_fill(self._sms_template, {"to": to, "message": body}))
        try:
            answer = requests.post(
                url, data=payload.encode("utf-8"), headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
            )
        except requests.Timeout:
            error = f"SMS gateway did not answer within {TIMEOUT_SECONDS} s"
        except requests.RequestException as exc:
            # Not str(exc): it carries the gateway URL, which may hold a key in its query.
            error = f"SMS gateway unreachable ({type(exc).__name__})"
        else:
            # Only the status: the gateway's answer might echo the message.
            error = None if 200 <= answer.status_code < 300 else f"SMS gateway answered HTTP {answer.status_code}"
            if error and answer.reason:
                error = f"{error} {answer.reason}"
        return self._record("sms", to, None, body, error=error)

    # -- failures --------------------------------------------------------------------------------

    def last_failure(self, recipient: str) -> str | None:
        """The error of the latest attempt to ``recipient`` if that attempt failed, else None.

        None also when nothing was sent to it yet, or the latest message was only queued.
        """
        return self.failures([recipient]).get(recipient)

    def failures(self, recipients: Iterable[str]) -> dict[str, str]:
        """``last_failure`` for many recipients in one query: {recipient: error} for those whose
        latest attempt failed (recipients without one are left out)."""
        wanted = sorted({r for r in recipients if r})
        if not wanted:
            return {}
        latest = (
            select(func.max(outbox.c.id).label("id"))
            .where(outbox.c.recipient.in_(wanted))
            .group_by(outbox.c.recipient)
            .subquery()
        )
        query = select(outbox.c.recipient, outbox.c.delivered, outbox.c.error).join(
            latest, outbox.c.id == latest.c.id
        )
        with self.database.read() as conn:
            rows = conn.execute(query).all()
        return {row.recipient: row.error for row in rows if not row.delivered and row.error}

    # -- outbox --------------------------------------------------------------------------------

    def _queue(self, channel: str, to: str, subject: str | None, body: str) -> Delivery:
        outbox_id = self._insert(channel, to, subject, body, delivered=False, error=None)
        if outbox_id is None:
            return Delivery(channel, to, ok=False, error="the outbox could not be written", outbox_id=None)
        log.info("%s to %s queued in the outbox (id %s)", channel, to, outbox_id)
        return Delivery(channel, to, ok=True, error=None, outbox_id=outbox_id)

    def _record(self, channel: str, to: str, subject: str | None, body: str, *, error: str | None) -> Delivery:
        if error is not None:
            error = error[:_ERROR_CHARS]
        outbox_id = self._insert(channel, to, subject, body, delivered=error is None, error=error)
        if error is None:
            log.info("%s to %s sent (outbox id %s)", channel, to, outbox_id)
        else:
            log.warning("%s to %s failed (outbox id %s): %s", channel, to, outbox_id, error)
        return Delivery(channel, to, ok=error is None, error=error, outbox_id=outbox_id)

    @property
    def queues_email(self) -> bool:
        """No SMTP server: an email is a row of the outbox (for a relay), written in a transaction."""
        return not self.settings.smtp_host

    def queue_email(self, conn, to: str, subject: str, body: str) -> Delivery:
        """Queue an email in the outbox within the caller's transaction (``queues_email`` only): it commits,
        or rolls back, with what it tells of."""
        outbox_id = conn.execute(insert(outbox).values(**_row("email", to, subject, body, delivered=False, error=None))
                                 .returning(outbox.c.id)).scalar_one()
        log.info("email to %s queued in the outbox (id %s)", to, outbox_id)
        return Delivery("email", to, ok=True, error=None, outbox_id=outbox_id)

    def _insert(
        self, channel: str, to: str, subject: str | None, body: str, *, delivered: bool, error: str | None
    ) -> int | None:
        row = _row(channel, to, subject, body, delivered=delivered, error=error)
        try:
            with self.database.write() as conn:
                return conn.execute(insert(outbox).values(**row).returning(outbox.c.id)).scalar_one()
        except Exception as exc:  # a send must not fail because its record could not be written
            log.error("%s to %s: the outbox could not be written (%s)", channel, to, type(exc).__name__)
            return None


def _row(channel: str, to: str, subject: str | None, body: str, *, delivered: bool, error: str | None) -> dict:
    return {"channel": channel, "recipient": to, "subject": subject, "body": body, "created": clock.now(),
            "delivered": delivered, "error": error}


def _fill(template, values: dict[str, str]):
    """The template (parsed JSON) with ``{to}`` and ``{message}`` replaced inside its strings.

    The values are substituted into the parsed structure and the result is serialised with
    ``json.dumps``, so quotes, braces or backslashes in a message cannot change the JSON. One pass:
    a message containing ``{to}`` is left as it is.
    """
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if isinstance(template, list):
        return [_fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    return template


def _smtp_error(exc: Exception) -> str:
    """A short reason for a failed SMTP send (never the message)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reason = next(iter(exc.recipients.values()), (None, b""))
        return f"SMTP recipient refused: {code} {_text(reason)}".strip()
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}".strip()
    if isinstance(exc, TimeoutError):
        return f"SMTP server did not answer within {TIMEOUT_SECONDS} s"
    if isinstance(exc, ValueError):
        return f"invalid email header: {exc}"
    return f"SMTP {type(exc).__name__}: {exc}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
